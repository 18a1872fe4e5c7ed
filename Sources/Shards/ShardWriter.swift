import CHDF5
import Core
import Foundation

/// How a `ShardWriter` sizes and compresses shards, and the pipeline parameters it records.
public struct ShardWriterOptions: Sendable {
    /// Samples per shard; nil closes a shard by size only (`targetShardBytes`).
    public var samplesPerShard: Int?
    /// A shard is closed after the sample that brings its compressed volumes and source pixels to this many bytes.
    public var targetShardBytes: Int
    /// Zstandard level (1 fast … 19 small; data-schema.md, BENCHMARKS.md).
    public var zstdLevel: Int
    /// Pipeline parameters, stored in every shard (attribute `parameters`) and in the manifest.
    public var parameters: [String: String]
    /// Keep an earlier shard of the folder whose content would not change (see `ShardWriter`); records
    /// fingerprints in `.shard-fingerprints.json`.
    public var keepUnchangedShards = false
    /// Write the shards and the manifest into `directory/.staging` and replace the folder's dataset only
    /// in `publish()`, so that a finished dataset already there stays whole until the new one is complete.
    public var stageUntilPublished = false

    /// Defaults: about 1 GB of compressed data per shard, zstd level `ShardSchema.defaultZstdLevel`, no parameters.
    public init(samplesPerShard: Int? = nil, targetShardBytes: Int = 1_000_000_000,
                zstdLevel: Int = ShardSchema.defaultZstdLevel, parameters: [String: String] = [:]) {
        self.samplesPerShard = samplesPerShard
        self.targetShardBytes = targetShardBytes
        self.zstdLevel = zstdLevel
        self.parameters = parameters
    }
}

/// Writes `FusedSample`s, in the order given, into `shard-NNNNN.h5` files and a `manifest.json`.
///
/// Each shard is written under a `.partial` name, fsynced and renamed when full (or at `finish()`),
/// so a shard file is complete or absent; a writer dropped without `finish()` removes its partial
/// file. The same samples and options give byte-identical shards and manifest. Shard files of an
/// earlier run in the folder are replaced name by name; any beyond this run's count are left alone
/// (`fuse3d verify` reports them as not in the manifest).
///
/// With `stageUntilPublished` (what `fuse3d ingest` does), a finished dataset in the folder is replaced only by a
/// finished one: every file goes to `.staging/` first, and `publish()` moves the new files in, the manifest last
/// (the commit point), then removes the shards the new manifest no longer lists. Until then the folder is its
/// earlier dataset, untouched. A run killed during the moves (a few renames) left a complete staged manifest; the
/// next staged writer into the folder finishes that publish first (rolls forward); a staging folder without a
/// manifest is the trace of an unfinished run and is removed.
///
/// With `keepUnchangedShards`, re-writing a folder keeps what has not changed: each shard's fingerprint (XXH64 over the parameters,
/// the shape and every sample's chunks and arrays) and the file's stat are recorded in
/// `.shard-fingerprints.json`; a shard whose fingerprint and file are unchanged is left as it is (its
/// new copy discarded unrenamed), which spares the fsync, the rename and the SHA-256 of an unchanged file.
public final class ShardWriter {
    /// The writer's record of the shards it wrote, beside the manifest.
    public static let fingerprintsName = ".shard-fingerprints.json"
    /// The folder inside `directory` where a staged writer puts the new dataset until `publish()`.
    public static let stagingName = ".staging"

    /// The folder the shards and manifest go to.
    public let directory: URL
    /// The options in force.
    public let options: ShardWriterOptions
    /// Where the new files go: `directory/.staging` with `stageUntilPublished`, else `directory`.
    public let stagingDirectory: URL
    /// The grid shape (D, H, W) every sample must have (set by the first sample when not given).
    public private(set) var shape: [Int]?
    /// The shards completed so far.
    public private(set) var shards: [Manifest.Shard] = []

    private var current: ShardFile?
    /// Closed shards not yet in `shards`, in order: kept as they were, or committing (fsync, SHA-256, rename) on a
    /// thread of their own while the next shard is written.
    private var closing: [Closing] = []
    private var seen = Set<Int64>()
    /// The error that left the current shard in an unknown state; every later call rethrows it.
    private var failure: Error?
    private let parametersJSON: String
    /// What the folder's previous writer recorded, by file name.
    private let previous: [String: Fingerprint]
    private var recorded: [String: Fingerprint] = [:]
    /// The manifest `finish()` made, which a staged writer's `publish()` writes.
    private var finished: Manifest?

    /// Prepares `directory` (created if needed; stale `.partial` files from a killed run are removed; when staged,
    /// a killed run's staging folder is published if it was finished and removed if not).
    public init(directory: URL, options: ShardWriterOptions = .init(), shape: [Int]? = nil) throws {
        guard options.samplesPerShard.map({ $0 > 0 }) ?? true, options.targetShardBytes > 0 else {
            throw ShardError.io(path: directory.path, "samples per shard and target shard bytes must be positive")
        }
        if let shape, shape.count != 3 || shape.contains(where: { $0 <= 0 }) {
            throw ShardError.io(path: directory.path, "grid shape \(shape) is not three positive sizes (D, H, W)")
        }
        self.directory = directory
        self.options = options
        self.shape = shape
        stagingDirectory = options.stageUntilPublished ? directory.appendingPathComponent(Self.stagingName) : directory
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        parametersJSON = String(decoding: try encoder.encode(options.parameters), as: UTF8.self)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            for name in try FileManager.default.contentsOfDirectory(atPath: directory.path)
            where name.hasPrefix("shard-") && name.hasSuffix(".h5" + ShardSchema.partialSuffix) {
                try FileManager.default.removeItem(at: directory.appendingPathComponent(name))
            }
            if options.stageUntilPublished {
                try Self.finishOrDiscardStaging(in: directory)
                try FileManager.default.createDirectory(at: stagingDirectory, withIntermediateDirectories: true)
            }
        } catch let error as ShardError {
            throw error
        } catch {
            throw ShardError.io(path: directory.path, "cannot prepare the shard folder: \(error.localizedDescription)")
        }
        // Read after a killed run's staged dataset was published, so that its shards count as the folder's.
        previous = !options.keepUnchangedShards ? [:] : (FileManager.default.contents(atPath: directory.appendingPathComponent(Self.fingerprintsName).path))
            .flatMap { try? JSONDecoder().decode([String: Fingerprint].self, from: $0) } ?? [:]
    }

    /// At most this many closed shards commit in the background at once; closing one more waits for the oldest.
    public static let commitsInFlight = 2

    deinit {
        current?.discard()
        // A shard committing in the background ends complete or absent either way; none outlives the writer.
        for case .committing(let job) in closing { _ = try? job.result() }
    }

    /// Appends one sample to the current shard, opening a new shard first when needed and closing
    /// the shard when it is full. A refused sample (other shape, duplicate study, bad label) leaves
    /// the writer usable; a failed write does not (every later call throws the same error).
    public func append(_ sample: FusedSample) throws {
        if let failure { throw failure }
        try append(EncodedSample(encoding: sample, zstdLevel: options.zstdLevel))
    }

    /// Appends a sample whose chunks are already encoded (by an ingest worker or a cache), with the
    /// same checks and effects as `append(_: FusedSample)`; its zstd level must be the writer's.
    public func append(_ sample: EncodedSample) throws {
        if let failure { throw failure }
        let expected = shape ?? sample.shape
        guard sample.shape == expected else {
            throw ShardError.sample(studyID: sample.studyID,
                                    "grid shape \(sample.shape) differs from the dataset's \(expected)")
        }
        guard sample.zstdLevel == options.zstdLevel else {
            throw ShardError.sample(studyID: sample.studyID,
                                    "encoded at zstd level \(sample.zstdLevel), the dataset's is \(options.zstdLevel)")
        }
        guard !seen.contains(sample.studyID) else {
            throw ShardError.sample(studyID: sample.studyID, "already written to this dataset")
        }
        if let bad = sample.labels.first(where: { !(-1...2).contains($0) }) {
            throw ShardError.sample(studyID: sample.studyID, "label \(bad) is not -1, 0, 1 or 2")
        }
        shape = expected
        do {
            // A commit that ended in the background is settled now, so that its failure stops the writer at once.
            try settleFinished()
        } catch {
            failure = error
            throw error
        }
        let shard: ShardFile
        if let current {
            shard = current
        } else {
            let final = stagingDirectory.appendingPathComponent(ShardSchema.fileName(index: shards.count + closing.count))
            shard = try ShardFile(final: final, shape: expected, zstdLevel: options.zstdLevel, parametersJSON: parametersJSON)
            current = shard
        }
        do {
            try shard.append(sample)
            seen.insert(sample.studyID)
            if shard.count == options.samplesPerShard || shard.compressedBytes >= options.targetShardBytes {
                try closeCurrent()
            }
        } catch {
            failure = error
            throw error
        }
    }

    /// Closes the last shard and writes `manifest.json` atomically; returns the manifest. When staged, the
    /// manifest is written by `publish()` instead: a staged manifest means the staged dataset is complete.
    @discardableResult
    public func finish() throws -> Manifest {
        if let failure { throw failure }
        do {
            try closeCurrent()
            try settle(keeping: 0)
        } catch {
            failure = error
            throw error
        }
        let manifest = Manifest(shape: shape ?? [], zstdLevel: options.zstdLevel,
                                parameters: options.parameters, shards: shards)
        if options.keepUnchangedShards {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            try AtomicFile.write(try encoder.encode(recorded), to: stagingDirectory.appendingPathComponent(Self.fingerprintsName))
        }
        if options.stageUntilPublished { finished = manifest } else { try manifest.write(to: directory) }
        return manifest
    }

    /// Replaces the folder's dataset with the staged one, after `finish()` and after any file that goes with it
    /// (a report) was written into `stagingDirectory`: writes the staged manifest, then moves everything in.
    public func publish() throws {
        precondition(options.stageUntilPublished, "publish() needs stageUntilPublished")
        if let failure { throw failure }
        guard let finished else { preconditionFailure("publish() before finish()") }
        try finished.write(to: stagingDirectory)
        try Self.publish(staging: stagingDirectory, into: directory)
    }

    /// The dataset published in `directory`, when it is as a writer with `options` and `keepUnchangedShards` left
    /// it: its manifest is of this schema version, zstd level and parameters, every shard it lists is the file the
    /// writer recorded (`.shard-fingerprints.json`: manifest entry, size, mtime and inode unchanged), no other shard
    /// file, no staging folder and no partial file is there. nil otherwise. A run whose samples are the ones that
    /// dataset was written from (the caller's to know) may then leave every file as it is.
    /// (`samplesPerShard` and `targetShardBytes` are not in the manifest: the caller compares them.)
    public static func untouchedDataset(in directory: URL, options: ShardWriterOptions) -> Manifest? {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory.path), !names.contains(stagingName),
              !names.contains(where: { $0.hasSuffix(ShardSchema.partialSuffix) }),
              let manifest = try? Manifest.load(from: directory), manifest.schemaVersion == ShardSchema.version,
              manifest.zstdLevel == options.zstdLevel, manifest.parameters == options.parameters,
              let data = fm.contents(atPath: directory.appendingPathComponent(fingerprintsName).path),
              let recorded = try? JSONDecoder().decode([String: Fingerprint].self, from: data) else { return nil }
        let shardFiles = Set(names.filter { $0.hasPrefix("shard-") && $0.hasSuffix(".h5") })
        guard shardFiles == Set(manifest.shards.map(\.file)), shardFiles.count == manifest.shards.count else { return nil }
        for shard in manifest.shards {
            guard let fingerprint = recorded[shard.file], fingerprint.shard == shard, let stat = fingerprint.stat,
                  FileIdentity(directory.appendingPathComponent(shard.file)) == stat else { return nil }
        }
        return manifest
    }

    /// A staging folder left by a killed run: finished (a complete manifest) → published; unfinished → removed.
    static func finishOrDiscardStaging(in directory: URL) throws {
        let staging = directory.appendingPathComponent(stagingName)
        guard FileManager.default.fileExists(atPath: staging.path) else { return }
        if (try? Manifest.load(from: staging)) != nil {
            try publish(staging: staging, into: directory)
        } else {
            do { try FileManager.default.removeItem(at: staging) } catch {
                throw ShardError.io(path: staging.path, "cannot remove an unfinished run's staging folder: \(error.localizedDescription)")
            }
        }
    }

    /// Moves every staged file into `directory`, the manifest last, then removes the shards it does not list.
    static func publish(staging: URL, into directory: URL) throws {
        let fm = FileManager.default
        let manifestName = Manifest.fileName
        let listed = Set(try Manifest.load(from: staging).shards.map(\.file))
        let names = (try? fm.contentsOfDirectory(atPath: staging.path)) ?? []
        for name in names.sorted() where name != manifestName {
            let from = staging.appendingPathComponent(name)
            if name.hasSuffix(ShardSchema.partialSuffix) { try? fm.removeItem(at: from); continue }
            try AtomicFile.move(from, to: directory.appendingPathComponent(name))
        }
        try AtomicFile.move(staging.appendingPathComponent(manifestName), to: directory.appendingPathComponent(manifestName))
        for name in try fm.contentsOfDirectory(atPath: directory.path)
        where name.hasPrefix("shard-") && name.hasSuffix(".h5") && !listed.contains(name) {
            do { try fm.removeItem(at: directory.appendingPathComponent(name)) } catch {
                throw ShardError.io(path: directory.appendingPathComponent(name).path,
                                    "cannot remove a shard the new manifest no longer lists: \(error.localizedDescription)")
            }
        }
        try? fm.removeItem(at: staging)
    }

    /// Closes the current shard: kept as it was when unchanged, else its file is finished here (HDF5 is not used from
    /// two threads) and its fsync, SHA-256 and rename go to a thread of their own, so that the next shard's samples
    /// are written meanwhile (issue 20: closing a 1 GB shard holds the writer for the fsync of up to 1 GB and 0.8 s of
    /// hashing, and the workers stop once the reorder window is full). At most `commitsInFlight` commit at once.
    private func closeCurrent() throws {
        guard let shard = current else { return }
        current = nil
        do {
            let fingerprint = shard.fingerprint()
            let published = directory.appendingPathComponent(shard.final.lastPathComponent)
            if let old = previous[shard.final.lastPathComponent], old.fingerprint == fingerprint, let now = FileIdentity(published), old.stat == now {
                shard.discard()
                closing.append(.kept(old))
            } else {
                closing.append(.committing(CommitJob(try shard.close(), fingerprint: fingerprint)))
            }
        } catch {
            shard.discard()
            throw error
        }
        try settle(keeping: Self.commitsInFlight)
    }

    /// Moves closed shards whose commit has ended into `shards`, oldest first, without waiting.
    private func settleFinished() throws {
        while let first = closing.first {
            if case .committing(let job) = first, !job.finished { return }
            try settle(keeping: closing.count - 1)
        }
    }

    /// Moves closed shards into `shards`, oldest first, until at most `keeping` are left, waiting for their commits.
    private func settle(keeping: Int) throws {
        while closing.count > keeping {
            switch closing.removeFirst() {
            case .kept(let old):
                shards.append(old.shard)
                recorded[old.shard.file] = old
            case .committing(let job):
                let (entry, stat) = try job.result()
                shards.append(entry)
                recorded[entry.file] = Fingerprint(fingerprint: job.fingerprint, stat: stat, shard: entry)
            }
        }
    }
}

/// A closed shard on its way into `ShardWriter.shards`.
private enum Closing {
    /// The folder's shard of the same name was unchanged: kept, with what its writer recorded.
    case kept(Fingerprint)
    case committing(CommitJob)
}

/// A closed shard file's commit (fsync, SHA-256, rename into place, the folder's fsync) on a thread of its own. A
/// commit that fails removes the partial file: the shard is complete or absent.
private final class CommitJob: Sendable {
    let fingerprint: String
    private let task: Background<(Manifest.Shard, FileIdentity?)>

    init(_ shard: ShardFile.Closed, fingerprint: String) {
        self.fingerprint = fingerprint
        task = Background {
            do { return try shard.commit() } catch {
                try? FileManager.default.removeItem(at: shard.partial)
                throw error
            }
        }
    }

    /// Whether the commit has ended.
    var finished: Bool { task.finished }

    /// Waits for the commit: the shard's manifest entry and the committed file's stat, or the commit's error.
    func result() throws -> (Manifest.Shard, FileIdentity?) { try task.wait() }
}

/// One shard being written: the volumes go to disk sample by sample, the small per-sample
/// arrays are kept (a few hundred bytes a sample) and written when the shard is committed.
private final class ShardFile {
    let final: URL
    let partial: URL
    let shape: [Int]
    let zstdLevel: Int
    private var file: H5File?
    private var volumes: H5Dataset?
    private var sourcePixels: H5Dataset?
    private let float16: H5Object
    private(set) var count = 0
    private var studyIDs: [Int64] = []
    private var labels: [Int8] = []
    private var present: [UInt8] = []
    private var affine: [Double] = []
    private var keypoints: [Float] = []
    private var norm: [Float] = []
    /// `source_slices` rows (5 a slice) and `source_geometry` rows (12 a slice), written at close.
    private var sourceRows: [Int64] = []
    private var sourceGeometry: [Double] = []
    /// Chunks of `source_pixels` written so far (the next sample's block starts at this × the chunk size).
    private var sourceChunkCount = 0
    private var sampleHashes: [UInt64] = []
    private let parametersJSON: String

    init(final: URL, shape: [Int], zstdLevel: Int, parametersJSON: String) throws {
        self.final = final
        self.partial = AtomicFile.partial(for: final)
        self.shape = shape
        self.zstdLevel = zstdLevel
        self.parametersJSON = parametersJSON
        let file = try H5File.create(partial.path)
        self.file = file
        float16 = .type(try H5.check(id: ch5_float16_le(), partial.path, "create float16 type"))
        try file.writeAttribute(ShardSchema.Attribute.schemaVersion, int: ShardSchema.version)
        try file.writeAttribute(ShardSchema.Attribute.channels, strings: Channels.names)
        try file.writeAttribute(ShardSchema.Attribute.labelColumns, strings: RSNA.labelColumns)
        try file.writeAttribute(ShardSchema.Attribute.parameters, strings: [parametersJSON], scalar: true)
        volumes = try file.createDataset(ShardSchema.Dataset.volumes, type: float16.id, dims: [0, 3] + shape,
                                         maxDims: [-1, 3] + shape, chunk: [1, 1] + shape, zstdLevel: zstdLevel)
        sourcePixels = try file.createDataset(ShardSchema.Dataset.sourcePixels, type: float16.id, dims: [0], maxDims: [-1],
                                              chunk: [ShardSchema.sourceChunkElements], zstdLevel: zstdLevel)
    }

    /// Compressed bytes of the volumes and source pixels written so far.
    var compressedBytes: Int { (volumes?.storageSize() ?? 0) + (sourcePixels?.storageSize() ?? 0) }

    /// Stores the sample's encoded chunks with direct chunk writes; HDF5 only copies the bytes into the file. The
    /// source chunks go at the chunk-aligned end of `source_pixels`, and their table rows record those offsets.
    func append(_ sample: EncodedSample) throws {
        guard let volumes, let sourcePixels else { preconditionFailure("append after commit") }
        try volumes.extend(to: [count + 1, 3] + shape)
        for channel in 0..<3 {
            try sample.chunks[channel].withUnsafeBytes { try volumes.writeRawChunk(at: [count, channel, 0, 0, 0], $0) }
        }
        let chunkElements = ShardSchema.sourceChunkElements
        if !sample.sourceChunks.isEmpty {
            try sourcePixels.extend(to: [(sourceChunkCount + sample.sourceChunks.count) * chunkElements])
            for (k, chunk) in sample.sourceChunks.enumerated() {
                try chunk.withUnsafeBytes { try sourcePixels.writeRawChunk(at: [(sourceChunkCount + k) * chunkElements], $0) }
            }
        }
        var offset = sourceChunkCount * chunkElements
        for slice in sample.sourceSlices {
            sourceRows += [Int64(count), Int64(slice.channel), Int64(slice.rows), Int64(slice.columns), Int64(offset)]
            sourceGeometry += slice.geometry
            offset += slice.pixelCount
        }
        sourceChunkCount += sample.sourceChunks.count
        count += 1
        sampleHashes.append(Self.hash(sample))
        studyIDs.append(sample.studyID)
        labels += sample.labels
        present += sample.present
        affine += sample.affine
        keypoints += sample.keypoints
        norm += sample.norm
    }

    /// XXH64 of everything that decides the shard's bytes: parameters, shape, level, every sample.
    func fingerprint() -> String {
        var text = "\(ShardSchema.version)|\(parametersJSON)|\(shape)|\(zstdLevel)|"
        text += sampleHashes.map { String($0, radix: 16) }.joined(separator: ",")
        return Array(text.utf8).withUnsafeBytes { XXH64.hex($0) }
    }

    private static func hash(_ s: EncodedSample) -> UInt64 {
        var parts: [UInt64] = [UInt64(bitPattern: s.studyID)]
        for chunk in s.chunks { parts.append(chunk.withUnsafeBytes { XXH64.hash($0) }) }
        parts.append(s.present.withUnsafeBytes { XXH64.hash($0) })
        parts.append(s.affine.withUnsafeBytes { XXH64.hash($0) })
        parts.append(s.keypoints.withUnsafeBytes { XXH64.hash($0) })
        parts.append(s.norm.withUnsafeBytes { XXH64.hash($0) })
        parts.append(s.labels.withUnsafeBytes { XXH64.hash($0) })
        let table = s.sourceSlices.flatMap { [Int64($0.channel), Int64($0.rows), Int64($0.columns)] }
        parts.append(table.withUnsafeBytes { XXH64.hash($0) })
        parts.append(s.sourceSlices.flatMap(\.geometry).withUnsafeBytes { XXH64.hash($0) })
        parts.append(UInt64(s.sourceElements))
        for chunk in s.sourceChunks { parts.append(chunk.withUnsafeBytes { XXH64.hash($0) }) }
        return parts.withUnsafeBytes { XXH64.hash($0) }
    }

    /// A shard file written and closed, to be committed.
    struct Closed: Sendable {
        let final: URL
        let partial: URL
        let samples: Int
        let studies: [Int64]

        /// Fsyncs the file while hashing it, renames it into place and fsyncs the folder; its manifest entry and the
        /// committed file's stat (whose size the entry records).
        func commit() throws -> (Manifest.Shard, FileIdentity?) {
            let sha256 = try AtomicFile.commitHashing(partial, to: final)
            let stat = FileIdentity(final)
            return (Manifest.Shard(file: final.lastPathComponent, bytes: Int(stat?.size ?? 0), sha256: sha256, samples: samples,
                                   studies: studies), stat)
        }
    }

    /// Writes the per-sample arrays and closes the file (`Closed.commit` then puts it in place).
    func close() throws -> Closed {
        guard let file, let volumes, let sourcePixels else { preconditionFailure("close twice") }
        try volumes.close()
        self.volumes = nil
        try sourcePixels.close()
        self.sourcePixels = nil
        let n = count
        typealias D = ShardSchema.Dataset
        try small(file, D.studyID, ch5_T_STD_I64LE(), ch5_T_NATIVE_INT64(), [n], studyIDs)
        try small(file, D.labels, ch5_T_STD_I8LE(), ch5_T_NATIVE_INT8(), [n, 25], labels)
        try small(file, D.present, ch5_T_STD_U8LE(), ch5_T_NATIVE_UINT8(), [n, 3], present)
        try small(file, D.affine, ch5_T_IEEE_F64LE(), ch5_T_NATIVE_DOUBLE(), [n, 4, 4], affine)
        try small(file, D.keypoints, ch5_T_IEEE_F32LE(), ch5_T_NATIVE_FLOAT(), [n, 25, 3], keypoints)
        try small(file, D.norm, ch5_T_IEEE_F32LE(), ch5_T_NATIVE_FLOAT(), [n, 3, 2], norm)
        let m = sourceRows.count / 5
        try small(file, D.sourceSlices, ch5_T_STD_I64LE(), ch5_T_NATIVE_INT64(), [m, 5], sourceRows)
        try small(file, D.sourceGeometry, ch5_T_IEEE_F64LE(), ch5_T_NATIVE_DOUBLE(), [m, 12], sourceGeometry)
        try file.close()
        self.file = nil
        return Closed(final: final, partial: partial, samples: n, studies: studyIDs)
    }

    /// Abandons the shard: closes the file and removes the partial file.
    func discard() {
        volumes = nil
        sourcePixels = nil
        file = nil
        try? FileManager.default.removeItem(at: partial)
    }

    private func small<T>(_ file: H5File, _ name: String, _ fileType: hid_t, _ memType: hid_t, _ dims: [Int],
                          _ values: [T]) throws {
        let dataset = try file.createDataset(name, type: fileType, dims: dims)
        // A zero-size dataset (no source slices) has nothing to write.
        if !values.isEmpty { try values.withUnsafeBytes { try dataset.writeAll($0.baseAddress!, memType: memType) } }
        try dataset.close()
    }
}

/// A shard as its writer left it: the fingerprint of its content, the file's stat, its manifest entry.
struct Fingerprint: Codable, Equatable {
    var fingerprint: String
    var stat: FileIdentity?
    var shard: Manifest.Shard
}

