import CHDF5
import Core
import Foundation

/// A `FusedSample` whose three volume chunks are already encoded for the shards' [shuffle, zstd]
/// pipeline, so that the costly compression runs in an ingest worker (or comes from a cache) and a
/// `ShardWriter` only copies bytes into the file.
public struct EncodedSample: Sendable {
    /// Study id (as `FusedSample.studyID`).
    public var studyID: Int64
    /// Grid size (D, H, W).
    public var shape: [Int]
    /// Zstandard level the chunks were compressed with.
    public var zstdLevel: Int
    /// Per channel: one chunk exactly as the HDF5 filters would store it (shuffled, one zstd frame).
    public var chunks: [[UInt8]]
    /// 1 where the channel's series was found (as `FusedSample.present`).
    public var present: [UInt8]
    /// 4 × 4 row-major voxel → patient LPS mm (as `FusedSample.affine`).
    public var affine: [Double]
    /// 25 × 3 keypoint voxel coordinates (as `FusedSample.keypoints`).
    public var keypoints: [Float]
    /// 3 × 2 normalization ranges (as `FusedSample.norm`).
    public var norm: [Float]
    /// 25 severity classes (as `FusedSample.labels`).
    public var labels: [Int8]

    /// A sample from already encoded chunks; traps unless the array sizes match the schema.
    public init(studyID: Int64, shape: [Int], zstdLevel: Int, chunks: [[UInt8]], present: [UInt8], affine: [Double],
                keypoints: [Float], norm: [Float], labels: [Int8]) {
        precondition(shape.count == 3 && chunks.count == 3, "three chunks of a (D, H, W) grid")
        precondition(present.count == 3 && affine.count == 16 && keypoints.count == 75 && norm.count == 6 && labels.count == 25)
        self.studyID = studyID
        self.shape = shape
        self.zstdLevel = zstdLevel
        self.chunks = chunks
        self.present = present
        self.affine = affine
        self.keypoints = keypoints
        self.norm = norm
        self.labels = labels
    }

    /// Encodes `sample`'s three channels (shuffle + zstd at `zstdLevel`, as the dataset's filters
    /// would) on three threads; the same sample and level always give the same bytes.
    public init(encoding sample: FusedSample, zstdLevel: Int) throws {
        let channelBytes = sample.shape.reduce(1, *) * 2
        let capacity = fz_encode_bound(channelBytes)
        var encoded = [[UInt8]](repeating: [], count: 3)
        var failures = [String?](repeating: nil, count: 3)
        sample.volume.withUnsafeBytes { volume in
            encoded.withUnsafeMutableBufferPointer { encoded in
                failures.withUnsafeMutableBufferPointer { failures in
                    // Each thread reads its own channel of `volume` and writes only its own slot of `encoded` and `failures`.
                    nonisolated(unsafe) let volume = volume, encoded = encoded, failures = failures
                    StudyParallelism.forEach(3) { channel in
                        var failure: UnsafePointer<CChar>? = nil
                        // Not zero-filled: the encoder writes the first `written` bytes, and only those are kept.
                        let frame = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
                            var written = 0
                            failure = fz_encode_shuffled_zstd(volume.baseAddress! + channel * channelBytes, channelBytes, 2,
                                                              Int32(zstdLevel), buffer.baseAddress!, capacity, &written)
                            initialized = failure == nil ? written : 0
                        }
                        failures[channel] = failure.map { String(cString: $0) }
                        encoded[channel] = frame
                    }
                }
            }
        }
        for (channel, failure) in failures.enumerated() {
            if let failure { throw ShardError.sample(studyID: sample.studyID, "channel \(channel) does not compress: \(failure)") }
        }
        self.init(studyID: sample.studyID, shape: sample.shape, zstdLevel: zstdLevel, chunks: encoded, present: sample.present,
                  affine: sample.affine, keypoints: sample.keypoints, norm: sample.norm, labels: sample.labels)
    }

    /// Compressed bytes of the three chunks.
    public var compressedBytes: Int { chunks.reduce(0) { $0 + $1.count } }
}
