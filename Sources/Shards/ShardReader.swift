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
    /// `source_pixels` (schema 2), nil in a schema-1 file.
    private let sourcePixels: H5Dataset?
    /// Its length in elements.
    private let sourceLength: Int
    /// Whether its filters are exactly [shuffle, zstd], so its chunks can be decoded outside HDF5.
    private let decodesSourceChunksItself: Bool
    /// Every row of `source_slices` / `source_geometry`, validated on open, in file order.
    private let sourceTable: [SourceSlice]
    /// Each row's element offset into `source_pixels`.
    private let sourceOffsets: [Int]
    /// Sample i's rows are `sourceTable[sourceStarts[i] ..< sourceStarts[i + 1]]` (N + 1 entries).
    private let sourceStarts: [Int]

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
        if version >= 2 {
            let source = try Self.openSourcePixels(file, float16: float16.id)
            let table = try Self.sourceTable(file, sampleCount: n, sourceLength: source.length)
            sourcePixels = source.dataset
            sourceLength = source.length
            decodesSourceChunksItself = source.shuffleZstd
            (sourceTable, sourceOffsets, sourceStarts) = table
        } else {
            sourcePixels = nil
            sourceLength = 0
            decodesSourceChunksItself = false
            (sourceTable, sourceOffsets, sourceStarts) = ([], [], [Int](repeating: 0, count: n + 1))
        }
    }

    /// Whether the file holds source pixels: schema_version 2 or later and at least one `source_slices` row.
    public var hasSourcePixels: Bool { schemaVersion >= 2 && !sourceTable.isEmpty }

    /// Sample `index`'s source slices (its `source_slices` and `source_geometry` rows, nothing decoded); [] when it has none.
    public func sourceSlices(_ index: Int) -> [SourceSlice] {
        precondition((0..<sampleCount).contains(index), "sample \(index) out of 0..<\(sampleCount)")
        return Array(sourceTable[sourceStarts[index]..<sourceStarts[index + 1]])
    }

    /// Sample `index`'s source slices and their pixels: the `source_pixels` chunks that cover its slices are decoded on
    /// the calling thread (thread-safe, as `decode`), or read through HDF5's pipeline when stored otherwise than
    /// [shuffle, zstd]. `.empty` when the sample has none. A chunk that does not decode is an error naming the shard,
    /// the sample and its study.
    public func readSourcePixels(_ index: Int) throws -> SourcePixels {
        let slices = sourceSlices(index)
        guard let sourcePixels, !slices.isEmpty else { return .empty }
        try H5.begin(url.path)
        let offsets = sourceOffsets[sourceStarts[index]..<sourceStarts[index + 1]]
        let chunkElements = ShardSchema.sourceChunkElements
        let total = slices.reduce(0) { $0 + $1.pixelCount }
        // Slice by slice, so that only the values asked for are allocated (a hostile table may leave gaps between
        // slices); a chunk two slices share is decoded once (`held`).
        var held: (start: Int, values: [Float16])? = nil
        let pixels = try [Float16](unsafeUninitializedCapacity: total) { buffer, initialized in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            var written = 0
            for (slice, offset) in zip(slices, offsets) {
                let target = base + written * 2
                var decoded = decodesSourceChunksItself
                var position = offset
                while decoded, position < offset + slice.pixelCount {
                    let chunkStart = position / chunkElements * chunkElements
                    if held?.start != chunkStart {
                        var values = [Float16](repeating: 0, count: chunkElements)
                        decoded = try values.withUnsafeMutableBytes {
                            try decodeSourceChunk(at: chunkStart, sample: index, into: $0.baseAddress!)
                        }
                        held = decoded ? (chunkStart, values) : nil
                        if !decoded { break }
                    }
                    let take = min(chunkStart + chunkElements, offset + slice.pixelCount) - position
                    held!.values.withUnsafeBytes { chunk in
                        (target + (position - offset) * 2).copyMemory(from: chunk.baseAddress! + (position - chunkStart) * 2,
                                                                      byteCount: take * 2)
                    }
                    position += take
                }
                if !decoded {
                    try sourcePixels.read(start: offset, count: slice.pixelCount, target, memType: float16.id)
                }
                written += slice.pixelCount
            }
            initialized = total
        }
        return SourcePixels(slices: slices, pixels: pixels)
    }

    /// Reads the `source_pixels` chunk starting at element `start` raw and decodes it on this thread into
    /// `ShardSchema.sourceChunkElements` values at `destination`; false, writing nothing, when HDF5's pipeline must
    /// handle it (never written, or a filter skipped).
    private func decodeSourceChunk(at start: Int, sample: Int, into destination: UnsafeMutableRawPointer) throws -> Bool {
        guard let sourcePixels else { return false }
        let bytes = ShardSchema.sourceChunkElements * 2
        let stored = try sourcePixels.storedChunkSize(at: [start])
        guard stored > 0 else { return false }
        guard stored <= 2 * fz_encode_bound(bytes) else {
            throw ShardError.schema(path: url.path, "source_pixels chunk at element \(start) (sample \(sample), study "
                                    + "\(studyIDs[sample])) claims \(stored) stored bytes, more than any encoding of \(bytes) bytes")
        }
        var mask: UInt32 = 0
        let raw = try [UInt8](unsafeUninitializedCapacity: stored) { buffer, initialized in
            mask = try sourcePixels.readRawChunk(at: [start], into: UnsafeMutableRawPointer(buffer.baseAddress!))
            initialized = stored
        }
        guard mask == 0 else { return false }
        if let failure = raw.withUnsafeBytes({ fz_decode_shuffled_zstd($0.baseAddress!, stored, destination, bytes, 2) }) {
            throw ShardError.schema(path: url.path, "source_pixels chunk at element \(start) (sample \(sample), study "
                                    + "\(studyIDs[sample])) does not decode: \(String(cString: failure))")
        }
        return true
    }

    /// The chunks of `source_pixels` that hold a slice's pixels but were never written (a torn or foreign file), as
    /// (sample, first element of the chunk).
    func unwrittenSourceChunks() throws -> [(sample: Int, start: Int)] {
        guard let sourcePixels else { return [] }
        try H5.begin(url.path)
        let chunkElements = ShardSchema.sourceChunkElements
        var missing: [(sample: Int, start: Int)] = []
        var checked = Set<Int>()
        for sample in 0..<sampleCount {
            for row in sourceStarts[sample]..<sourceStarts[sample + 1] {
                let first = sourceOffsets[row] / chunkElements, last = (sourceOffsets[row] + sourceTable[row].pixelCount - 1) / chunkElements
                for chunk in first...last where checked.insert(chunk).inserted {
                    if try sourcePixels.storedChunkSize(at: [chunk * chunkElements]) == 0 { missing.append((sample, chunk * chunkElements)) }
                }
            }
        }
        return missing
    }

    /// `source_pixels`' storage layout, for verification: chunk dims, filter pipeline (id, cd_values), stored bytes;
    /// nil in a schema-1 file.
    public func sourceLayout() throws -> (chunk: [Int]?, filters: [(id: Int32, values: [UInt32])], storedBytes: Int)? {
        guard let sourcePixels else { return nil }
        try H5.begin(url.path)
        return (try sourcePixels.chunkDims(), try sourcePixels.filters(), sourcePixels.storageSize())
    }

    /// Opens `source_pixels` and checks it: 1-D IEEE float16, chunked in `ShardSchema.sourceChunkElements` elements.
    private static func openSourcePixels(_ file: H5File, float16: hid_t) throws
        -> (dataset: H5Dataset, length: Int, shuffleZstd: Bool) {
        let name = ShardSchema.Dataset.sourcePixels
        guard file.hasDataset(name) else {
            throw ShardError.schema(path: file.path, "dataset \(name) is missing (schema_version 2 has it, empty or not)")
        }
        let dataset = try file.openDataset(name)
        let dims = try dataset.dims()
        guard dims.count == 1, try dataset.typeEquals(float16) else {
            throw ShardError.schema(path: file.path, "dataset \(name) must be 1-D IEEE float16, found dims \(dims)")
        }
        let chunk = try dataset.chunkDims()
        guard chunk == [ShardSchema.sourceChunkElements] else {
            throw ShardError.schema(path: file.path, "dataset \(name) must be chunked [\(ShardSchema.sourceChunkElements)], found "
                                    + (chunk.map { "\($0)" } ?? "contiguous"))
        }
        let shuffleZstd = try dataset.filters().map(\.id) == [ShardSchema.shuffleFilterID, ShardSchema.zstdFilterID]
        return (dataset, dims[0], shuffleZstd)
    }

    /// Reads `source_slices` and `source_geometry` and validates every row before anything uses it (files are
    /// untrusted): samples ascending in 0..<`sampleCount`, channel 0...2, rows and columns in 1...4096, offsets
    /// ascending without overlap and inside `source_pixels`, geometry finite with non-zero steps and a unit normal.
    private static func sourceTable(_ file: H5File, sampleCount: Int, sourceLength: Int) throws
        -> (slices: [SourceSlice], offsets: [Int], starts: [Int]) {
        typealias D = ShardSchema.Dataset
        for name in [D.sourceSlices, D.sourceGeometry] where !file.hasDataset(name) {
            throw ShardError.schema(path: file.path, "dataset \(name) is missing (schema_version 2 has it, empty or not)")
        }
        let dims = try file.openDataset(D.sourceSlices).dims()
        guard dims.count == 2, dims[1] == 5 else {
            throw ShardError.schema(path: file.path, "dataset \(D.sourceSlices) must be int64 with dims [M, 5], found dims \(dims)")
        }
        let m = dims[0]
        guard m <= ShardSchema.maxSourceSlices, m <= sourceLength else {
            throw ShardError.schema(path: file.path, "dataset \(D.sourceSlices) has \(m) rows, more than \(D.sourcePixels)'s "
                                    + "\(sourceLength) elements or this reader's limit of \(ShardSchema.maxSourceSlices)")
        }
        let rows: [Int64] = try small(file, D.sourceSlices, [m, 5], ch5_T_NATIVE_INT64(), .integer(signed: true, size: 8))
        let geometry: [Double] = try small(file, D.sourceGeometry, [m, 12], ch5_T_NATIVE_DOUBLE(), .float(size: 8))
        var slices: [SourceSlice] = [], offsets: [Int] = [], starts = [0]
        slices.reserveCapacity(m)
        offsets.reserveCapacity(m)
        var previousEnd = 0
        for row in 0..<m {
            func refuse(_ dataset: String, _ why: String) -> ShardError {
                ShardError.schema(path: file.path, "dataset \(dataset) row \(row): \(why)")
            }
            let r = rows[(5 * row)..<(5 * row + 5)].map { $0 }
            let (sample, channel, height, width, offset) = (r[0], r[1], r[2], r[3], r[4])
            guard (0..<Int64(sampleCount)).contains(sample), sample >= Int64(starts.count - 1) else {
                throw refuse(D.sourceSlices, "sample \(sample) is not in 0..<\(sampleCount) at or after the previous row's")
            }
            guard (0...2).contains(channel) else { throw refuse(D.sourceSlices, "channel \(channel) is not 0, 1 or 2") }
            let matrix = 1...Int64(ShardSchema.maxSourceMatrix)
            guard matrix.contains(height), matrix.contains(width) else {
                throw refuse(D.sourceSlices, "matrix \(height) × \(width) is not in 1...\(ShardSchema.maxSourceMatrix) each way")
            }
            // rows × columns ≤ 4096², and offset < sourceLength below: no overflow in the sums.
            guard offset >= Int64(previousEnd), offset < Int64(sourceLength), Int(offset) + Int(height * width) <= sourceLength else {
                throw refuse(D.sourceSlices, "pixels [\(offset), \(offset) + \(height * width)) overlap the previous row's "
                             + "(ending at \(previousEnd)) or leave \(D.sourcePixels)'s \(sourceLength) elements")
            }
            let g = Array(geometry[(12 * row)..<(12 * row + 12)])
            guard g.allSatisfy(\.isFinite) else { throw refuse(D.sourceGeometry, "a value is not finite: \(g)") }
            func length(_ k: Int) -> Double { (g[k] * g[k] + g[k + 1] * g[k + 1] + g[k + 2] * g[k + 2]).squareRoot() }
            guard length(3) > 0, length(6) > 0 else { throw refuse(D.sourceGeometry, "a pixel step has zero length") }
            guard abs(length(9) - 1) < 1e-3 else { throw refuse(D.sourceGeometry, "the normal's length \(length(9)) is not 1") }
            while starts.count - 1 < Int(sample) { starts.append(row) }
            slices.append(SourceSlice(channel: Int(channel), rows: Int(height), columns: Int(width), geometry: g))
            offsets.append(Int(offset))
            previousEnd = Int(offset) + Int(height * width)
        }
        while starts.count < sampleCount + 1 { starts.append(m) }
        return (slices, offsets, starts)
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
