import Foundation

/// Times training steps of a model on a fixed random batch, as `bench/torch/bench_train.py` does in
/// PyTorch: same seeds (the same weight distributions, the very same input), same step, same threads.
public struct TrainBenchmark {
    /// The model to time.
    public var spec: ModelSpec
    /// Batch size, timed steps, untimed warm-up steps, libtorch threads.
    public var batch: Int, steps: Int, warmup: Int, threads: Int
    /// Where the model and batch live.
    public var device: Device
    /// bf16 autocast and channels-last-3d storage (both off unless measured faster).
    public var mixedPrecision: Bool, channelsLast: Bool

    /// A benchmark; both speed-ups stay off unless asked for.
    public init(spec: ModelSpec, batch: Int, steps: Int, warmup: Int = 2, threads: Int, device: Device = .cpu,
                mixedPrecision: Bool = false, channelsLast: Bool = false) {
        self.spec = spec
        self.batch = batch
        self.steps = steps
        self.warmup = warmup
        self.threads = threads
        self.device = device
        self.mixedPrecision = mixedPrecision
        self.channelsLast = channelsLast
    }

    /// Seconds per step (median after warm-up), every step's time, the last loss and the peak RSS.
    public struct Result {
        /// Median seconds per step, each timed step, the last loss, peak RSS in bytes.
        public var secondsPerStep: Double, times: [Double], lastLoss: Double, peakRSSBytes: Int
    }

    /// Builds the model and runs warm-up plus timed steps.
    public func run() throws -> Result {
        if device.isCUDA && !Torch.cudaAvailable {
            throw TrainError(.configuration, "device \(device) requested, but this libtorch has no usable CUDA (point LIBTORCH at a CUDA build)")
        }
        Torch.threads = threads
        Torch.manualSeed(0)
        let model = try spec.make()
        try model.move(to: device)
        if channelsLast { try model.useChannelsLast() }
        let optimizer = try AdamW(model.namedParameters(), learningRate: 1e-4, weightDecay: 0.01)
        let step = TrainingStep(model: model, optimizer: optimizer, mixedPrecision: mixedPrecision, device: device)
        // Reseeded so that the batch is the peer's even though the two initialisers draw differently.
        Torch.manualSeed(1)
        var x = try Tensor.randn([batch, 3] + spec.inputSize, device: device)
        if channelsLast { x = try x.contiguous(channelsLast: true) }
        let labels = try (Tensor.rand([batch, spec.heads], device: device) * Double(spec.classes)).to(.int64)
        model.train()
        var times: [Double] = []
        var last = 0.0
        for i in 0..<(warmup + steps) {
            let start = DispatchTime.now().uptimeNanoseconds
            last = try step(x, labels: labels)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if i >= warmup { times.append(seconds) }
        }
        let sorted = times.sorted()
        let median = sorted.isEmpty ? 0 : (sorted[(sorted.count - 1) / 2] + sorted[sorted.count / 2]) / 2
        return Result(secondsPerStep: median, times: times, lastLoss: last, peakRSSBytes: peakRSS())
    }
}

/// The process's peak resident set size in bytes (Linux reports ru_maxrss in KiB, macOS in bytes).
public func peakRSS() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Int(usage.ru_maxrss)
    #endif
}
