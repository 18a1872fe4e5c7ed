import Foundation

/// What `inspect` points at: a shard folder (with manifest.json) or one shard file.
public struct ShardSet {
    /// The folder, when a folder was given.
    public let dataset: ShardDataset?
    /// The single shard, when a file was given.
    public let file: ShardReader?

    /// Opens `path`, a shard folder or a `shard-NNNNN.h5` file.
    public init(path: String) throws {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        if isDir.boolValue {
            dataset = try ShardDataset(directory: URL(fileURLWithPath: path))
            file = nil
        } else {
            dataset = nil
            file = try ShardReader(url: URL(fileURLWithPath: path))
        }
    }

    /// Study ids in sample order.
    public var studyIDs: [Int64] { dataset?.studyIDs ?? file!.studyIDs }

    /// The sample at `index` (default 0) or of study `study`, and a note saying where it was found.
    public func find(index: Int?, study: Int64?) throws -> (FusedSample, String) {
        let ids = studyIDs
        let i: Int
        if let study {
            guard let k = ids.firstIndex(of: study) else {
                throw ShardError.io(path: dataset?.directory.path ?? file!.url.path, "no sample of study \(study) (\(ids.count) samples)")
            }
            i = k
        } else {
            i = index ?? 0
            guard i >= 0 && i < ids.count else {
                throw ShardError.io(path: dataset?.directory.path ?? file!.url.path, "sample \(i) is out of range (\(ids.count) samples)")
            }
        }
        let sample = try dataset?.read(i) ?? file!.read(i)
        return (sample, "sample \(i) of \(ids.count)")
    }
}
