import Core
import Foundation

/// One thing wrong with a shard folder, naming the file at fault.
public struct VerificationProblem: Codable, Equatable, Sendable, CustomStringConvertible {
    /// The file (relative to the folder) the problem is in: a shard or `manifest.json`.
    public var file: String
    /// What is wrong.
    public var message: String
    /// `file: message`.
    public var description: String { "\(file): \(message)" }
}

/// What `ShardVerifier` checked and found.
public struct VerificationReport: Codable, Equatable, Sendable {
    /// The folder verified.
    public var directory: String
    /// Shards checked (as listed by the manifest).
    public var shardsChecked: Int
    /// Samples whose chunks were all decompressed.
    public var samplesDecoded: Int
    /// Everything wrong; empty when the folder is sound.
    public var problems: [VerificationProblem]
    /// Whether nothing is wrong.
    public var ok: Bool { problems.isEmpty }
}

/// Checks a shard folder against its manifest and data-schema.md: every shard listed exists with
/// its size and sha256, opens, matches the schema (dtypes, dims, chunking, shuffle + zstd), holds
/// the manifest's studies, and every chunk decompresses — the volumes' and, in a schema-2 shard, the source pixels'
/// (whose tables the reader validates on open). Problems are collected, never thrown.
public struct ShardVerifier: Sendable {
    /// The shard folder.
    public var directory: URL
    /// Whether to recompute each shard's sha256 (off: a decode-only check).
    public var checkHashes: Bool

    /// A verifier for `directory`.
    public init(directory: URL, checkHashes: Bool = true) {
        self.directory = directory
        self.checkHashes = checkHashes
    }

    /// Runs every check; `progress` is told each shard's name before it is checked.
    public func run(progress: ((String) -> Void)? = nil) -> VerificationReport {
        var report = VerificationReport(directory: directory.path, shardsChecked: 0, samplesDecoded: 0, problems: [])
        let manifest: Manifest
        do { manifest = try Manifest.load(from: directory) } catch {
            report.problems.append(.init(file: Manifest.fileName, message: "\(error)"))
            return report
        }
        let listed = Set(manifest.shards.map(\.file))
        let present = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in present.sorted() {
            if name.hasSuffix(".h5"), !listed.contains(name) {
                report.problems.append(.init(file: name, message: "shard file is not listed in \(Manifest.fileName)"))
            } else if name.hasSuffix(ShardSchema.partialSuffix) {
                report.problems.append(.init(file: name, message: "unfinished write left behind (a killed run?)"))
            }
        }
        if manifest.samples != manifest.shards.reduce(0, { $0 + $1.samples }) {
            report.problems.append(.init(file: Manifest.fileName, message: "samples \(manifest.samples) is not the sum of the shards' samples"))
        }
        for shard in manifest.shards {
            progress?(shard.file)
            report.shardsChecked += 1
            let problems = check(shard, manifest: manifest, decoded: &report.samplesDecoded)
            report.problems += problems.map { .init(file: shard.file, message: $0) }
        }
        return report
    }

    /// The problems of one shard.
    private func check(_ shard: Manifest.Shard, manifest: Manifest, decoded: inout Int) -> [String] {
        let url = directory.appendingPathComponent(shard.file)
        guard let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int else {
            return ["listed in \(Manifest.fileName) but missing"]
        }
        var problems: [String] = []
        if size != shard.bytes { problems.append("size \(size) bytes, manifest says \(shard.bytes)") }
        if checkHashes {
            do {
                let digest = try SHA256.hex(ofFile: url)
                if digest != shard.sha256 { problems.append("sha256 \(digest) does not match the manifest's \(shard.sha256)") }
            } catch { problems.append("\(error)") }
        }
        let reader: ShardReader
        do { reader = try ShardReader(url: url) } catch {
            return problems + ["does not open as a shard: \(error)"]
        }
        problems += schemaProblems(reader, shard: shard, manifest: manifest)
        for index in 0..<reader.sampleCount {
            do {
                _ = try reader.read(index)
                _ = try reader.readSourcePixels(index)
                decoded += 1
            } catch {
                problems.append("sample \(index) (study \(reader.studyIDs[index])) does not decode: \(error)")
            }
        }
        return problems
    }

    private func schemaProblems(_ reader: ShardReader, shard: Manifest.Shard, manifest: Manifest) -> [String] {
        var problems: [String] = []
        if reader.sampleCount != shard.samples {
            problems.append("\(reader.sampleCount) samples, manifest says \(shard.samples)")
        }
        if reader.studyIDs != shard.studies { problems.append("study ids differ from the manifest's") }
        if reader.shape != manifest.shape { problems.append("grid shape \(reader.shape), manifest says \(manifest.shape)") }
        if reader.parameters != manifest.parameters { problems.append("parameters differ from the manifest's") }
        do {
            let layout = try reader.volumeLayout()
            if layout.chunk != [1, 1] + reader.shape {
                problems.append("volumes chunked as \(layout.chunk.map { "\($0)" } ?? "contiguous"), schema says one sample and channel per chunk")
            }
            if let first = try reader.unwrittenChunks().first {
                problems.append("volumes chunk (sample \(first.sample), channel \(first.channel)) was never written")
            }
            let ids = layout.filters.map(\.id)
            if ids != [ShardSchema.shuffleFilterID, ShardSchema.zstdFilterID] {
                problems.append("volumes filters \(ids), schema says [2 (shuffle), 32015 (zstd)]")
            }
            if let source = try reader.sourceLayout() {
                let ids = source.filters.map(\.id)
                if ids != [ShardSchema.shuffleFilterID, ShardSchema.zstdFilterID] {
                    problems.append("source_pixels filters \(ids), schema says [2 (shuffle), 32015 (zstd)]")
                }
                if let first = try reader.unwrittenSourceChunks().first {
                    problems.append("source_pixels chunk at element \(first.start) (sample \(first.sample)) was never written")
                }
            }
        } catch { problems.append("\(error)") }
        return problems
    }
}
