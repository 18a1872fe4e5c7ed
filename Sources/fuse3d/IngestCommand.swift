import ArgumentParser
import Foundation
import Ingest

/// `fuse3d ingest`: DICOM archive → fused grids in HDF5 shards.
struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Fuse every study of a DICOM archive into one (3, D, H, W) float16 grid and write HDF5 shards.",
        discussion: """
        Runs scan → read → fuse → pack for every study, in a fixed order. Writes shard-NNNNN.h5, manifest.json and
        ingest-report.json (per study: status and channels; per file: every problem and its reason). A bad file is
        skipped and reported, never fatal; exit status 0 when the run finishes. Labels come from train.csv and
        keypoints from train_label_coordinates.csv when present.

        Example:
          fuse3d ingest /data/rsna-2024 --out /data/shards --pipeline pipelines/rsna-lumbar.yaml
          fuse3d ingest demo-out/cohort --out demo-out/shards --size 64
        """)

    @Argument(help: "The archive folder (RSNA layout or any tree of DICOM files).")
    var archive: String

    @Option(name: .long, help: "Output folder for the shards, manifest.json and ingest-report.json.")
    var out: String

    @Option(help: "A pipeline definition (YAML), e.g. pipelines/rsna-lumbar.yaml. Flags below override it.")
    var pipeline: String?

    @Option(help: "Grid size: voxels per axis (default 128, or the pipeline's).")
    var size: Int?

    @Option(help: "Samples per shard (default: fill shards to about 1 GB of compressed data).")
    var samplesPerShard: Int?

    @Option(help: "Zstandard level 1…22 (default 3).")
    var zstdLevel: Int?

    @Flag(help: "Replace a finished earlier run in --out (a folder with manifest.json is refused otherwise).")
    var overwrite = false

    // issue 9 (files): --strict.
    @Flag(help: "Exit with status 1 after the run when any file was skipped (the report is written first).")
    var strict = false

    @Option(help: "Studies fused at once (default: the number of cores).")
    var workers: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: archive, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("'\(archive)' is not a folder: give the archive's root folder.")
        }
        if let size, !(8...512).contains(size) { throw ValidationError("--size must be 8…512 voxels.") }
        if let zstdLevel, !(1...22).contains(zstdLevel) { throw ValidationError("--zstd-level must be 1…22.") }
        if let samplesPerShard, samplesPerShard < 1 { throw ValidationError("--samples-per-shard must be at least 1.") }
        if workers < 1 { throw ValidationError("--workers must be at least 1.") }
    }

    func run() throws {
        var config = try pipeline.map(PipelineConfig.load) ?? PipelineConfig()
        if let size { config.fusion.size = size }
        if let samplesPerShard { config.samplesPerShard = samplesPerShard }
        if let zstdLevel { config.zstdLevel = zstdLevel }
        let scanning = Progress(label: "scan", unit: "files")
        let fusing = Progress(label: "ingest", unit: "studies")
        let options = IngestOptions(archive: archive, output: URL(fileURLWithPath: out), pipeline: config, workers: workers,
                                    overwrite: overwrite)
        var scanned = false
        let report = try IngestRunner.run(options, scanProgress: { done, total in scanning.update(done, total) }) { done, total in
            if !scanned { scanning.finish(); scanned = true }
            fusing.update(done, total)
        }
        if !scanned { scanning.finish() }
        fusing.finish()
        for s in report.studies where s.status != "fused" {
            print("study \(s.studyID): \(s.error ?? "failed")")
        }
        print(report.summaryLine)
        if strict && report.summary.filesSkipped > 0 {
            throw StrictFailure(skipped: report.summary.filesSkipped)
        }
    }
}

/// `--strict` and files were skipped: the run finished, its report lists them, the exit status says so.
struct StrictFailure: Error, CustomStringConvertible {
    /// Files skipped by the run.
    var skipped: Int
    /// Names the count and where the reasons are.
    var description: String { "--strict: \(skipped) file(s) skipped; their reasons are in ingest-report.json" }
}
