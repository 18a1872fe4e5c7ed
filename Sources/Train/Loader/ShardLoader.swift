import Core
import Foundation
import Shards

/// How a `ShardLoader` selects, orders and batches samples.
public struct LoaderOptions: Sendable, Equatable {
    /// Samples per batch.
    public var batchSize: Int
    /// Draw a seeded permutation per epoch (otherwise dataset order).
    public var shuffle: Bool
    /// Seed of every epoch's order: the order is a function of (seed, epoch) alone.
    public var seed: UInt64
    /// Drop a last batch smaller than `batchSize` (training) or keep it (validation, prediction).
    public var dropLast: Bool
    /// Reader threads that decode chunks (the order never depends on them).
    public var threads: Int
    /// Ready batches kept ahead of the consumer (memory = prefetch × batch × sample).
    public var prefetch: Int
    /// Channels fed to the model, in order (indices into `Channels.names`).
    public var channels: [Int]
    /// Shards shuffled together (see `ShardLoader.order(epoch:)`); 0 shuffles all samples as one window.
    public var shuffleWindow: Int
    /// Hash each shard against the manifest's sha256 the first time it is read (a full extra read of the
    /// file; off by default, when only the cheap size check runs).
    public var verifyChecksums: Bool
    /// This process's share of each batch in data-parallel training (see `RankShare`); one rank by default.
    public var rankShare = RankShare.whole
    /// Also read each sample's source slices (`Batch.sources`), for a model whose stage two crops them.
    public var sourcePixels = false
    /// With `sourcePixels`, the channels whose slices the batch carries (the others' are left out: one padding slice).
    public var sourceChannels = [0, 1, 2]

    /// Training defaults: batch 8, shuffled, seed 0, last partial batch dropped, all cores, 4 batches ahead,
    /// 3 channels, windows of 8 shards, no hashing.
    public init(batchSize: Int = 8, shuffle: Bool = true, seed: UInt64 = 0, dropLast: Bool = true,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount, prefetch: Int = 4, channels: [Int] = [0, 1, 2],
                shuffleWindow: Int = 8, verifyChecksums: Bool = false) {
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.seed = seed
        self.dropLast = dropLast
        self.threads = threads
        self.prefetch = prefetch
        self.channels = channels
        self.shuffleWindow = shuffleWindow
        self.verifyChecksums = verifyChecksums
    }
}

/// Where a loader stands: the next batch of an epoch. A checkpoint stores it; restoring it yields
/// exactly the batch the interrupted run would have read next.
public struct LoaderPosition: Codable, Equatable, Sendable {
    /// Epoch (0-based) and index of its next batch.
    public var epoch: Int, batch: Int

    /// The position `batch` of `epoch`.
    public init(epoch: Int, batch: Int = 0) {
        self.epoch = epoch
        self.batch = batch
    }
}

/// One batch, ready for the model, on the loader's device.
public struct Batch {
    /// Dataset indices of the samples (into `ShardDataset`), in batch order.
    public var indices: [Int]
    /// Their study ids.
    public var studyIDs: [Int64]
    /// (B, C, D, H, W) float16, C = the selected channels.
    public var volumes: Tensor
    /// (B, 25) int64 classes 0/1/2, −1 where the label is missing (RSNA.labelColumns order).
    public var labels: Tensor
    /// (B, C) float32: 1 where the channel's series was present.
    public var present: Tensor
    /// (B, 25, 3) float32 voxel coordinates (d, h, w) of the label keypoints, NaN where absent.
    public var keypoints: Tensor
    /// The samples' source slices when the loader reads them (`LoaderOptions.sourcePixels`), else nil.
    public var sources: SourceBatch?

    /// A batch from its parts (the loader makes them; tests and predictors may build their own).
    public init(indices: [Int], studyIDs: [Int64], volumes: Tensor, labels: Tensor, present: Tensor, keypoints: Tensor,
                sources: SourceBatch? = nil) {
        self.indices = indices
        self.studyIDs = studyIDs
        self.volumes = volumes
        self.labels = labels
        self.present = present
        self.keypoints = keypoints
        self.sources = sources
    }

    /// Number of samples.
    public var count: Int { indices.count }
}

/// A sample the loader could not deliver: names the shard, the sample in it and its study.
public struct LoaderError: Error, CustomStringConvertible {
    /// The shard file.
    public var shard: String
    /// The sample's index within the shard, and its study id.
    public var sample: Int, studyID: Int64
    /// What went wrong (the shard's path left out: `description` leads with it).
    public var message: String

    /// "SHARD: sample N (study S): what went wrong".
    public var description: String { "\(shard): sample \(sample) (study \(studyID)): \(message)" }
}

/// Streams batches from a shard folder: a selection of samples (a fold), a seeded order per epoch,
/// optional per-sample weights, and batches as tensors on the training device.
///
/// `options.threads` reader threads fetch raw chunks through HDF5 and decode them (un-shuffle + zstd)
/// straight into the float16 batch buffer, each thread taking the next sample of the epoch's order; at
/// most `options.prefetch` batch buffers exist ahead of the consumer, so memory does not grow with the
/// dataset. Batches are handed over in order, so the sequence depends on (seed, epoch) and never on
/// the thread count or timing. With a CUDA device the buffers are pinned and copied without blocking.
public final class ShardLoader {
    /// The shards.
    public let dataset: ShardDataset
    /// Selected dataset indices, in dataset order.
    public let samples: [Int]
    /// Sampling weight per selected sample (same order as `samples`), or nil for uniform.
    public let weights: [Double]?
    /// Batching and ordering options.
    public let options: LoaderOptions
    /// Where batches are delivered.
    public let device: Device
    /// Batch buffers reused across batches and epochs (CPU; pinned buffers are pooled by libtorch's host allocator).
    let pool: BufferPool

    /// A loader over the samples of `studies` (nil: all), weighted by `weights` (by study id; nil: uniform).
    public init(dataset: ShardDataset, studies: Set<Int64>? = nil, weights: [Int64: Double]? = nil,
                options: LoaderOptions = LoaderOptions(), device: Device = .cpu) throws {
        guard options.batchSize > 0 else { throw TrainError(.loader, "loader batch size must be positive, got \(options.batchSize)") }
        guard !options.channels.isEmpty, options.channels.allSatisfy({ (0..<3).contains($0) }) else {
            throw TrainError(.loader, "loader channels must be a non-empty subset of 0, 1, 2; got \(options.channels)")
        }
        guard options.threads > 0, options.prefetch > 0, options.shuffleWindow >= 0 else {
            throw TrainError(.loader, "loader threads and prefetch must be positive and shuffleWindow not negative; got "
                             + "\(options.threads), \(options.prefetch), \(options.shuffleWindow)")
        }
        guard options.rankShare.ranks == 1 || options.dropLast else {
            throw TrainError(.loader, "loader: a rank's share of the batches needs dropLast (every rank must take as many steps)")
        }
        self.dataset = dataset
        samples = dataset.studyIDs.indices.filter { studies?.contains(dataset.studyIDs[$0]) ?? true }
        if let weights {
            let w = samples.map { weights[dataset.studyIDs[$0]] ?? 1 }
            guard w.allSatisfy({ $0 >= 0 && $0.isFinite }), w.contains(where: { $0 > 0 }) else {
                throw TrainError(.loader, "loader weights must be finite, non-negative and not all zero")
            }
            self.weights = w
        } else {
            self.weights = nil
        }
        self.options = options
        self.device = device
        pool = BufferPool(capacity: options.prefetch + 2, pinned: device.isCUDA)
    }

    /// Batch buffers allocated so far (all epochs): with a consumer that lets go of its batches this stops
    /// at prefetch + 2 or fewer, whatever the dataset size, as buffers are reused.
    public var buffersAllocated: Int { pool.allocated }

    /// Batches in one epoch.
    public var batchesPerEpoch: Int {
        if options.rankShare.ranks > 1 { return samples.count / (options.batchSize * options.rankShare.ranks) }
        let n = samples.count
        return options.dropLast ? n / options.batchSize : (n + options.batchSize - 1) / options.batchSize
    }

    /// Dataset indices of `epoch` in the order they are read: a pure function of (seed, epoch).
    /// With weights, `samples.count` draws with replacement proportional to the weights (no locality).
    ///
    /// Shuffled orders are quasi-random, as FFCV's QUASI_RANDOM: the shards are permuted, taken
    /// `shuffleWindow` at a time, and the samples of each window permuted among themselves. The
    /// trade-off: at any time the readers touch only the window's shards (a working set of a few GB
    /// that the page cache and read-ahead serve, instead of seeks across the whole cohort on a disk or
    /// network file system), but a batch mixes samples of those shards only, so any order the writer
    /// left in the shards (site, date) shows as slowly drifting batch composition within an epoch.
    /// Shards of ~250 samples in windows of 8 give ~2,000 candidates per draw, and the windows differ
    /// every epoch. With as many shards as the window or fewer the order is a uniform permutation.
    public func order(epoch: Int) -> [Int] {
        guard options.shuffle || weights != nil else { return samples }
        var rng = SplitMix64(seed: options.seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1))
        if let weights {
            let total = weights.reduce(0, +)
            var cumulative: [Double] = []
            var running = 0.0
            for w in weights { running += w; cumulative.append(running) }
            return samples.indices.map { _ in
                let u = rng.nextUnit() * total
                var low = 0, high = cumulative.count - 1
                while low < high {
                    let mid = (low + high) / 2
                    if cumulative[mid] > u { high = mid } else { low = mid + 1 }
                }
                return samples[low]
            }
        }
        var byShard: [[Int]] = []
        var lastShard = -1
        for index in samples {
            let shard = dataset.locate(index).shard
            if shard != lastShard { byShard.append([]) }
            byShard[byShard.count - 1].append(index)
            lastShard = shard
        }
        rng.shuffle(&byShard)
        let window = options.shuffleWindow == 0 ? max(byShard.count, 1) : options.shuffleWindow
        var order: [Int] = []
        order.reserveCapacity(samples.count)
        for start in stride(from: 0, to: byShard.count, by: window) {
            var pool = Array(byShard[start..<min(start + window, byShard.count)].joined())
            rng.shuffle(&pool)
            order += pool
        }
        return order
    }

    /// The batches of `position.epoch` from `position.batch` on; reader threads start decoding now.
    public func batches(from position: LoaderPosition) -> LoaderEpoch {
        LoaderEpoch(loader: self, order: options.rankShare.share(of: order(epoch: position.epoch), batchSize: options.batchSize),
                    position: position)
    }
}

/// The remaining batches of one epoch; `position` is where a checkpoint taken now would resume.
/// Dropping it stops its reader threads.
public final class LoaderEpoch {
    private let loader: ShardLoader
    private let pipeline: PrefetchPipeline
    /// The next batch to be returned.
    public private(set) var position: LoaderPosition

    init(loader: ShardLoader, order: [Int], position: LoaderPosition) {
        self.loader = loader
        self.position = position
        pipeline = PrefetchPipeline(loader: loader, order: order, firstBatch: position.batch)
        pipeline.start(threads: loader.options.threads)
    }

    deinit { pipeline.stop() }

    /// The next batch, or nil at the end of the epoch. Throws a `LoaderError` naming the shard and sample
    /// when one of the batch's samples cannot be read (and again on every later call).
    public func next() throws -> Batch? {
        guard let buffer = try pipeline.take() else { return nil }
        let device = loader.device
        let b = buffer.indices.count, c = loader.options.channels.count
        let host = buffer.takeVolumes()
        let volumes = device.isCUDA ? try host.to(device: device, nonBlocking: true) : host
        let sources = try loader.options.sourcePixels ? SourceBatch(samples: buffer.sources.map { $0! }).to(device: device) : nil
        let batch = Batch(indices: buffer.indices, studyIDs: buffer.indices.map { loader.dataset.studyIDs[$0] },
                          volumes: volumes,
                          labels: try Tensor(buffer.labels, shape: [b, 25], device: device),
                          present: try Tensor(buffer.present, shape: [b, c], device: device),
                          keypoints: try Tensor(buffer.keypoints, shape: [b, 25, 3], device: device), sources: sources)
        position.batch += 1
        return batch
    }

    /// Samples decoded so far by this epoch's readers (they stop `prefetch` batches ahead of the consumer).
    public var samplesDecoded: Int { pipeline.statistics.decoded }

    /// The most batch buffers that existed at once ahead of the consumer (never above `prefetch`).
    public var peakBuffersInFlight: Int { pipeline.statistics.peakBuffers }
    /// Readers now waiting for the consumer (their next batch is `prefetch` or more ahead of it).
    public var readersWaiting: Int { pipeline.statistics.waiting }
}

/// Host batch buffers, reused once nobody holds them: a fresh 100 MB buffer costs as much in page
/// faults as a quarter of its decoding. Each buffer handed out is an alias of one the pool keeps, so
/// the storage's use count says when the batch and every view of it are gone.
// Sendable by hand: `kept` and `allocations` are read and written only under `lock`; the Tensors are libtorch
// handles (not Sendable types) handed to the reader threads, whose storage use count (atomic in libtorch) decides reuse.
final class BufferPool: @unchecked Sendable {
    private let capacity: Int
    private let pinned: Bool
    private let lock = NSLock()
    private var kept: [Tensor] = []
    private var allocations = 0
    /// Buffers allocated so far.
    var allocated: Int { lock.withLock { allocations } }

    init(capacity: Int, pinned: Bool) {
        self.capacity = capacity
        self.pinned = pinned
    }

    /// A float16 buffer of `dims`: a kept one no one holds, else a new one (kept when there is room).
    func acquire(_ dims: [Int]) throws -> Tensor {
        try lock.withLock {
            if !pinned, let free = kept.first(where: { $0.storageUseCount == 1 && $0.shape == dims }) { return try free.alias() }
            let fresh = pinned ? try Tensor.emptyPinned(dims, dtype: .float16) : try Tensor.empty(dims, dtype: .float16)
            allocations += 1
            // Pinned buffers are pooled by libtorch's caching host allocator, which also waits for their copies.
            if !pinned && kept.count < capacity { kept.append(fresh) }
            return try fresh.alias()
        }
    }
}

/// One batch being filled: the host buffer the readers decode into, and the per-sample arrays.
// Sendable by hand: the pipeline's `condition` guards it; each reader writes only its own sample's slots of
// `base` (outside the condition) and of the arrays (with it held), and `remaining` with the condition held; once
// delivered (out of the pipeline's `buffers`, nothing remaining), only the consumer touches it (`takeVolumes`).
private final class BatchBuffer: @unchecked Sendable {
    /// The pool's buffer, handed over to the batch (and dropped here) when the batch is delivered: a reader
    /// thread may hold this object a moment longer, and must not keep the pool from reusing the buffer.
    private var volumes: Tensor?
    let base: UnsafeMutableRawPointer
    let indices: [Int]
    var labels: [Int64], present: [Float], keypoints: [Float]
    /// Each sample's source slices, when the loader reads them.
    var sources: [SampleSources?]
    /// Samples not yet decoded.
    var remaining: Int

    init(indices: [Int], channels: Int, shape: [Int], pool: BufferPool) throws {
        let buffer = try pool.acquire([indices.count, channels] + shape)
        volumes = buffer
        base = try buffer.withUnsafeMutableBytes { $0.baseAddress! }
        self.indices = indices
        labels = [Int64](repeating: -1, count: indices.count * 25)
        present = [Float](repeating: 0, count: indices.count * channels)
        keypoints = [Float](repeating: .nan, count: indices.count * 75)
        sources = Array(repeating: nil, count: indices.count)
        remaining = indices.count
    }

    /// The filled buffer, once (the consumer calls this when the batch is delivered).
    func takeVolumes() -> Tensor {
        defer { volumes = nil }
        return volumes!
    }
}

/// The reader threads and the bounded, ordered hand-over of one epoch's batches (read → decode →
/// batch → prefetch, as FFCV and tf.data stage it; the consumer never sees the threads).
// Sendable by hand: the stored vars are guarded by `condition` (documented below; the readers and the consumer wait
// on it, which Synchronization's Mutex cannot do); the lets are immutable or Sendable by hand above.
private final class PrefetchPipeline: @unchecked Sendable {
    private let dataset: ShardDataset
    private let options: LoaderOptions
    private let order: [Int]
    private let shape: [Int]
    private let pool: BufferPool
    /// Batches in the epoch, and the end of the samples they cover.
    private let batchCount: Int, endSample: Int

    private let condition = NSCondition()
    private let finished = DispatchGroup()
    /// Guarded by `condition`: the next sample (position in `order`) a reader takes, the next batch the
    /// consumer takes, the buffers being filled or ready, the first failure, and shutdown.
    private var nextSample: Int
    private var delivered: Int
    private var buffers: [Int: BatchBuffer] = [:]
    private var failure: (batch: Int, error: Error)?
    private var stopping = false
    private var counters = (decoded: 0, peakBuffers: 0, waiting: 0)

    init(loader: ShardLoader, order: [Int], firstBatch: Int) {
        dataset = loader.dataset
        options = loader.options
        self.order = order
        shape = loader.dataset.manifest.shape
        pool = loader.pool
        batchCount = loader.batchesPerEpoch
        endSample = min(order.count, batchCount * options.batchSize)
        delivered = max(firstBatch, 0)
        nextSample = delivered * options.batchSize
    }

    func start(threads: Int) {
        for _ in 0..<threads {
            finished.enter()
            let thread = Thread { [self] in
                work()
                finished.leave()
            }
            thread.name = "fuse3d-loader"
            thread.start()
        }
    }

    /// Stops the readers after the sample each is decoding and waits for them.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        finished.wait()
    }

    var statistics: (decoded: Int, peakBuffers: Int, waiting: Int) {
        condition.lock()
        defer { condition.unlock() }
        return counters
    }

    /// The next complete batch in order, nil at the end of the epoch, or the error of a sample in it.
    func take() throws -> BatchBuffer? {
        condition.lock()
        defer { condition.unlock() }
        guard delivered < batchCount else { return nil }
        while true {
            if let failure, failure.batch <= delivered { throw failure.error }
            if let buffer = buffers[delivered], buffer.remaining == 0 {
                buffers[delivered] = nil
                delivered += 1
                condition.broadcast()
                return buffer
            }
            condition.wait()
        }
    }

    /// A reader: claims the next sample of the order while its batch is within `prefetch` of the
    /// consumer, decodes it into its slot, and marks it done.
    private func work() {
        let b = options.batchSize, c = options.channels.count
        let sampleBytes = c * shape.reduce(1, *) * 2
        while true {
            condition.lock()
            var position = -1
            while !stopping && nextSample < endSample {
                let batch = nextSample / b
                if let failure, batch > failure.batch { break }
                if batch < delivered + options.prefetch {
                    position = nextSample
                    nextSample += 1
                    break
                }
                counters.waiting += 1
                condition.wait()
                counters.waiting -= 1
            }
            guard position >= 0 else {
                condition.unlock()
                return
            }
            let batch = position / b, slot = position % b
            let buffer: BatchBuffer
            do {
                buffer = try bufferLocked(batch)
            } catch {
                fail(batch, error)
                condition.unlock()
                continue
            }
            condition.unlock()

            let index = order[position]
            do {
                let (labels, present, keypoints, sources) = try decode(index, into: buffer.base + slot * sampleBytes)
                condition.lock()
                buffer.sources[slot] = sources
                buffer.labels.replaceSubrange((slot * 25)..<(slot * 25 + 25), with: labels)
                buffer.present.replaceSubrange((slot * c)..<(slot * c + c), with: present)
                buffer.keypoints.replaceSubrange((slot * 75)..<(slot * 75 + 75), with: keypoints)
                buffer.remaining -= 1
                counters.decoded += 1
                if buffer.remaining == 0 { condition.broadcast() }
                condition.unlock()
            } catch {
                condition.lock()
                fail(batch, error)
                condition.unlock()
            }
        }
    }

    /// The buffer of `batch`, allocated by the first reader that needs it (caller holds the lock).
    private func bufferLocked(_ batch: Int) throws -> BatchBuffer {
        if let existing = buffers[batch] { return existing }
        let first = batch * options.batchSize
        let indices = Array(order[first..<min(first + options.batchSize, endSample)])
        let buffer = try BatchBuffer(indices: indices, channels: options.channels.count, shape: shape, pool: pool)
        buffers[batch] = buffer
        counters.peakBuffers = max(counters.peakBuffers, buffers.count)
        return buffer
    }

    /// Records the earliest failing batch (caller holds the lock); the consumer throws on reaching it.
    private func fail(_ batch: Int, _ error: Error) {
        if failure == nil || batch < failure!.batch { failure = (batch, error) }
        condition.broadcast()
    }

    /// Decodes dataset sample `index`'s selected channels into `destination`; returns its label
    /// classes, present flags (selected channels), keypoints and, when the loader reads them, its source slices. Errors
    /// name the shard and sample.
    private func decode(_ index: Int, into destination: UnsafeMutableRawPointer) throws -> ([Int64], [Float], [Float], SampleSources?) {
        let (shard, local) = dataset.locate(index)
        do {
            if options.verifyChecksums { try dataset.verifyChecksum(shard) }
            let reader = try dataset.reader(shard)
            try reader.decode(local, channels: options.channels, into: destination)
            let flags = reader.presentFlags(local)
            let sources = try options.sourcePixels
                ? SampleSources(try reader.readSourcePixels(local), affine: reader.affine(local), channels: Set(options.sourceChannels)) : nil
            return (reader.labels(local).map(Int64.init),
                    options.channels.map { Float(flags[flags.startIndex + $0]) },
                    Array(reader.keypoints(local)), sources)
        } catch {
            let path = dataset.directory.appendingPathComponent(dataset.manifest.shards[shard].file).path
            var message = "\(error)"
            if message.hasPrefix(path + ": ") { message.removeFirst(path.count + 2) }
            throw LoaderError(shard: path, sample: local, studyID: dataset.studyIDs[index], message: message)
        }
    }
}
