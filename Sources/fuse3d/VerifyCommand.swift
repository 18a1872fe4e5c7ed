import ArgumentParser
import Core
import Foundation
import Shards

/// `fuse3d verify DIR`: checks a shard folder against manifest.json and data-schema.md.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a shard folder: every shard opens, matches the schema, decompresses, and matches manifest.json.",
        discussion: """
        Each shard listed in manifest.json must exist with its size and sha256, open as schema_version 1 or 2, \
        have the schema's datasets, dtypes, chunking and filters (shuffle, zstd), hold the manifest's \
        studies, and decompress chunk by chunk (in schema 2 the source pixels too, their tables checked). Shard files the manifest does not list, and partial files \
        left by a killed run, are problems too. The exit status is 0 when every check passes; otherwise it is 1 \
        and each faulty shard is named.

        Example: fuse3d verify /tmp/shards
        """)

    @Argument(help: "The shard folder (holding manifest.json and shard-NNNNN.h5).")
    var directory: String

    @Flag(name: .customLong("no-hash"), help: "Skip the sha256 check: only open and decompress every chunk (faster).")
    var noHash = false

    @Flag(help: "Print the report as JSON on standard output.")
    var json = false

    func run() throws {
        let folder = URL(fileURLWithPath: directory)
        let total = (try? Manifest.load(from: folder))?.shards.count ?? 0
        let progress = CountProgress(label: "verify", unit: "shards")
        var started = 0
        let report = ShardVerifier(directory: folder, checkHashes: !noHash).run { _ in
            progress.update(started, total)
            started += 1
        }
        progress.update(total, total)
        progress.finish()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        }
        for problem in report.problems {
            FileHandle.standardError.write(Data("\(folder.appendingPathComponent(problem.file).path): \(problem.message)\n".utf8))
        }
        if !json {
            let verdict = report.ok ? "ok" : "\(report.problems.count) problem(s)"
            print("\(directory): \(report.shardsChecked) shard(s), \(report.samplesDecoded) sample(s) decoded, \(verdict)")
        }
        if !report.ok { throw ExitCode(1) }
    }
}
