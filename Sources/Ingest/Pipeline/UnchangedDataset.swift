import Core
import Foundation
import Shards

/// issue 20: a re-run whose every study would come from the cache with the same key as the published dataset's, in
/// the same order and with the same shard options, would write the very same shards and manifest; it leaves them
/// as they are instead of reading every cache entry whole and writing the shards again.
///
/// `OUT/.ingest-state.json` (written after a run published its dataset) holds the signature of what the dataset was
/// written from (the studies' cache keys in order, the shard options, the partition, the schema version) and the
/// manifest's size, mtime and inode. A re-run keeps the dataset only when the signature is its own, the manifest's
/// stat is unchanged, the shards are the files their writer recorded (`ShardWriter.untouchedDataset`), and every
/// study's cache entry is a hit (its header checked, its input files unchanged: stat, else digest) whose sample
/// ids are the manifest's in order. Anything else is an ordinary run (which keeps unchanged shards by fingerprint).
enum UnchangedDataset {
    /// The state file's name in the output folder.
    static let fileName = ".ingest-state.json"

    struct State: Codable, Equatable {
        var signature: String
        var manifest: FileIdentity
    }

    /// The signature of a dataset written from the entries `keys` (in order) with `options` for `partition`.
    static func signature(keys: [String], options: ShardWriterOptions, partition: Partition?) -> String {
        struct Material: Encodable {
            var schemaVersion: Int64
            var keys: [String]
            var samplesPerShard: Int?
            var targetShardBytes: Int
            var zstdLevel: Int
            var parameters: [String: String]
            var partition: Partition?
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let material = Material(schemaVersion: ShardSchema.version, keys: keys, samplesPerShard: options.samplesPerShard,
                                targetShardBytes: options.targetShardBytes, zstdLevel: options.zstdLevel,
                                parameters: options.parameters, partition: partition)
        return SHA256.hex(of: (try? encoder.encode(material)) ?? Data("\(material)".utf8))
    }

    /// Removes the state (before a dataset is replaced: a run killed after publishing leaves none).
    static func forget(in directory: URL) {
        unlink(directory.appendingPathComponent(fileName).path)
    }

    /// Records the state of the dataset just published in `directory`.
    static func record(signature: String, in directory: URL) throws {
        guard let manifest = FileIdentity(directory.appendingPathComponent(Manifest.fileName)) else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFile.write(try encoder.encode(State(signature: signature, manifest: manifest)),
                             to: directory.appendingPathComponent(fileName))
    }

    /// Whether `directory` holds a state file: without one no dataset there can be kept, whatever the keys.
    static func hasState(in directory: URL) -> Bool {
        access(directory.appendingPathComponent(fileName).path, F_OK) == 0
    }

    /// The published manifest when the dataset in `directory` is the one `signature` describes and its files are
    /// untouched; nil otherwise.
    static func manifest(in directory: URL, signature: String, options: ShardWriterOptions) -> Manifest? {
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(fileName).path),
              let state = try? JSONDecoder().decode(State.self, from: data), state.signature == signature,
              FileIdentity(directory.appendingPathComponent(Manifest.fileName)) == state.manifest else { return nil }
        return ShardWriter.untouchedDataset(in: directory, options: options)
    }
}
