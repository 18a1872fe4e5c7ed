import Core
import Foundation

/// `manifest.json` beside the shards: what a dataset holds and each shard's checksum
/// (fields in data-schema.md). Written with sorted keys, so the same dataset gives the same bytes.
public struct Manifest: Codable, Equatable, Sendable {
    /// One shard file.
    public struct Shard: Codable, Equatable, Sendable {
        /// File name relative to the manifest's folder (`shard-00000.h5`).
        public var file: String
        /// Size of the file in bytes.
        public var bytes: Int
        /// SHA-256 of the whole file, lowercase hex.
        public var sha256: String
        /// Number of samples in the shard.
        public var samples: Int
        /// Study ids in the order of the shard's first axis.
        public var studies: [Int64]

        /// A shard entry.
        public init(file: String, bytes: Int, sha256: String, samples: Int, studies: [Int64]) {
            self.file = file
            self.bytes = bytes
            self.sha256 = sha256
            self.samples = samples
            self.studies = studies
        }

        enum CodingKeys: String, CodingKey { case file, bytes, sha256, samples, studies }
    }

    /// The file name of the manifest in a shard folder.
    public static let fileName = "manifest.json"

    /// The shard format version (data-schema.md).
    public var schemaVersion: Int64
    /// Grid shape (D, H, W) shared by every sample; empty when the dataset has no sample.
    public var shape: [Int]
    /// Channel names in volume order.
    public var channels: [String]
    /// Label column names in `labels` order.
    public var labelColumns: [String]
    /// Zstandard level the volumes were compressed with.
    public var zstdLevel: Int
    /// The pipeline parameters that produced the data (also stored in every shard).
    public var parameters: [String: String]
    /// Total number of samples (= studies) over all shards.
    public var samples: Int
    /// The shards in order.
    public var shards: [Shard]

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", shape, channels, labelColumns = "label_columns"
        case zstdLevel = "zstd_level", parameters, samples, shards
    }

    /// A manifest; `samples` is the shards' total.
    public init(shape: [Int], zstdLevel: Int, parameters: [String: String], shards: [Shard],
                channels: [String] = Channels.names, labelColumns: [String] = RSNA.labelColumns,
                schemaVersion: Int64 = ShardSchema.version) {
        self.schemaVersion = schemaVersion
        self.shape = shape
        self.channels = channels
        self.labelColumns = labelColumns
        self.zstdLevel = zstdLevel
        self.parameters = parameters
        self.samples = shards.reduce(0) { $0 + $1.samples }
        self.shards = shards
    }

    /// The manifest's JSON: pretty, sorted keys, trailing newline.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }

    /// Writes `manifest.json` into `directory` atomically (temporary name, fsync, rename).
    public func write(to directory: URL) throws {
        try AtomicFile.write(try encoded(), to: directory.appendingPathComponent(Self.fileName))
    }

    /// Reads `directory/manifest.json`, refusing a schema version this build does not read.
    public static func load(from directory: URL) throws -> Manifest {
        let url = directory.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ShardError.io(path: url.path, "no manifest (is this a shard folder?)")
        }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: data) } catch {
            throw ShardError.schema(path: url.path, "not a valid manifest: \(error)")
        }
        guard ShardSchema.readableVersions.contains(manifest.schemaVersion) else {
            throw ShardError.unsupportedSchemaVersion(path: url.path, found: manifest.schemaVersion,
                                                      supported: ShardSchema.readableVersions)
        }
        return manifest
    }
}
