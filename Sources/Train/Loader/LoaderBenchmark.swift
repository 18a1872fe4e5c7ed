import Foundation
import Shards

/// Times the loader from shards to ready batches (no model), as `fuse3d bench loader` and
/// bench/loader/run.sh report it, and the one-thread limit of the chunk codec it is measured against.
public struct LoaderBenchmark {
    /// The shard folder.
    public var directory: URL
    /// Reader threads, epochs, batch size, batches ahead.
    public var threads: Int, epochs: Int, batch: Int, prefetch: Int
    /// Whether every batch also goes through the default `Augmenter` (on the CPU here).
    public var augment: Bool
    /// Whether the loader also reads every sample's source slices (`LoaderOptions.sourcePixels`), as for a model whose
    /// stage two crops them.
    public var sourcePixels = false

    /// A benchmark of `epochs` shuffled epochs over every sample of `directory`.
    public init(directory: URL, threads: Int, epochs: Int, batch: Int, prefetch: Int = 4, augment: Bool = false) {
        self.directory = directory
        self.threads = threads
        self.epochs = epochs
        self.batch = batch
        self.prefetch = prefetch
        self.augment = augment
    }

    /// Samples delivered, wall seconds, samples per second, and seconds per batch spent augmenting (0 without).
    public struct Result {
        /// Totals and rates of the run.
        public var samples: Int, seconds: Double, samplesPerSecond: Double, augmentSecondsPerBatch: Double
    }

    /// Runs the epochs; `progress` gets (batches done, batches in all) after each batch.
    public func run(progress: (Int, Int) -> Void = { _, _ in }) throws -> Result {
        let dataset = try ShardDataset(directory: directory)
        var options = LoaderOptions(batchSize: batch, dropLast: false, threads: threads, prefetch: prefetch)
        options.sourcePixels = sourcePixels
        let loader = try ShardLoader(dataset: dataset, options: options)
        let augmenter = Augmenter(options: AugmentationOptions(), seed: 0)
        let total = loader.batchesPerEpoch * epochs
        var samples = 0, batches = 0, augmenting = 0.0
        let start = Date()
        for epoch in 0..<epochs {
            let stream = loader.batches(from: LoaderPosition(epoch: epoch))
            while let next = try stream.next() {
                if augment {
                    let t = Date()
                    _ = try augmenter(next, step: batches)
                    augmenting += Date().timeIntervalSince(t)
                }
                samples += next.count
                batches += 1
                progress(batches, total)
            }
        }
        let seconds = Date().timeIntervalSince(start)
        return Result(samples: samples, seconds: seconds, samplesPerSecond: Double(samples) / seconds,
                      augmentSecondsPerBatch: batches > 0 ? augmenting / Double(batches) : 0)
    }

    /// Samples per second one thread decodes (un-shuffle + zstd) from chunks already in memory: the
    /// ceiling a reader thread approaches when HDF5's raw reads cost nothing. Uses up to `samples` samples.
    public static func decodeLimit(directory: URL, samples: Int = 16) throws -> Double {
        let dataset = try ShardDataset(directory: directory)
        let n = min(samples, dataset.count)
        guard n > 0 else { return 0 }
        var chunks: [[UInt8]] = []
        for index in 0..<n {
            let (shard, local) = dataset.locate(index)
            let reader = try dataset.reader(shard)
            for channel in 0..<3 {
                guard let raw = try reader.rawChunk(local, channel: channel) else {
                    throw ShardError.schema(path: reader.url.path, "sample \(local) is not stored as [shuffle, zstd] chunks")
                }
                chunks.append(raw)
            }
        }
        let bytes = dataset.manifest.shape.reduce(1, *) * 2
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { buffer.deallocate() }
        let start = Date()
        for chunk in chunks { try ShardReader.decodeRawChunk(chunk, into: buffer, bytes: bytes) }
        return Double(n) / Date().timeIntervalSince(start)
    }
}
