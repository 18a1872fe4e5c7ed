import CHDF5
import Core
import Foundation

/// Reads one shard file sample by sample, without loading its volumes: the per-sample arrays
/// (ids, labels, affines, ...) are read on open, each volume on `read(_:)`.
///
/// Refuses a file whose `schema_version` it does not read, or whose datasets do not match
/// data-schema.md. Safe to share between threads: HDF5 (Debian's thread-safe build) serialises its
/// own calls, and for the schema's [shuffle, zstd] chunks only the raw chunk read goes through HDF5 —
/// decompression runs on the calling thread, so several threads decode in parallel.
// Sendable by hand: HDF5 handles are not Sendable types, but Debian's thread-safe HDF5 serialises every call
// on them (see above) and the reader's own state is immutable after init.
public final class ShardReader: @unchecked Sendable {
    /// The shard's path.
    public let url: URL
    /// The file's `schema_version`.
    public let schemaVersion: Int64
    /// Number of samples.
    public let sampleCount: Int
    /// Grid shape (D, H, W).
    public let shape: [Int]
    /// Channel names (attribute `channels`).
    public let channels: [String]
    /// Label column names (attribute `label_columns`).
    public let labelColumns: [String]
    /// Pipeline parameters (attribute `parameters`, a JSON object of strings).
    public let parameters: [String: String]
    /// Study ids in sample order.
    public let studyIDs: [Int64]

    private let file: H5File
    private let volumes: H5Dataset
    private let float16: H5Object
    /// All samples' labels, N × 25, −1 missing (read on open: the summary counts them and the trainer splits by them without decoding volumes).
    public let labels: [Int8]
    /// All samples' present flags, N × 3 (module-internal: the summary counts them without decoding volumes).
    let present: [UInt8]
    private let affine: [Double]
    private let keypoints: [Float]
    private let norm: [Float]
    /// Whether the volumes' filters are exactly [shuffle, zstd], so chunks can be decoded outside HDF5.
    private let decodesChunksItself: Bool

    /// Opens `url` and checks its schema version and datasets.
    public init(url: URL) throws {
        self.url = url
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { throw ShardError.io(path: path, "no such shard") }
        file = try H5File.open(path)
        typealias A = ShardSchema.Attribute
        let version = try file.intAttribute(A.schemaVersion)
        guard let version, ShardSchema.readableVersions.contains(version) else {
            throw ShardError.unsupportedSchemaVersion(path: path, found: version, supported: ShardSchema.readableVersions)
        }
        schemaVersion = version
        channels = try file.stringsAttribute(A.channels) ?? []
        labelColumns = try file.stringsAttribute(A.labelColumns) ?? []
        guard channels == Channels.names else {
            throw ShardError.schema(path: path, "attribute channels is \(channels), expected \(Channels.names)")
        }
        guard labelColumns == RSNA.labelColumns else {
            throw ShardError.schema(path: path, "attribute label_columns is not the 25 RSNA columns in train.csv order")
        }
        let json = try file.stringsAttribute(A.parameters)?.first ?? "{}"
        guard let parsed = try? JSONDecoder().decode([String: String].self, from: Data(json.utf8)) else {
            throw ShardError.schema(path: path, "attribute parameters is not a JSON object of strings")
        }
        parameters = parsed

        typealias D = ShardSchema.Dataset
        volumes = try file.openDataset(D.volumes)
        float16 = .type(try H5.check(id: ch5_float16_le(), path, "create float16 type"))
        let dims = try volumes.dims()
        guard dims.count == 5, dims[1] == 3, try volumes.typeEquals(float16.id) else {
            throw ShardError.schema(path: path, "volumes must be (N, 3, D, H, W) IEEE float16, found dims \(dims)")
        }
        sampleCount = dims[0]
        shape = Array(dims[2...])
        let n = sampleCount
        studyIDs = try Self.small(file, D.studyID, [n], ch5_T_NATIVE_INT64(), .integer(signed: true, size: 8))
        labels = try Self.small(file, D.labels, [n, 25], ch5_T_NATIVE_INT8(), .integer(signed: true, size: 1))
        present = try Self.small(file, D.present, [n, 3], ch5_T_NATIVE_UINT8(), .integer(signed: false, size: 1))
        affine = try Self.small(file, D.affine, [n, 4, 4], ch5_T_NATIVE_DOUBLE(), .float(size: 8))
        keypoints = try Self.small(file, D.keypoints, [n, 25, 3], ch5_T_NATIVE_FLOAT(), .float(size: 4))
        norm = try Self.small(file, D.norm, [n, 3, 2], ch5_T_NATIVE_FLOAT(), .float(size: 4))
        decodesChunksItself = try volumes.chunkDims() == [1, 1] + shape
            && volumes.filters().map(\.id) == [ShardSchema.shuffleFilterID, ShardSchema.zstdFilterID]
    }

    /// Reads sample `index` (its three volume chunks are decompressed now).
    public func read(_ index: Int) throws -> FusedSample {
        precondition((0..<sampleCount).contains(index), "sample \(index) out of 0..<\(sampleCount)")
        try H5.begin(url.path)
        let voxels = 3 * shape.reduce(1, *)
        let volume = try [Float16](unsafeUninitializedCapacity: voxels) { buffer, initialized in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            if try !decodesChunksItself || !decodeChunks(sample: index, into: base, channelBytes: voxels / 3 * 2) {
                try volumes.read(start: index, count: 1, base, memType: float16.id)
            }
            initialized = voxels
        }
        return FusedSample(studyID: studyIDs[index], shape: shape, volume: volume,
                           present: Array(present[(3 * index)..<(3 * index + 3)]),
                           affine: Array(affine[(16 * index)..<(16 * index + 16)]),
                           keypoints: Array(keypoints[(75 * index)..<(75 * index + 75)]),
                           norm: Array(norm[(6 * index)..<(6 * index + 6)]),
                           labels: Array(labels[(25 * index)..<(25 * index + 25)]))
    }

    /// Reads samples `range` in order, one at a time.
    public func read(_ range: Range<Int>) throws -> [FusedSample] {
        try range.map { try read($0) }
    }

    /// Reads one channel of sample `index` (D × H × W values): one chunk is decompressed.
    public func readChannel(_ index: Int, channel: Int) throws -> [Float16] {
        precondition((0..<sampleCount).contains(index), "sample \(index) out of 0..<\(sampleCount)")
        precondition((0..<3).contains(channel), "channel \(channel) out of 0..<3")
        try H5.begin(url.path)
        let voxels = shape.reduce(1, *)
        if decodesChunksItself {
            var decoded = false
            let volume = try [Float16](unsafeUninitializedCapacity: voxels) { buffer, initialized in
                decoded = try decodeChunk(sample: index, channel: channel, into: UnsafeMutableRawPointer(buffer.baseAddress!),
                                          bytes: voxels * 2)
                initialized = decoded ? voxels : 0
            }
            if decoded { return volume }
        }
        return Array(try read(index).volume[(channel * voxels)..<((channel + 1) * voxels)])
    }

    /// Decodes channels `channels` of sample `index` (in that order, each D × H × W float16 values)
    /// into `destination`, which holds `channels.count` × D × H × W × 2 bytes: the loader's path, straight
    /// into a batch buffer with no intermediate copy. A chunk that does not decode is an error naming
    /// the shard, the sample, its study and the channel.
    public func decode(_ index: Int, channels: [Int], into destination: UnsafeMutableRawPointer) throws {
        precondition((0..<sampleCount).contains(index), "sample \(index) out of 0..<\(sampleCount)")
        precondition(channels.allSatisfy { (0..<3).contains($0) }, "channels \(channels) out of 0..<3")
        try H5.begin(url.path)
        let channelBytes = shape.reduce(1, *) * 2
        for (k, channel) in channels.enumerated() {
            let target = destination + k * channelBytes
            if try decodesChunksItself && decodeChunk(sample: index, channel: channel, into: target, bytes: channelBytes) { continue }
            let whole = try read(index).volume
            let voxels = channelBytes / 2
            whole.withUnsafeBytes { raw in
                target.copyMemory(from: raw.baseAddress! + channel * channelBytes, byteCount: voxels * 2)
            }
        }
    }

    /// Label classes of sample `index` (25 values, −1 missing), without decoding its volume.
    public func labels(_ index: Int) -> ArraySlice<Int8> { labels[(25 * index)..<(25 * index + 25)] }

    /// `present` flags of sample `index` (3 values), without decoding its volume.
    public func presentFlags(_ index: Int) -> ArraySlice<UInt8> { present[(3 * index)..<(3 * index + 3)] }

    /// Keypoints of sample `index` (25 × 3 values (d, h, w), NaN absent), without decoding its volume.
    public func keypoints(_ index: Int) -> ArraySlice<Float> { keypoints[(75 * index)..<(75 * index + 75)] }

    /// Sample `index`'s affine (16 values, row-major: voxel (d, h, w, 1) → patient LPS mm).
    public func affine(_ index: Int) -> ArraySlice<Double> { affine[(16 * index)..<(16 * index + 16)] }

    /// The stored bytes of chunk (sample, channel), still shuffled and compressed, or nil when HDF5's own
    /// pipeline must decode it (never written, or a filter skipped). For the decode-limit benchmark.
    public func rawChunk(_ index: Int, channel: Int) throws -> [UInt8]? {
        try H5.begin(url.path)
        let offset = [index, channel, 0, 0, 0]
        let stored = try volumes.storedChunkSize(at: offset)
        guard decodesChunksItself, stored > 0 else { return nil }
        var mask: UInt32 = 0
        let raw = try [UInt8](unsafeUninitializedCapacity: stored) { buffer, initialized in
            mask = try volumes.readRawChunk(at: offset, into: UnsafeMutableRawPointer(buffer.baseAddress!))
            initialized = stored
        }
        return mask == 0 ? raw : nil
    }

    /// Decodes one chunk from `rawChunk` into `bytes` at `destination` on the calling thread (byte
    /// un-shuffle + zstd), or throws the codec's message.
    public static func decodeRawChunk(_ raw: [UInt8], into destination: UnsafeMutableRawPointer, bytes: Int) throws {
        if let failure = raw.withUnsafeBytes({ fz_decode_shuffled_zstd($0.baseAddress!, raw.count, destination, bytes, 2) }) {
            throw ShardError.io(path: "in-memory chunk", String(cString: failure))
        }
    }

    /// Decodes the sample's three chunks on this thread; false when one is stored otherwise (see
    /// `decodeChunk`), leaving the sample to HDF5's own pipeline.
    private func decodeChunks(sample: Int, into destination: UnsafeMutableRawPointer, channelBytes: Int) throws -> Bool {
        for channel in 0..<3 {
            guard try decodeChunk(sample: sample, channel: channel, into: destination + channel * channelBytes,
                                  bytes: channelBytes) else { return false }
        }
        return true
    }

    /// Reads chunk (sample, channel) raw through HDF5 and decodes it on this thread into `bytes` at
    /// `destination`. Returns false, writing nothing, when the chunk was never written or was stored
    /// with a filter skipped: HDF5's pipeline must handle those.
    private func decodeChunk(sample: Int, channel: Int, into destination: UnsafeMutableRawPointer, bytes: Int) throws -> Bool {
        let offset = [sample, channel, 0, 0, 0]
        let stored = try volumes.storedChunkSize(at: offset)
        guard stored > 0 else { return false }
        var mask: UInt32 = 0
        let raw = try [UInt8](unsafeUninitializedCapacity: stored) { buffer, initialized in
            mask = try volumes.readRawChunk(at: offset, into: UnsafeMutableRawPointer(buffer.baseAddress!))
            initialized = stored
        }
        guard mask == 0 else { return false }
        if let failure = raw.withUnsafeBytes({ fz_decode_shuffled_zstd($0.baseAddress!, stored, destination, bytes, 2) }) {
            throw ShardError.schema(path: url.path, "volumes chunk (sample \(sample), study \(studyIDs[sample]), channel \(channel)) "
                                    + "does not decode: \(String(cString: failure))")
        }
        return true
    }

    /// The (sample, channel) chunks of `volumes` that were never written (a torn or foreign file).
    func unwrittenChunks() throws -> [(sample: Int, channel: Int)] {
        try H5.begin(url.path)
        var missing: [(sample: Int, channel: Int)] = []
        for sample in 0..<sampleCount {
            for channel in 0..<3 where try volumes.storedChunkSize(at: [sample, channel, 0, 0, 0]) == 0 {
                missing.append((sample, channel))
            }
        }
        return missing
    }

    /// The volumes' storage layout, for verification: chunk dims and filter pipeline (id, cd_values).
    public func volumeLayout() throws -> (chunk: [Int]?, filters: [(id: Int32, values: [UInt32])], storedBytes: Int) {
        try H5.begin(url.path)
        return (try volumes.chunkDims(), try volumes.filters(), volumes.storageSize())
    }

    private enum Element {
        case integer(signed: Bool, size: Int)
        case float(size: Int)
    }

    /// Reads a whole small dataset after checking its dims and element type.
    private static func small<T>(_ file: H5File, _ name: String, _ dims: [Int], _ memType: hid_t,
                                 _ element: Element) throws -> [T] {
        let dataset = try file.openDataset(name)
        let found = try dataset.dims()
        let type = try dataset.elementType()
        let typeOK: Bool
        switch element {
        case let .integer(signed, size): typeOK = type.typeClass == H5T_INTEGER && type.signed == signed && type.size == size
        case let .float(size): typeOK = type.typeClass == H5T_FLOAT && type.size == size
        }
        guard found == dims, typeOK else {
            throw ShardError.schema(path: file.path, "dataset \(name) must be \(element) with dims \(dims), found \(type.size)-byte elements with dims \(found)")
        }
        let count = dims.reduce(1, *)
        return try [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { try dataset.readAll(UnsafeMutableRawPointer(buffer.baseAddress!), memType: memType) }
            initialized = count
        }
    }
}
