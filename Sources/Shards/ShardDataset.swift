import Core
import Foundation
import Synchronization

/// A whole shard folder as one indexed collection: sample `i` of the dataset is found through the
/// manifest's per-shard counts; shards are opened on first use and kept open. Thread-safe.
public final class ShardDataset: Sendable {
    /// The folder.
    public let directory: URL
    /// The folder's manifest.
    public let manifest: Manifest
    /// Study ids of all samples, in dataset order.
    public let studyIDs: [Int64]
    /// First dataset index of each shard (shard k holds `starts[k] ..< starts[k] + samples`).
    private let starts: [Int]
    /// The open readers; shards whose sha256 matched the manifest, and the locks that keep two threads from hashing one shard.
    private let state = Mutex<(readers: [Int: ShardReader], checked: Set<Int>, checksumLocks: [Int: NSLock])>(([:], [], [:]))

    /// Opens `directory` through its manifest (refusing an unknown schema version).
    public init(directory: URL) throws {
        self.directory = directory
        manifest = try Manifest.load(from: directory)
        var starts: [Int] = []
        var total = 0
        for shard in manifest.shards {
            starts.append(total)
            total += shard.samples
        }
        self.starts = starts
        studyIDs = manifest.shards.flatMap(\.studies)
    }

    /// Number of samples over all shards.
    public var count: Int { studyIDs.count }

    /// Reads dataset sample `index` (shard by shard in manifest order).
    public func read(_ index: Int) throws -> FusedSample {
        let (shard, local) = locate(index)
        return try reader(shard).read(local)
    }

    /// The shard holding dataset sample `index` and the sample's index within it.
    public func locate(_ index: Int) -> (shard: Int, sample: Int) {
        precondition((0..<count).contains(index), "sample \(index) out of 0..<\(count)")
        var low = 0, high = starts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if starts[mid] <= index { low = mid } else { high = mid - 1 }
        }
        return (low, index - starts[low])
    }

    /// Hashes shard `k` once (later calls return at once) and throws when its sha256 differs from the
    /// manifest's. Costs a full read of the file, so the loader does it only when asked to; threads
    /// checking different shards hash in parallel, threads asking for the same one wait for one hash.
    public func verifyChecksum(_ k: Int) throws {
        let shardLock: NSLock? = state.withLock { state in
            if state.checked.contains(k) { return nil }
            if let existing = state.checksumLocks[k] { return existing }
            let shardLock = NSLock()
            state.checksumLocks[k] = shardLock
            return shardLock
        }
        guard let shardLock else { return }
        shardLock.lock()
        defer { shardLock.unlock() }
        if state.withLock({ $0.checked.contains(k) }) { return }
        let entry = manifest.shards[k]
        let url = directory.appendingPathComponent(entry.file)
        let found = try SHA256.hex(ofFile: url)
        guard found == entry.sha256 else {
            throw ShardError.schema(path: url.path, "sha256 \(found) differs from \(Manifest.fileName)'s \(entry.sha256)")
        }
        state.withLock { _ = $0.checked.insert(k) }
    }

    /// The reader of shard `k`, opened on first use; checks it against the manifest's count and ids.
    public func reader(_ k: Int) throws -> ShardReader {
        try state.withLock { state in
            if let open = state.readers[k] { return open }
            let entry = manifest.shards[k]
            let url = directory.appendingPathComponent(entry.file)
            // A size check costs one stat and catches a truncated or replaced file before any chunk is read.
            if let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int, size != entry.bytes {
                throw ShardError.schema(path: url.path, "size \(size) bytes differs from \(Manifest.fileName)'s \(entry.bytes)")
            }
            let reader = try ShardReader(url: url)
            guard reader.studyIDs == entry.studies else {
                throw ShardError.schema(path: reader.url.path, "study ids differ from \(Manifest.fileName)'s")
            }
            state.readers[k] = reader
            return reader
        }
    }
}
