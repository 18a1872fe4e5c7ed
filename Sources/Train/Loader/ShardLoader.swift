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

    /// Training defaults: batch 8, shuffled, seed 0, last partial batch dropped, all cores, 4 batches ahead, 3 channels.
    public init(batchSize: Int = 8, shuffle: Bool = true, seed: UInt64 = 0, dropLast: Bool = true,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount, prefetch: Int = 4, channels: [Int] = [0, 1, 2]) {
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.seed = seed
        self.dropLast = dropLast
        self.threads = threads
        self.prefetch = prefetch
        self.channels = channels
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

    /// Number of samples.
    public var count: Int { indices.count }
}

/// Streams batches from a shard folder: a selection of samples (a fold), a seeded order per epoch,
/// optional per-sample weights, and batches as tensors on the training device.
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

    /// A loader over the samples of `studies` (nil: all), weighted by `weights` (by study id; nil: uniform).
    public init(dataset: ShardDataset, studies: Set<Int64>? = nil, weights: [Int64: Double]? = nil,
                options: LoaderOptions = LoaderOptions(), device: Device = .cpu) throws {
        guard options.batchSize > 0 else { throw TorchError("loader batch size must be positive, got \(options.batchSize)") }
        guard !options.channels.isEmpty, options.channels.allSatisfy({ (0..<3).contains($0) }) else {
            throw TorchError("loader channels must be a non-empty subset of 0, 1, 2; got \(options.channels)")
        }
        self.dataset = dataset
        samples = dataset.studyIDs.indices.filter { studies?.contains(dataset.studyIDs[$0]) ?? true }
        if let weights {
            let w = samples.map { weights[dataset.studyIDs[$0]] ?? 1 }
            guard w.allSatisfy({ $0 >= 0 && $0.isFinite }), w.contains(where: { $0 > 0 }) else {
                throw TorchError("loader weights must be finite, non-negative and not all zero")
            }
            self.weights = w
        } else {
            self.weights = nil
        }
        self.options = options
        self.device = device
    }

    /// Batches in one epoch.
    public var batchesPerEpoch: Int {
        let n = samples.count
        return options.dropLast ? n / options.batchSize : (n + options.batchSize - 1) / options.batchSize
    }

    /// Dataset indices of `epoch` in the order they are read: a pure function of (seed, epoch).
    /// With weights, `samples.count` draws with replacement proportional to the weights.
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
        var order = samples
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }

    /// The batches of `position.epoch` from `position.batch` on.
    public func batches(from position: LoaderPosition) -> LoaderEpoch {
        LoaderEpoch(loader: self, order: order(epoch: position.epoch), position: position)
    }

    /// Reads the samples at `indices` into one batch on the device.
    func makeBatch(_ indices: [Int]) throws -> Batch {
        let channels = options.channels
        var volumes: [Float16] = []
        var labels: [Int64] = []
        var present: [Float] = []
        var keypoints: [Float] = []
        var shape: [Int] = []
        for index in indices {
            let sample = try dataset.read(index)
            shape = sample.shape
            let voxels = sample.shape.reduce(1, *)
            if volumes.isEmpty { volumes.reserveCapacity(indices.count * channels.count * voxels) }
            for c in channels { volumes.append(contentsOf: sample.volume[(c * voxels)..<((c + 1) * voxels)]) }
            labels.append(contentsOf: sample.labels.map(Int64.init))
            present.append(contentsOf: channels.map { Float(sample.present[$0]) })
            keypoints.append(contentsOf: sample.keypoints)
        }
        let b = indices.count
        return Batch(indices: indices, studyIDs: indices.map { dataset.studyIDs[$0] },
                     volumes: try Tensor(volumes, shape: [b, channels.count] + shape, device: device),
                     labels: try Tensor(labels, shape: [b, 25], device: device),
                     present: try Tensor(present, shape: [b, channels.count], device: device),
                     keypoints: try Tensor(keypoints, shape: [b, 25, 3], device: device))
    }
}

/// The remaining batches of one epoch; `position` is where a checkpoint taken now would resume.
public final class LoaderEpoch {
    private let loader: ShardLoader
    private let order: [Int]
    /// The next batch to be returned.
    public private(set) var position: LoaderPosition

    init(loader: ShardLoader, order: [Int], position: LoaderPosition) {
        self.loader = loader
        self.order = order
        self.position = position
    }

    /// The next batch, or nil at the end of the epoch.
    public func next() throws -> Batch? {
        guard position.batch < loader.batchesPerEpoch else { return nil }
        let size = loader.options.batchSize
        let start = position.batch * size
        let batch = try loader.makeBatch(Array(order[start..<min(start + size, order.count)]))
        position.batch += 1
        return batch
    }
}

/// A small seeded generator (SplitMix64): the same numbers on every platform and thread count.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
