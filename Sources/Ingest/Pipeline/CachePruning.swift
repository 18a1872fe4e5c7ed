import Core
import Foundation
import Shards

/// Which cache entries a dataset's samples came from, and removing the entries no dataset uses.
///
/// Every ingest records the keys it used in `OUT/.cache-keys.json` (published with the dataset). After a full,
/// unpartitioned run whose cache is the folder's own (`OUT/.cache`, the default), every other entry is of a
/// study no longer in the archive, or of parameters, files or code the folder no longer holds, and is removed:
/// nothing else reads that cache. A cache named with `--cache` may be shared by other outputs and partitions,
/// so it is never pruned behind their backs: `fuse3d cache prune DIR --keep OUT...` removes what none of the
/// given datasets uses.
extension StudyCache {
    /// The file in a dataset folder listing the cache keys its samples came from (sorted JSON array of hex keys).
    public static let keysFileName = ".cache-keys.json"

    /// What a prune removed.
    public struct PruneResult: Sendable, Equatable {
        /// Entries removed.
        public var entries = 0
        /// Bytes those entries held.
        public var bytes = 0
        /// Entries kept.
        public var kept = 0
    }

    /// Writes `keys` as a dataset's key list into `directory` (atomically).
    static func writeKeys(_ keys: [String], to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(Array(Set(keys)).sorted()) + Data("\n".utf8),
                             to: directory.appendingPathComponent(keysFileName))
    }

    /// The keys a finished ingest's dataset in `directory` used; throws, naming the file, when it has none.
    public static func keys(usedBy directory: URL) throws -> Set<String> {
        let url = directory.appendingPathComponent(keysFileName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ShardError.io(path: url.path, "missing: not the output of a finished fuse3d ingest (run the ingest again to write it)")
        }
        guard let keys = try? JSONDecoder().decode([String].self, from: data) else {
            throw ShardError.io(path: url.path, "not a JSON array of cache keys")
        }
        return Set(keys)
    }

    /// Removes every entry whose key is not in `keep` (temporary files are left to `sweepAbandonedWrites`).
    public func prune(keeping keep: Set<String>) -> PruneResult {
        let fm = FileManager.default
        var result = PruneResult()
        guard let folders = try? fm.contentsOfDirectory(atPath: directory.path) else { return result }
        for folder in folders.sorted() where folder.count == 2 {
            let url = directory.appendingPathComponent(folder)
            for name in ((try? fm.contentsOfDirectory(atPath: url.path)) ?? []).sorted() where name.hasSuffix(".entry") {
                guard !keep.contains(String(name.dropLast(".entry".count))) else { result.kept += 1; continue }
                let file = url.appendingPathComponent(name)
                let bytes = (try? fm.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0
                guard (try? fm.removeItem(at: file)) != nil else { continue }
                result.entries += 1
                result.bytes += bytes
            }
        }
        return result
    }
}
