import Core
import Foundation
import Synchronization
import Shards
#if canImport(Glibc)
import Glibc
#endif

/// A content-keyed cache of fused studies (ccache / Bazel action-cache style): per study, the encoded
/// sample and its report, under a key of everything that determines them.
///
/// The key hashes the study's catalog entry (series, kinds, file paths, geometry from the headers),
/// every file's size, the fusion parameters, the zstd level, the CSV rows that enter the sample
/// (labels, keypoints) and `fusionCodeVersion`. File contents are checked through a stat fast path
/// backed by the digest: each entry records every input file's size, mtime, inode and XXH64; when
/// read, a file whose stat still matches (and was not modified within a second of the entry being
/// made, the "racy" case git guards against) is trusted, any other file is digested and must match.
/// Why not digest always: a warm re-run would read the whole archive (RSNA: ~150,000 files), which
/// costs about as much as decoding it; stat-only would miss an in-place rewrite that keeps size and
/// mtime (e.g. `cp -p`, `touch -r`), so a stat change falls back to the digest rather than to a miss.
/// The digest is XXH64, not SHA-256: it tells whether a file changed (nobody forges a DICOM file to
/// collide with its earlier self), and at several GB/s it adds little to a cold run that reads the files anyway.
///
/// Entries are written to a unique temporary name, fsynced and renamed (`AtomicFile`), so an entry is whole or
/// absent even under kill -9 and several processes may share one cache. Each entry ends with the
/// XXH64 of its bytes; a corrupt or truncated entry is a miss and is recomputed. The fsync and the rename run on a
/// background queue (`finishWrites` waits for them), so a worker goes on to its next study instead of waiting for
/// the disk (issue 20).
public struct StudyCache: Sendable {
    /// Bumped whenever decoding, fusion or the entry layout changes what a cached sample would hold; the fused
    /// bytes of a phantom study are pinned to it (Tests/SynthTests/FusionCodeVersionTests.swift).
    public static let fusionCodeVersion = "fusion-3"
    /// The cache folder (`--cache`, default `OUT/.cache`).
    public let directory: URL
    /// The entries stored through this value (and its copies) whose fsync and rename are pending.
    private let commits = EntryCommits()

    /// A cache in `directory` (created on first store).
    public init(directory: URL) {
        self.directory = directory
    }

    /// What a lookup found.
    public enum Lookup: Sendable {
        /// A whole entry whose input files are unchanged.
        case hit(CachedStudy)
        /// No entry under the key.
        case miss
        /// An entry whose bytes fail their checksum or layout (recomputed and replaced).
        case corrupt(String)
        /// An entry whose input files changed content (recomputed and replaced).
        case stale(String)
    }

    /// One study's cached result: its report and, when fused, its encoded sample.
    public struct CachedStudy: Sendable {
        /// The study's report as the run that fused it wrote it.
        public var report: StudyReport
        /// The encoded sample; nil for a study that failed.
        public var sample: EncodedSample?
    }

    /// An input file: where (relative to the archive), its identity (size -1 when it could not be stat'ed), and
    /// (after fusion) its content digest.
    struct FileStamp: Equatable, Sendable {
        var path: String
        var identity: FileIdentity
        var xxh64: String?
    }

    /// The cache key of one study and the stamps of its input files.
    public struct StudyKey: Sendable {
        /// 64 hex digits naming the entry.
        public var hex: String
        let files: [FileStamp]
    }

    /// The key of `study` fused with `fusion` by the code of `version` and encoded at `zstdLevel`; stats every input file.
    /// The SHA-256 of the binary key material (`KeyMaterialEncoder`; key layout 2: until issue 20 it was of the
    /// material's JSON, so entries made before are misses and recompute once).
    public static func key(study: CatalogStudy, root: String, sampleID: Int64, labels: [Int8],
                           coordinates: [LabelCoordinate], fusion: FusionParameters, zstdLevel: Int,
                           version: String = fusionCodeVersion) -> StudyKey {
        let paths = Array(Set(study.series.flatMap { $0.stacks.flatMap { $0.images.map(\.path) } })).sorted()
        let files = paths.map { stamp(path: $0, root: root) }
        struct Material: Encodable {
            var version: String
            var sampleID: Int64
            var fusion: FusionParameters
            var zstdLevel: Int
            var study: CatalogStudy
            var paths: [String]
            var sizes: [Int64]
            var labels: [Int8]
            var coordinates: [LabelCoordinate]
        }
        let material = Material(version: version, sampleID: sampleID, fusion: fusion, zstdLevel: zstdLevel,
                                study: study, paths: files.map(\.path), sizes: files.map(\.identity.size),
                                labels: labels, coordinates: coordinates)
        let data = (try? KeyMaterialEncoder.encode(material)).map { Data($0) } ?? Data("\(material)".utf8)
        return StudyKey(hex: SHA256.hex(of: data), files: files)
    }

    /// Looks `key` up; verifies the entry's checksum and its input files (stat, else digest).
    public func load(_ key: StudyKey, root: String) -> Lookup {
        guard let data = try? Data(contentsOf: url(key), options: .alwaysMapped) else { return .miss }
        let entry: (stamps: [FileStamp], madeAt: Int64, cached: CachedStudy)
        do { entry = try CacheEntry.decode(data) } catch { return .corrupt("\(error)") }
        if let stale = Self.staleFile(key, stamps: entry.stamps, madeAt: entry.madeAt, root: root) { return .stale(stale) }
        return .hit(entry.cached)
    }

    /// What a header-only lookup found: the study's report and the study id of its sample (nil: no sample).
    public struct CachedReport: Sendable {
        /// The study's report as the run that fused it wrote it.
        public var report: StudyReport
        /// The sample's study id when the study was fused into one.
        public var sampleID: Int64?
    }

    /// Looks `key` up reading only the entry's header (its own checksum verified; the chunks are neither read nor
    /// checked) and verifies its input files as `load` does: for a run that keeps its published shards and needs
    /// the reports only. Any result but a hit sends the caller to `load`.
    public func loadReport(_ key: StudyKey, root: String) -> CachedReport? {
        guard let header = try? CacheEntry.decodeHeader(file: url(key).path) else { return nil }
        if Self.staleFile(key, stamps: header.stamps, madeAt: header.madeAt, root: root) != nil { return nil }
        return CachedReport(report: header.report, sampleID: header.sample?.studyID)
    }

    /// The first input file of `key` whose content differs from the entry's stamps (stat, else digest), or nil.
    static func staleFile(_ key: StudyKey, stamps: [FileStamp], madeAt: Int64, root: String) -> String? {
        let recorded = Dictionary(stamps.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        for now in key.files {
            guard let then = recorded[now.path], then.identity.size == now.identity.size else { return "\(now.path): not recorded" }
            if then.identity == now.identity && !now.identity.isRacy(recordedAt: madeAt) { continue }
            let digest = try? Self.digest(URL(fileURLWithPath: root).appendingPathComponent(now.path))
            guard let digest, digest == then.xxh64 else { return "\(now.path): content changed" }
        }
        return nil
    }

    /// Stores `study` under `key`, digesting its input files; atomic (`AtomicFile`, through a temporary name unique to
    /// this process and call, since several processes may share the cache). Returns once the temporary file is
    /// written; its fsync, rename and the folder's fsync follow on a background queue (`finishWrites`).
    public func store(_ key: StudyKey, root: String, study: CachedStudy) throws {
        var stamps = key.files
        for i in stamps.indices {
            stamps[i].xxh64 = try Self.digest(URL(fileURLWithPath: root).appendingPathComponent(stamps[i].path))
        }
        let data = try CacheEntry.encode(stamps: stamps, madeAt: FileIdentity.now(), study: study)
        let final = url(key)
        try FileManager.default.createDirectory(at: final.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = final.deletingLastPathComponent()
            .appendingPathComponent(".\(key.hex).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
        try AtomicFile.writeUnsynced(data, to: temporary)
        commits.add(temporary: temporary, final: final)
    }

    /// Waits until every entry stored so far is fsynced and renamed into place; returns how many could not be
    /// committed since the last call (their temporary files are removed: those studies are recomputed next time).
    @discardableResult
    public func finishWrites() -> Int { commits.wait() }

    /// Removes temporary files older than an hour: the remains of a process killed while storing an entry
    /// (a younger one may belong to another process sharing the cache, which is still writing it).
    public func sweepAbandonedWrites() {
        let fm = FileManager.default
        guard let folders = try? fm.contentsOfDirectory(atPath: directory.path) else { return }
        let cutoff = Date().addingTimeInterval(-3600)
        for folder in folders where folder.count == 2 {
            let url = directory.appendingPathComponent(folder)
            for name in (try? fm.contentsOfDirectory(atPath: url.path)) ?? [] where name.hasSuffix(".tmp") {
                let file = url.appendingPathComponent(name)
                if let modified = (try? fm.attributesOfItem(atPath: file.path))?[.modificationDate] as? Date, modified < cutoff {
                    try? fm.removeItem(at: file)
                }
            }
        }
    }

    /// The entry file of `key`: 256 subfolders keep folders small at archive scale.
    func url(_ key: StudyKey) -> URL {
        directory.appendingPathComponent(String(key.hex.prefix(2))).appendingPathComponent(key.hex + ".entry")
    }

    static func stamp(path: String, root: String) -> FileStamp {
        let full = root.hasSuffix("/") ? root + path : root + "/" + path
        return FileStamp(path: path, identity: FileIdentity(path: full) ?? FileIdentity(size: -1, mtimeNanoseconds: 0, inode: 0))
    }

    /// XXH64 of a file's content, read in 256 KiB blocks (`FileBlocks`).
    static func digest(_ url: URL) throws -> String {
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else { throw FileError(path: url.path, "cannot read to digest: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var hash = XXH64.Stream()
        try FileBlocks.forEach(of: fd, blockSize: 256 << 10, path: url.path, failure: "cannot read to digest") { hash.update($0) }
        return hash.hex()
    }
}

/// The entry's bytes: magic, the header's length (UInt64, little endian), the header — the JSON part's length
/// (UInt64), a JSON part (report, sample's small arrays, chunk sizes, source slices) and the input files' stamps in binary (a UInt32 count, then per file its path as a
/// UInt32 length and UTF-8, size, mtime, inode, a digest flag and XXH64; integers little endian) — the XXH64 of
/// the bytes so far (16 hex digits: the header can be read and checked alone), the chunks (the three volume chunks,
/// then the source chunks), then the XXH64 (16 hex digits) of everything before it. Format 4: format 3 had no source
/// pixels (its entries are "not a cache entry" now, so the studies fuse again).
enum CacheEntry {
    static let magic = Data("F3DCACHE4\n".utf8)

    struct Header {
        var stamps: [StudyCache.FileStamp]
        var madeAt: Int64
        var report: StudyReport
        var sample: SampleHeader?
    }

    /// The header's JSON part.
    struct HeaderJSON: Codable {
        var madeAt: Int64
        var report: StudyReport
        var sample: SampleHeader?
    }

    struct SampleHeader: Codable {
        var studyID: Int64
        var shape: [Int]
        var zstdLevel: Int
        var chunkBytes: [Int]
        var present: [UInt8]
        var affine: [Double]
        /// Float bit patterns, so that NaN keypoints survive JSON.
        var keypointBits: [UInt32]
        var norm: [Float]
        var labels: [Int8]
        /// The source part; nil when the study has no source slices.
        var sources: SourceHeader?

        /// The header of `sample`.
        init(_ sample: EncodedSample) {
            studyID = sample.studyID
            shape = sample.shape
            zstdLevel = sample.zstdLevel
            chunkBytes = sample.chunks.map(\.count)
            present = sample.present
            affine = sample.affine
            keypointBits = sample.keypoints.map(\.bitPattern)
            norm = sample.norm
            labels = sample.labels
            sources = sample.sourceSlices.isEmpty ? nil : SourceHeader(
                slices: sample.sourceSlices.map { [$0.channel, $0.rows, $0.columns] },
                geometryBits: sample.sourceSlices.flatMap { $0.geometry.map(\.bitPattern) },
                elements: sample.sourceElements, chunkBytes: sample.sourceChunks.map(\.count))
        }

        /// Every chunk's size in the order the chunks follow the header: the volumes', then the source chunks'.
        var allChunkBytes: [Int] { chunkBytes + (sources?.chunkBytes ?? []) }

        /// The sample these header fields and `chunks` (in `allChunkBytes` order) make, after checking every count
        /// (the bytes are untrusted: a bad count is `Corrupt`, never a trap).
        func sample(chunks: [[UInt8]]) throws -> EncodedSample {
            guard shape.count == 3, chunkBytes.count == 3, present.count == 3, affine.count == 16,
                  keypointBits.count == 75, norm.count == 6, labels.count == 25, chunks.count == allChunkBytes.count else {
                throw Corrupt(description: "sample arrays of the wrong size")
            }
            var slices: [SourceSlice] = []
            if let sources {
                let matrix = 1...ShardSchema.maxSourceMatrix
                guard !sources.slices.isEmpty, sources.slices.count <= ShardSchema.maxSourceSlices,
                      sources.geometryBits.count == 12 * sources.slices.count,
                      sources.slices.allSatisfy({ $0.count == 3 && (0..<3).contains($0[0]) && matrix.contains($0[1]) && matrix.contains($0[2]) })
                else { throw Corrupt(description: "source slices of the wrong size") }
                for (k, s) in sources.slices.enumerated() {
                    let geometry = sources.geometryBits[(12 * k)..<(12 * k + 12)].map(Double.init(bitPattern:))
                    slices.append(SourceSlice(channel: s[0], rows: s[1], columns: s[2], geometry: geometry))
                }
                guard sources.elements == slices.reduce(0, { $0 + $1.pixelCount }),
                      sources.chunkBytes.count == EncodedSample.sourceChunkCount(elements: sources.elements) else {
                    throw Corrupt(description: "source chunks do not match their slices")
                }
            }
            return EncodedSample(studyID: studyID, shape: shape, zstdLevel: zstdLevel, chunks: Array(chunks.prefix(3)),
                                 present: present, affine: affine, keypoints: keypointBits.map(Float.init(bitPattern:)), norm: norm,
                                 labels: labels, sourceSlices: slices, sourceElements: sources?.elements ?? 0,
                                 sourceChunks: Array(chunks.dropFirst(3)))
        }
    }

    /// A sample's source part: each slice's (channel, rows, columns), its 12 geometry numbers as bit patterns (exact
    /// through JSON), the pixel count and the encoded chunks' sizes.
    struct SourceHeader: Codable {
        var slices: [[Int]]
        var geometryBits: [UInt64]
        var elements: Int
        var chunkBytes: [Int]
    }

    struct Corrupt: Error, CustomStringConvertible {
        var description: String
    }

    static func encode(stamps: [StudyCache.FileStamp], madeAt: Int64, study: StudyCache.CachedStudy) throws -> Data {
        let sample = study.sample.map(SampleHeader.init)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let json = try encoder.encode(HeaderJSON(madeAt: madeAt, report: study.report, sample: sample))
        var jsonLength = UInt64(json.count).littleEndian
        var header = Data()
        withUnsafeBytes(of: &jsonLength) { header.append(contentsOf: $0) }
        header.append(json)
        header.append(contentsOf: encodeStamps(stamps))
        var data = magic
        var length = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(header)
        data.append(Data(data.withUnsafeBytes { XXH64.hex($0) }.utf8))
        for chunk in (study.sample?.chunks ?? []) + (study.sample?.sourceChunks ?? []) { data.append(contentsOf: chunk) }
        data.append(Data(data.withUnsafeBytes { XXH64.hex($0) }.utf8))
        return data
    }

    /// A study's result as a decode worker sends it over its pipe: the header's JSON (its UInt64 length first), then the
    /// chunks. No checksums (a pipe neither truncates nor flips bits unseen) and no stamps (the supervisor stamps the
    /// files when it stores the entry).
    static func wire(_ study: StudyCache.CachedStudy) throws -> [UInt8] { try wireParts(study).joined().map { $0 } }

    /// `wire`'s bytes as parts (the header, then each chunk as it is), for a write that does not copy the chunks.
    static func wireParts(_ study: StudyCache.CachedStudy) throws -> [[UInt8]] {
        let sample = study.sample.map(SampleHeader.init)
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let json = try encoder.encode(HeaderJSON(madeAt: 0, report: study.report, sample: sample))
        var head: [UInt8] = []
        head.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { head.append(contentsOf: $0) }
        head.append(contentsOf: json)
        return [head] + (study.sample?.chunks ?? []) + (study.sample?.sourceChunks ?? [])
    }

    /// The study `wire` wrote; throws on bytes it did not write.
    static func fromWire(_ bytes: [UInt8]) throws -> StudyCache.CachedStudy {
        guard bytes.count >= 8 else { throw Corrupt(description: "a worker's result is shorter than its header") }
        var length: UInt64 = 0
        for k in 0..<8 { length |= UInt64(bytes[k]) << (8 * UInt64(k)) }
        guard length <= UInt64(bytes.count - 8) else { throw Corrupt(description: "a worker's result header runs past its end") }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let header = try decoder.decode(HeaderJSON.self, from: Data(bytes[8..<(8 + Int(length))]))
        guard let s = header.sample else { return StudyCache.CachedStudy(report: header.report, sample: nil) }
        var offset = 8 + Int(length)
        var chunks: [[UInt8]] = []
        for n in s.allChunkBytes {
            guard n >= 0, n <= bytes.count - offset else { throw Corrupt(description: "chunk sizes out of range") }
            chunks.append(Array(bytes[offset..<(offset + n)]))
            offset += n
        }
        guard offset == bytes.count else { throw Corrupt(description: "bytes after the chunks") }
        return StudyCache.CachedStudy(report: header.report, sample: try s.sample(chunks: chunks))
    }

    /// The header's length from the fixed prefix (magic, length), checked against `available` bytes.
    private static func headerLength(_ prefix: UnsafeRawBufferPointer, available: Int) throws -> Int {
        let fixed = magic.count + 8
        guard prefix.count >= fixed, magic.elementsEqual(prefix.prefix(magic.count)) else { throw Corrupt(description: "not a cache entry") }
        let length = (0..<8).reduce(0) { $0 | Int(prefix[magic.count + $1]) << (8 * $1) }
        guard length >= 0, length <= available - fixed - 16 else { throw Corrupt(description: "header length out of range") }
        return length
    }

    /// Decodes the header whose bytes (magic, length, JSON, checksum) start `bytes`; checks its checksum.
    private static func header(_ bytes: UnsafeRawBufferPointer, length: Int) throws -> Header {
        let fixed = magic.count + 8
        let end = fixed + length
        guard XXH64.hex(UnsafeRawBufferPointer(rebasing: bytes[0..<end])) == String(decoding: bytes[end..<end + 16], as: UTF8.self) else {
            throw Corrupt(description: "header checksum mismatch (damaged)")
        }
        var reader = ByteReader(Array(bytes[fixed..<end]))
        guard let jsonLength = try? Int(exactly: reader.integer(UInt64.self)), jsonLength <= length - 8 else {
            throw Corrupt(description: length < 8 ? "stamps truncated" : "header parts out of range")
        }
        let jsonStart = fixed + 8, jsonEnd = jsonStart + jsonLength
        reader.offset = 8 + jsonLength
        let stamps = try decodeStamps(&reader)
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let json = try decoder.decode(HeaderJSON.self, from: Data(bytes[jsonStart..<jsonEnd]))
        return Header(stamps: stamps, madeAt: json.madeAt, report: json.report, sample: json.sample)
    }

    /// The stamps' bytes, after the JSON part.
    static func encodeStamps(_ stamps: [StudyCache.FileStamp]) -> [UInt8] {
        var w = ByteWriter()
        w.integer(UInt32(stamps.count))
        for s in stamps {
            w.integer(UInt32(s.path.utf8.count))
            w.raw(s.path.utf8)
            w.integer(s.identity.size)
            w.integer(s.identity.mtimeNanoseconds)
            w.integer(s.identity.inode)
            let digest = s.xxh64.flatMap { UInt64($0, radix: 16) }
            w.bool(digest != nil)
            w.integer(digest ?? 0)
        }
        return w.bytes
    }

    /// The stamps `encodeStamps` wrote, which must fill `reader` to its end.
    static func decodeStamps(_ reader: inout ByteReader) throws -> [StudyCache.FileStamp] {
        do {
            let n = Int(try reader.integer(UInt32.self))
            var out: [StudyCache.FileStamp] = []
            out.reserveCapacity(min(n, 1 << 16))
            for _ in 0..<n {
                let path = String(decoding: try reader.raw(Int(try reader.integer(UInt32.self))), as: UTF8.self)
                let identity = FileIdentity(size: try reader.integer(Int64.self), mtimeNanoseconds: try reader.integer(Int64.self),
                                            inode: try reader.integer(UInt64.self))
                let flag = try reader.integer(UInt8.self)
                let hex = String(try reader.integer(UInt64.self), radix: 16)
                out.append(StudyCache.FileStamp(path: path, identity: identity,
                                                xxh64: flag == 0 ? nil : String(repeating: "0", count: 16 - hex.count) + hex))
            }
            guard reader.atEnd else { throw Corrupt(description: "bytes after the stamps") }
            return out
        } catch is ByteReader.Truncated {
            throw Corrupt(description: "stamps truncated")
        }
    }

    /// Reads and checks the header of the entry file at `path` only (not its chunks).
    static func decodeHeader(file path: String) throws -> Header {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Corrupt(description: "cannot open") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Corrupt(description: "cannot stat") }
        let size = Int(st.st_size)
        func read(_ count: Int, at offset: Int) throws -> [UInt8] {
            var buffer = [UInt8](repeating: 0, count: count)
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            guard got == count else { throw Corrupt(description: "truncated") }
            return buffer
        }
        let fixed = magic.count + 8
        let prefix = try read(fixed, at: 0)
        let length = try prefix.withUnsafeBytes { try headerLength($0, available: size) }
        let bytes = try read(fixed + length + 16, at: 0)
        return try bytes.withUnsafeBytes { try header($0, length: length) }
    }

    static func decode(_ data: Data) throws -> (stamps: [StudyCache.FileStamp], madeAt: Int64, cached: StudyCache.CachedStudy) {
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            guard bytes.count >= magic.count + 8 + 32 else { throw Corrupt(description: "not a cache entry") }
            let body = UnsafeRawBufferPointer(rebasing: bytes[0..<bytes.count - 16])
            guard XXH64.hex(body) == String(decoding: bytes[(bytes.count - 16)...], as: UTF8.self) else {
                throw Corrupt(description: "checksum mismatch (truncated or damaged)")
            }
            let length = try headerLength(body, available: bytes.count - 16)
            let header = try header(body, length: length)
            var sample: EncodedSample?
            if let s = header.sample {
                var offset = magic.count + 8 + length + 16
                var chunks: [[UInt8]] = []
                for n in s.allChunkBytes {
                    guard n >= 0, n <= body.count - offset else { throw Corrupt(description: "chunk sizes out of range") }
                    chunks.append(Array(UnsafeRawBufferPointer(rebasing: body[offset..<offset + n])))
                    offset += n
                }
                guard offset == body.count else { throw Corrupt(description: "bytes after the chunks") }
                sample = try s.sample(chunks: chunks)
            }
            return (header.stamps, header.madeAt, StudyCache.CachedStudy(report: header.report, sample: sample))
        }
    }
}

/// The cache entries waiting for their commit (`AtomicFile.commit`: fsync, rename, the folder's fsync), done one after
/// another on a background queue. At most 64 wait (a store waits for a slot), so that a slow disk holds the workers
/// back instead of piling up unsynced entries.
private final class EntryCommits: Sendable {
    private let queue = DispatchQueue(label: "fuse3d.cache-commits")
    private let group = DispatchGroup()
    private let slots = DispatchSemaphore(value: 64)
    private let failures = Mutex(0)

    func add(temporary: URL, final: URL) {
        slots.wait()
        queue.async(group: group) { [self] in
            do { try AtomicFile.commit(temporary, to: final) } catch {
                unlink(temporary.path)
                failures.withLock { $0 += 1 }
            }
            slots.signal()
        }
    }

    func wait() -> Int {
        group.wait()
        return failures.withLock { count in
            defer { count = 0 }
            return count
        }
    }
}
