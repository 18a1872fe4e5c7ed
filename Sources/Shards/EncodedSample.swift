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
    /// The study's source slices (as `SourcePixels.slices`; empty without source pixels).
    public var sourceSlices: [SourceSlice]
    /// Their pixel count (the sum of their rows × columns): the values the source chunks hold before their zero padding.
    public var sourceElements: Int
    /// The source pixels cut into `ShardSchema.sourceChunkElements`-value chunks, the last one zero-padded, each exactly
    /// as the HDF5 filters of `source_pixels` would store it (shuffled, one zstd frame).
    public var sourceChunks: [[UInt8]]

    /// A sample from already encoded chunks; traps unless the array sizes match the schema and the source chunks
    /// number ⌈`sourceElements` / `ShardSchema.sourceChunkElements`⌉ for the slices' pixel count.
    public init(studyID: Int64, shape: [Int], zstdLevel: Int, chunks: [[UInt8]], present: [UInt8], affine: [Double],
                keypoints: [Float], norm: [Float], labels: [Int8], sourceSlices: [SourceSlice] = [],
                sourceElements: Int = 0, sourceChunks: [[UInt8]] = []) {
        precondition(shape.count == 3 && chunks.count == 3, "three chunks of a (D, H, W) grid")
        precondition(present.count == 3 && affine.count == 16 && keypoints.count == 75 && norm.count == 6 && labels.count == 25)
        precondition(sourceElements == sourceSlices.reduce(0) { $0 + $1.pixelCount }, "source elements do not match the slices")
        precondition(sourceChunks.count == Self.sourceChunkCount(elements: sourceElements), "source chunks do not cover the elements")
        precondition(sourceSlices.allSatisfy { (0..<3).contains($0.channel) && $0.rows > 0 && $0.columns > 0 },
                     "a source slice's channel is not 0, 1 or 2 or its matrix is empty")
        self.studyID = studyID
        self.shape = shape
        self.zstdLevel = zstdLevel
        self.chunks = chunks
        self.present = present
        self.affine = affine
        self.keypoints = keypoints
        self.norm = norm
        self.labels = labels
        self.sourceSlices = sourceSlices
        self.sourceElements = sourceElements
        self.sourceChunks = sourceChunks
    }

    /// Encodes `sample`'s three channels (shuffle + zstd at `zstdLevel`, as the dataset's filters
    /// would) on three threads, and its source pixels chunk by chunk — `sources` when given, else `sample.sources`; the
    /// same sample, sources and level always give the same bytes.
    public init(encoding sample: FusedSample, sources: SourcePixels? = nil, zstdLevel: Int) throws {
        let sources = sources ?? sample.sources
        let channelBytes = sample.shape.reduce(1, *) * 2
        let (encoded, failures) = sample.volume.withUnsafeBytes {
            Self.encodeChunks($0, count: 3, chunkBytes: channelBytes, zstdLevel: zstdLevel)
        }
        for (channel, failure) in failures.enumerated() {
            if let failure { throw ShardError.sample(studyID: sample.studyID, "channel \(channel) does not compress: \(failure)") }
        }
        let sourceChunks = try Self.encodeSourceChunks(sources.pixels, studyID: sample.studyID, zstdLevel: zstdLevel)
        self.init(studyID: sample.studyID, shape: sample.shape, zstdLevel: zstdLevel, chunks: encoded, present: sample.present,
                  affine: sample.affine, keypoints: sample.keypoints, norm: sample.norm, labels: sample.labels,
                  sourceSlices: sources.slices, sourceElements: sources.pixels.count, sourceChunks: sourceChunks)
    }

    /// Compressed bytes of the three chunks.
    public var compressedBytes: Int { chunks.reduce(0) { $0 + $1.count } }

    /// Compressed bytes of the source chunks.
    public var compressedSourceBytes: Int { sourceChunks.reduce(0) { $0 + $1.count } }

    /// Chunks of `source_pixels` that `elements` values take: ⌈elements / `ShardSchema.sourceChunkElements`⌉.
    public static func sourceChunkCount(elements: Int) -> Int {
        (elements + ShardSchema.sourceChunkElements - 1) / ShardSchema.sourceChunkElements
    }

    /// Cuts `pixels` into `ShardSchema.sourceChunkElements`-value chunks (the last zero-padded) and encodes each as
    /// the [shuffle, zstd] filters of `source_pixels` would, on the study's threads.
    static func encodeSourceChunks(_ pixels: [Float16], studyID: Int64, zstdLevel: Int) throws -> [[UInt8]] {
        let count = sourceChunkCount(elements: pixels.count)
        guard count > 0 else { return [] }
        // The padded copy: whole chunks, the tail zero, so that every chunk is encoded from the same number of bytes.
        var padded = pixels
        padded.append(contentsOf: repeatElement(Float16(0), count: count * ShardSchema.sourceChunkElements - pixels.count))
        let (encoded, failures) = padded.withUnsafeBytes {
            encodeChunks($0, count: count, chunkBytes: ShardSchema.sourceChunkElements * 2, zstdLevel: zstdLevel)
        }
        if let (chunk, failure) = failures.enumerated().first(where: { $0.element != nil }) {
            throw ShardError.sample(studyID: studyID, "source pixels chunk \(chunk) does not compress: \(failure!)")
        }
        return encoded
    }

    /// Encodes `count` consecutive chunks of `chunkBytes` bytes of `source` (2-byte elements) as the [shuffle, zstd] filters
    /// would store them, one frame each, on the study's threads: each chunk's frame (empty where it failed) and failure.
    /// The same bytes and level always give the same frames.
    static func encodeChunks(_ source: UnsafeRawBufferPointer, count: Int, chunkBytes: Int, zstdLevel: Int) -> (frames: [[UInt8]], failures: [String?]) {
        let capacity = fz_encode_bound(chunkBytes)
        var encoded = [[UInt8]](repeating: [], count: count)
        var failures = [String?](repeating: nil, count: count)
        encoded.withUnsafeMutableBufferPointer { encoded in
            failures.withUnsafeMutableBufferPointer { failures in
                // Each iteration reads its own chunk of `source` and writes only its own slot of `encoded` and `failures`.
                nonisolated(unsafe) let source = source, encoded = encoded, failures = failures
                StudyParallelism.forEach(count) { chunk in
                    var failure: UnsafePointer<CChar>? = nil
                    // Not zero-filled: the encoder writes the first `written` bytes, and only those are kept.
                    let frame = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
                        var written = 0
                        failure = fz_encode_shuffled_zstd(source.baseAddress! + chunk * chunkBytes, chunkBytes, 2,
                                                          Int32(zstdLevel), buffer.baseAddress!, capacity, &written)
                        initialized = failure == nil ? written : 0
                    }
                    failures[chunk] = failure.map { String(cString: $0) }
                    encoded[chunk] = frame
                }
            }
        }
        return (encoded, failures)
    }
}
