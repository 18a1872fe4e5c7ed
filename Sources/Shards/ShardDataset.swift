import Foundation

/// A whole shard folder as one indexed collection: sample `i` of the dataset is found through the
/// manifest's per-shard counts; shards are opened on first use and kept open. Thread-safe.
public final class ShardDataset: @unchecked Sendable {
    /// The folder.
    public let directory: URL
    /// The folder's manifest.
    public let manifest: Manifest
    /// Study ids of all samples, in dataset order.
    public let studyIDs: [Int64]
    /// First dataset index of each shard (shard k holds `starts[k] ..< starts[k] + samples`).
    private let starts: [Int]
    private var readers: [Int: ShardReader] = [:]
    private let lock = NSLock()

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
        precondition((0..<count).contains(index), "sample \(index) out of 0..<\(count)")
        var low = 0, high = starts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if starts[mid] <= index { low = mid } else { high = mid - 1 }
        }
        return try reader(low).read(index - starts[low])
    }

    /// The reader of shard `k`, opened on first use; checks it against the manifest's count and ids.
    public func reader(_ k: Int) throws -> ShardReader {
        lock.lock()
        defer { lock.unlock() }
        if let open = readers[k] { return open }
        let entry = manifest.shards[k]
        let reader = try ShardReader(url: directory.appendingPathComponent(entry.file))
        guard reader.studyIDs == entry.studies else {
            throw ShardError.schema(path: reader.url.path, "study ids differ from \(Manifest.fileName)'s")
        }
        readers[k] = reader
        return reader
    }
}
