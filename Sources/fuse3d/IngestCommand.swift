import ArgumentParser
import Core
import Foundation
import Ingest

/// `fuse3d ingest`: DICOM archive → fused grids in HDF5 shards, incremental, resumable, partitionable.
struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Fuse every study of a DICOM archive into one (3, D, H, W) float16 grid and write HDF5 shards.",
        discussion: """
        Scans the archive, then decodes, fuses, normalizes and compresses the studies in parallel workers and writes \
        shard-NNNNN.h5, manifest.json and ingest-report.json in catalog order, so the bytes do not depend on the number \
        of workers. The report lists every study's status and channels and every skipped file with its reason. A bad \
        file is skipped and reported, never fatal. Labels come from train.csv and keypoints from \
        train_label_coordinates.csv when present.

        The RSNA CSVs are read as spreadsheets and editors save them: a byte-order mark, CRLF, quoted cells, columns \
        in another order or case, extra columns, spaces around cells and descriptions, lowercase severities are all \
        fine. A value that cannot be read (an unknown severity, say) costs its own cell and is named with its file, \
        line and column in ingest-report.json. What would silently lose labels is loud: a missing required column, a \
        study id that is not a number, a row for a study with no folder, a study folder with no row, two rows for one \
        study that disagree, a keypoint row naming a series or instance that does not exist. Each is named in the \
        report and counted on the summary line; when more than 5 % of the run's studies lose labels or keypoints \
        this way, ingest writes the shards and the report as usual, then says so in one line and exits 1, unless \
        --allow-unlabelled. An archive without label CSVs is an ordinary unlabelled ingest.

        Each study's result is cached under a key of its files (path, size, content digest, checked through a stat fast \
        path), the fusion parameters, its \
        CSV rows and the fusion code's version. Running the same command again on the same --out is an incremental \
        update: unchanged studies come from the cache, changed or added ones are fused, removed ones leave, and the \
        shards are byte-identical to a fresh run. The scan keeps each file's parsed header in OUT/.headers.index, so a \
        re-run reads only the headers of files whose size, mtime or inode changed, and a re-run that would write the \
        same dataset leaves its shards and manifest as they are (OUT/.ingest-state.json). A study that cannot be written (its sample id already taken, another \
        grid shape) fails alone, with its reason. The new dataset is staged in OUT/.staging and replaces the folder's \
        earlier one only when complete, so a run that stops or is killed (even kill -9) leaves the earlier dataset whole; \
        running the command again finishes the job from the cache. After a full run the folder's own cache drops the \
        entries its dataset no longer uses (studies gone, other parameters) and says how much that freed; a shared \
        --cache folder is pruned only by fuse3d cache prune.

        --partition I/N fuses only part I of N (a hash of the study id); without it, a Slurm job array \
        (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT, SLURM_ARRAY_TASK_MIN) or a Kubernetes Indexed Job \
        (JOB_COMPLETION_INDEX, with --partitions or FUSE3D_PARTITION_COUNT) chooses the part. Join the parts with \
        fuse3d merge.

        Files are untrusted: every header value is checked against physical ranges (spacing 1 µm to 50 mm, positions \
        within ±10 m, unit orientation vectors, thickness up to 500 mm, finite rescale) and every compressed frame's own \
        header (JPEG, JPEG-LS, JPEG 2000, RLE) against Rows, Columns, samples and bits before a decoder reads it. The \
        decoders run in supervised worker processes: a file whose decoder crashes or runs past --decoder-time-limit \
        is skipped with that reason ("decoder crashed (SIGSEGV) while reading this file"), its study is fused without \
        it, and later runs leave it out from the start (OUT/.decoder-crashes.json; delete it to try again).

        """ + "\n" + pipelineKeys + "\n\n" + """
        Examples:
          fuse3d ingest /data/rsna --out shards --pipeline pipelines/rsna-lumbar.yaml
          fuse3d ingest demo-out/cohort --out demo-out/shards --size 64
          fuse3d ingest /data/rsna --out parts/part-1 --partition 1/4 --cache cache
        """)

    /// The keys a --pipeline file may hold, from the pipeline's own key table.
    static var pipelineKeys: String {
        (["Pipeline keys (--pipeline FILE, YAML; every key optional):"] + PipelineConfig.keyHelp.map { "  " + $0 }).joined(separator: "\n")
    }

    @Argument(help: "The archive folder (RSNA layout or any tree of DICOM files).")
    var archive: String

    @Option(name: .long, help: "Output folder for the shards, manifest.json and ingest-report.json.")
    var out: String

    @Option(help: "A pipeline definition (YAML), e.g. pipelines/rsna-lumbar.yaml. The flags below override it.")
    var pipeline: String?

    @Option(help: "Grid size in voxels per axis (otherwise the pipeline's, or 128).")
    var size: Int?

    @Flag(name: .customLong("no-source-pixels"),
          help: "Leave the studies' source slices out of the shards (otherwise the pipeline's fusion.source_pixels, or kept).")
    var noSourcePixels = false

    @Option(help: "Samples per shard (otherwise shards are filled to about 1 GB of compressed data).")
    var samplesPerShard: Int?

    @Option(help: "Zstandard level, 1…22 (otherwise the pipeline's, or 1).")
    var zstdLevel: Int?

    @Option(help: "The study cache's folder, which several outputs may share (default: OUT/.cache).")
    var cache: String?

    @Flag(help: "Fuse every study again instead of reusing cached results (and read every header again), and refresh the cache.")
    var overwrite = false

    @Option(help: "Studies decoded and fused at once (default: the number of cores).")
    var workers: Int?

    @Option(help: "Fuse only part I of N of the studies, e.g. 0/4.")
    var partition: String?

    @Option(help: "The number of parts of a Kubernetes Indexed Job (its completions), if FUSE3D_PARTITION_COUNT is not set.")
    var partitions: Int?

    @Flag(help: "Exit with status 1 after the run when any file was skipped (the report is written first).")
    var strict = false

    @Option(help: "Seconds a decoder may spend on one file before it is taken for hung, killed, and the file skipped")
    var decoderTimeLimit: Double = DecoderLimits().fileSeconds

    @Option(help: "Where decoders run: 'workers' (supervised worker processes: a crash costs one file) or 'in-process' (no containment: for debugging and for measuring its cost)")
    var decoders: String = "workers"

    @Flag(help: "Exit with status 0 even when the label CSVs' problems cost more than 5 % of the studies their labels or keypoints (the shards and report are written either way; the problems are in ingest-report.json).")
    var allowUnlabelled = false

    func validate() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: archive, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("'\(archive)' is not a folder: give the archive's root folder.")
        }
        if let size, !FusionParameters.sizeRange.contains(size) {
            throw ValidationError("--size must be \(FusionParameters.sizeRange.lowerBound)…\(FusionParameters.sizeRange.upperBound) voxels.")
        }
        if let zstdLevel, !(1...22).contains(zstdLevel) { throw ValidationError("--zstd-level must be 1…22.") }
        if let samplesPerShard, samplesPerShard < 1 { throw ValidationError("--samples-per-shard must be at least 1.") }
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1.") }
        if !(decoderTimeLimit > 0) { throw ValidationError("--decoder-time-limit must be a number of seconds > 0.") }
        if !["workers", "in-process"].contains(decoders) { throw ValidationError("--decoders must be 'workers' or 'in-process'.") }
        if let partitions, partitions < 1 { throw ValidationError("--partitions must be at least 1.") }
        if partitions != nil, partition == nil, ProcessInfo.processInfo.environment["JOB_COMPLETION_INDEX"] == nil {
            throw ValidationError("--partitions counts the parts of a Kubernetes Indexed Job, but JOB_COMPLETION_INDEX is not set; outside one, give --partition I/N.")
        }
    }

    func run() throws {
        var config = try pipeline.map(PipelineConfig.load) ?? PipelineConfig()
        if let size { config.fusion.size = size }
        if noSourcePixels { config.fusion.sourcePixels = false }
        if let samplesPerShard { config.samplesPerShard = samplesPerShard }
        if let zstdLevel { config.zstdLevel = zstdLevel }
        let part = try partition.map(Partition.parse)
            ?? Partition.fromEnvironment(ProcessInfo.processInfo.environment, kubernetesCount: partitions)
        if let part {
            let origin = part.source == "--partition" ? "from --partition" : "from the \(part.source == "slurm" ? "Slurm job array" : "Kubernetes Indexed Job")'s environment"
            print("partition \(part) (\(origin))")
        }
        var options = IngestOptions(archive: archive, output: URL(fileURLWithPath: out), pipeline: config,
                                    workers: workers ?? ProcessInfo.processInfo.activeProcessorCount,
                                    cacheDirectory: cache.map { URL(fileURLWithPath: $0) }, recompute: overwrite, partition: part)
        options.isolation = decoders == "in-process" ? .none
            : .processes(executable: "/proc/self/exe", limits: DecoderLimits(fileSeconds: decoderTimeLimit))
        let scanning = CountProgress(label: "scan", unit: "files")
        let line = IngestProgressLine()
        var scanned = false
        let outcome = try IngestRunner.run(options, scanProgress: { scanning.update($0, $1) }) { state in
            if !scanned { scanning.finish(); scanned = true }
            line.update(state)
        }
        if !scanned { scanning.finish() }
        line.finish()
        for s in outcome.report.studies {
            if s.status != .fused { print("study \(s.studyID): \(s.error ?? "failed")") }
            for note in s.notes { print("study \(s.studyID): note: \(note)") }
        }
        print(outcome.report.summaryLine)
        print(IngestProgressLine.summary(outcome))
        if let lost = outcome.report.labelLossLine {
            if !allowUnlabelled { throw LabelLossFailure(line: lost) }
            print("labels: \(lost) (accepted: --allow-unlabelled)")
        }
        if strict && outcome.report.summary.filesSkipped > 0 {
            throw StrictFailure(skipped: outcome.report.summary.filesSkipped)
        }
    }
}

/// The label CSVs cost too many studies their labels or keypoints: the run finished, its report names the problems,
/// the exit status says so (`--allow-unlabelled` accepts it).
struct LabelLossFailure: Error, CustomStringConvertible {
    /// `IngestReport.labelLossLine`.
    var line: String
    /// The line and the way out.
    var description: String { "labels: \(line); fix the CSVs, or accept this with --allow-unlabelled" }
}

/// `--strict` and files were skipped: the run finished, its report lists them, the exit status says so.
struct StrictFailure: Error, CustomStringConvertible {
    /// Files skipped by the run.
    var skipped: Int
    /// Names the count and where the reasons are.
    var description: String { "--strict: \(skipped) file(s) skipped; their reasons are in ingest-report.json" }
}
