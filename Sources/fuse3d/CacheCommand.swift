import ArgumentParser
import Foundation
import Ingest

/// `fuse3d cache`: look after a study cache that several outputs share.
struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Look after a study cache (the --cache folder of fuse3d ingest).",
        discussion: """
        Example:
          fuse3d cache prune /data/cache --keep /data/parts/part-0 --keep /data/parts/part-1
        """,
        subcommands: [CachePrune.self])
}

/// `fuse3d cache prune`: remove the entries none of the given datasets uses.
struct CachePrune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove the cache entries that none of the given ingest outputs uses, and say how much space that freed.",
        discussion: """
        Every fuse3d ingest records the cache keys its dataset came from (OUT/.cache-keys.json). A folder's own cache \
        (OUT/.cache) is pruned by the ingest itself after a full run; a cache shared through --cache is pruned only \
        here, keeping every entry that one of the --keep outputs uses (name every output and partition that shares it).

        Example:
          fuse3d cache prune /data/cache --keep /data/parts/part-0 --keep /data/parts/part-1
        """)

    @Argument(help: "The cache folder.")
    var cache: String

    @Option(name: .long, help: "An ingest output whose entries are kept (repeat for every output sharing the cache).")
    var keep: [String] = []

    func validate() throws {
        guard !keep.isEmpty else { throw ValidationError("give at least one --keep OUT: the outputs whose entries stay.") }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: cache, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("'\(cache)' is not a folder: give the --cache folder of the ingests.")
        }
    }

    func run() throws {
        var keys = Set<String>()
        for out in keep { keys.formUnion(try StudyCache.keys(usedBy: URL(fileURLWithPath: out))) }
        let result = StudyCache(directory: URL(fileURLWithPath: cache)).prune(keeping: keys)
        print(String(format: "%d entr(ies) pruned, %.1f MB freed; %d kept", result.entries, Double(result.bytes) / 1_000_000, result.kept))
    }
}
