import Foundation
import Shards

/// `fuse3d merge`: one dataset from the shard folders of a partitioned ingest, without moving or
/// copying a byte: the merged `manifest.json` lists every part's shards by a path relative to the
/// merged folder (`../part-0/shard-00000.h5`), so the parts stay valid datasets of their own, a part
/// re-run later is merged again in a moment, and the whole thing can be moved as one tree.
///
/// Refused, with the reason: parts made with other parameters (shape, zstd level, any pipeline
/// parameter, schema; the first difference is named), a study in two parts, a missing or repeated
/// part (each part's ingest-report.json records its partition), or a part that is not a finished run.
public enum PartitionMerge {
    /// Merges `parts` into a manifest in `output` (created if needed) and returns it.
    public static func merge(parts: [URL], into output: URL) throws -> Manifest {
        guard !parts.isEmpty else { throw MergeError("give at least one part folder") }
        let out = output.standardizedFileURL
        var manifests: [(url: URL, manifest: Manifest)] = []
        for part in parts {
            let url = part.standardizedFileURL
            guard url.path != out.path else { throw MergeError("\(part.path): the output folder cannot be one of the parts") }
            manifests.append((url, try Manifest.load(from: url)))
        }
        try checkPartitions(manifests.map(\.url))
        let first = manifests[0]
        var owner: [Int64: String] = [:]
        var shards: [Manifest.Shard] = []
        for (url, m) in manifests {
            if let difference = difference(first.manifest, m) {
                throw MergeError("\(url.path) was made with other parameters than \(first.url.path): \(difference)")
            }
            for shard in m.shards {
                for study in shard.studies {
                    if let other = owner[study] {
                        throw MergeError("study \(study) is in both \(other) and \(url.path): the parts overlap (made with different partitions?)")
                    }
                    owner[study] = url.path
                }
                var entry = shard
                entry.file = relativePath(from: out, to: url.appendingPathComponent(shard.file))
                shards.append(entry)
            }
        }
        let shape = manifests.first { !$0.manifest.shape.isEmpty }?.manifest.shape ?? []
        let merged = Manifest(shape: shape, zstdLevel: first.manifest.zstdLevel, parameters: first.manifest.parameters,
                              shards: shards, channels: first.manifest.channels, labelColumns: first.manifest.labelColumns,
                              schemaVersion: first.manifest.schemaVersion)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try merged.write(to: out)
        return merged
    }

    /// Every part's recorded partition: all of one count, each index exactly once.
    static func checkPartitions(_ parts: [URL]) throws {
        var seen: [Int: String] = [:]
        var count: Int?
        for url in parts {
            let reportURL = url.appendingPathComponent(IngestRunner.reportName)
            guard let data = FileManager.default.contents(atPath: reportURL.path) else {
                throw MergeError("\(reportURL.path) is missing: not the output of a finished fuse3d ingest")
            }
            struct Recorded: Decodable { var partition: Partition? }
            let recorded: Recorded
            do { recorded = try JSONDecoder().decode(Recorded.self, from: data) } catch {
                throw MergeError("\(reportURL.path): not an ingest report: \(error)")
            }
            let p = recorded.partition ?? Partition(index: 0, count: 1, source: "whole archive")
            if let count, count != p.count {
                throw MergeError("\(url.path) is part \(p) but the first part is of \(count) parts")
            }
            count = p.count
            if let other = seen[p.index] { throw MergeError("\(url.path) and \(other) are both part \(p)") }
            seen[p.index] = url.path
        }
        let missing = (0..<(count ?? 0)).filter { seen[$0] == nil }
        guard missing.isEmpty else {
            throw MergeError("part(s) \(missing.map { "\($0)/\(count!)" }.joined(separator: ", ")) missing: give every part's folder")
        }
    }

    /// The first way two parts' manifests differ in how their samples were made, or nil.
    static func difference(_ a: Manifest, _ b: Manifest) -> String? {
        if a.schemaVersion != b.schemaVersion { return "schema_version \(a.schemaVersion) vs \(b.schemaVersion)" }
        if !a.shape.isEmpty && !b.shape.isEmpty && a.shape != b.shape { return "shape \(a.shape) vs \(b.shape)" }
        if a.zstdLevel != b.zstdLevel { return "zstd_level \(a.zstdLevel) vs \(b.zstdLevel)" }
        if a.channels != b.channels { return "channels \(a.channels) vs \(b.channels)" }
        if a.labelColumns != b.labelColumns { return "label_columns differ" }
        for key in Set(a.parameters.keys).union(b.parameters.keys).sorted() where a.parameters[key] != b.parameters[key] {
            return "parameter \(key): \(a.parameters[key] ?? "absent") vs \(b.parameters[key] ?? "absent")"
        }
        return nil
    }

    /// `target` relative to the folder `base` (both standardized absolute paths), e.g. "../part-0/shard-00000.h5".
    static func relativePath(from base: URL, to target: URL) -> String {
        let b = base.standardizedFileURL.pathComponents
        let t = target.standardizedFileURL.pathComponents
        var common = 0
        while common < b.count && common < t.count && b[common] == t[common] { common += 1 }
        return (Array(repeating: "..", count: b.count - common) + t[common...]).joined(separator: "/")
    }
}

/// A merge that was refused, and why.
public struct MergeError: Error, CustomStringConvertible {
    /// What is wrong (naming the part folders and the difference).
    public var description: String
    /// An error with this message.
    public init(_ description: String) { self.description = description }
}
