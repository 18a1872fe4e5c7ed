import ArgumentParser
import Core
import Foundation
import Train

/// `fuse3d bench`: micro-benchmarks of the libraries, run side by side with peers from `bench/`.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (compare with the Python peers in bench/).",
        discussion: "Example: fuse3d bench train --model efficientnet3d --size 64 --batch 2 --steps 10",
        subcommands: [BenchTrain.self, BenchFuse.self, BenchLoader.self])
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
    @Option(help: "cpu, cuda or cuda:N (cuda needs the bridge built against a CUDA PyTorch: make torch PYTHON=...). (default: cpu)",
            transform: { try SharedChecks.device($0).device }) var device = Device.cpu
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
        try Torch.validate(device)
    }

    func run() throws {
        let spec = ModelSpec(name: model, variant: variant, inputSize: [size, size, size], width: width)
        let bench = TrainBenchmark(spec: spec, batch: batch, steps: steps, warmup: warmup,
                                   threads: threads ?? ProcessInfo.processInfo.activeProcessorCount,
                                   device: device, mixedPrecision: bf16, channelsLast: channelsLast)
        let r = try bench.run()
        print("model \(spec.name)-\(spec.variant) size \(size) batch \(batch) threads \(bench.threads) device \(bench.device)")
        print(String(format: "sec/step %.4f", r.secondsPerStep))
        print(String(format: "peak RSS %.1f MiB", Double(r.peakRSSBytes) / 1_048_576))
        print(String(format: "loss %.4f", r.lastLoss))
    }
}

/// `fuse3d bench loader`: samples per second from shards to ready batches, no model.
struct BenchLoader: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loader",
        abstract: "Time the shard loader: shuffled epochs decoded into ready float16 batches (no model).",
        discussion: """
        Prints `samples/s X`, and with --decode-limit the samples/s one thread decodes from chunks already
        in memory (the codec's ceiling). bench/loader/run.sh compares it with h5py and a PyTorch DataLoader.
        Example: fuse3d bench loader out/shards --threads 4 --epochs 2 --batch 8 --augment
        """)

    @Argument(help: "A shard folder (with manifest.json).") var shards: String
    @Option(help: "Reader threads (default: all cores).") var threads: Int?
    @Option(help: "Epochs to read.") var epochs = 1
    @Option(help: "Batch size.") var batch = 8
    @Option(help: "Batches decoded ahead of the consumer.") var prefetch = 4
    @Flag(help: "Also run the default augmentation on every batch (on the CPU).") var augment = false
    @Flag(help: "Also measure one thread's decode rate from chunks in memory.") var decodeLimit = false
    @Flag(help: "Also read every sample's source slices (schema 2), padded per batch, as for the default two-stage model.") var sourcePixels = false

    func validate() throws {
        guard epochs > 0, batch > 0, prefetch > 0, (threads ?? 1) > 0 else {
            throw ValidationError("--epochs, --batch, --prefetch and --threads must be positive")
        }
        try SharedChecks.shardFolder(shards)
    }

    func run() throws {
        var bench = LoaderBenchmark(directory: URL(fileURLWithPath: shards),
                                    threads: threads ?? ProcessInfo.processInfo.activeProcessorCount,
                                    epochs: epochs, batch: batch, prefetch: prefetch, augment: augment)
        bench.sourcePixels = sourcePixels
        let progress = CountProgress(label: "loader", unit: "batches")
        let r = try bench.run { progress.update($0, $1) }
        progress.finish()
        print("threads \(bench.threads) batch \(batch) epochs \(epochs) samples \(r.samples)\(sourcePixels ? " with source slices" : "")")
        print(String(format: "samples/s %.2f", r.samplesPerSecond))
        if augment { print(String(format: "augment sec/batch %.4f", r.augmentSecondsPerBatch)) }
        if decodeLimit {
            print(String(format: "decode limit samples/s per thread %.2f", try LoaderBenchmark.decodeLimit(directory: bench.directory)))
        }
    }
}
