import Foundation

extension Manifest {
    /// Checks that `directory` is a shard folder (it holds `manifest.json`), with the one message every command
    /// that takes a shard folder shows; the manifest itself is read (and its version checked) by `load(from:)`.
    public static func checkFolder(_ directory: URL) throws {
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent(fileName).path) else {
            throw ShardError.io(path: directory.path, "has no \(fileName): give a shard folder written by `fuse3d ingest`")
        }
    }
}
