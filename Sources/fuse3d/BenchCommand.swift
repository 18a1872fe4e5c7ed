import ArgumentParser
import Foundation
import Train

/// `fuse3d bench`: micro-benchmarks of the libraries, run side by side with peers from `bench/`.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (compare with the Python peers in bench/).",
        discussion: "Example: fuse3d bench train --model efficientnet3d --size 64 --batch 2 --steps 10",
        subcommands: [BenchTrain.self, BenchFuse.self])
}

/// `fuse3d bench train`: seconds per training step of a model on a fixed random batch.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time training steps (forward, loss, backward, clip, AdamW, cutpoint ascension).",
        discussion: """
        Prints `sec/step X` (the median after warm-up) and the peak resident memory.
        bench/torch/bench_train.sh alternates this with the same network in PyTorch eager.
        Example: fuse3d bench train --model vit3d --size 64 --batch 2 --steps 10 --threads 2
        """)

    @Option(help: "Model: efficientnet3d or vit3d.") var model = "efficientnet3d"
    @Option(help: "Variant: b0-b3 (efficientnet3d), tiny/small/base (vit3d).") var variant: String?
    @Option(help: "EfficientNet width override (e.g. 0.25 for a small test model).") var width: Double?
    @Option(help: "Cubic input edge in voxels (a multiple of 16 for vit3d).") var size = 64
    @Option(help: "Batch size.") var batch = 2
    @Option(help: "Timed steps.") var steps = 10
    @Option(help: "Untimed warm-up steps.") var warmup = 2
    @Option(help: "libtorch intra-op threads (default: all cores).") var threads: Int?
    @Option(help: "cpu, cuda or cuda:N (cuda needs the bridge built against a CUDA PyTorch: make torch PYTHON=...).") var device = "cpu"
    @Flag(help: "bfloat16 autocast for the forward pass.") var bf16 = false
    @Flag(help: "Channels-last-3d memory order for input and convolution weights.") var channelsLast = false

    func validate() throws {
        guard ModelSpec.names.contains(model.lowercased()) else {
            throw ValidationError("--model must be one of \(ModelSpec.names.joined(separator: ", ")), not \(model)")
        }
        guard size > 0, batch > 0, steps > 0, warmup >= 0 else {
            throw ValidationError("--size, --batch and --steps must be positive, --warmup not negative")
        }
        if model.lowercased() == "vit3d" && size % 16 != 0 {
            throw ValidationError("--size must be a multiple of 16 (the patch) for vit3d, not \(size)")
        }
        guard let d = Device(device) else { throw ValidationError("--device must be cpu, cuda or cuda:N, not \(device)") }
        try Torch.validate(d)
    }

    func run() throws {
        let spec = ModelSpec(name: model, variant: variant, inputSize: [size, size, size], width: width)
        let bench = TrainBenchmark(spec: spec, batch: batch, steps: steps, warmup: warmup,
                                   threads: threads ?? ProcessInfo.processInfo.activeProcessorCount,
                                   device: Device(device) ?? .cpu, mixedPrecision: bf16, channelsLast: channelsLast)
        let r = try bench.run()
        print("model \(spec.name)-\(spec.variant) size \(size) batch \(batch) threads \(bench.threads) device \(bench.device)")
        print(String(format: "sec/step %.4f", r.secondsPerStep))
        print(String(format: "peak RSS %.1f MiB", Double(r.peakRSSBytes) / 1_048_576))
        print(String(format: "loss %.4f", r.lastLoss))
    }
}
