import ArgumentParser
import Foundation
import Ingest

/// `fuse3d merge`: the parts of a partitioned ingest as one shard folder.
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Join the shard folders of a partitioned ingest into one dataset.",
        discussion: """
        Writes OUT/manifest.json listing every part's shards by a path relative to OUT (for example \
        ../part-0/shard-00000.h5); no shard is copied or moved, so keep the parts where they are, or move OUT and the \
        parts together. The result opens in verify, inspect and the loader like any shard folder. Refuses parts made \
        with different parameters (naming the difference), parts that share a study, and a missing or repeated part.

        Example:
          fuse3d merge /data/parts/part-0 /data/parts/part-1 /data/parts/part-2 /data/parts/part-3 --out /data/shards
        """)

    @Argument(help: "The part folders, each the --out of one fuse3d ingest --partition I/N.")
    var parts: [String]

    @Option(name: .long, help: "The merged dataset's folder (gets manifest.json).")
    var out: String

    func validate() throws {
        if parts.isEmpty { throw ValidationError("Give the part folders to merge.") }
    }

    func run() throws {
        let manifest = try PartitionMerge.merge(parts: parts.map { URL(fileURLWithPath: $0) }, into: URL(fileURLWithPath: out))
        print("merged \(parts.count) part(s): \(manifest.samples) samples in \(manifest.shards.count) shard(s) → \(out)/manifest.json")
    }
}
