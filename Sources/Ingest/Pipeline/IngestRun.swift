import Foundation
import Shards

/// What `fuse3d ingest` is asked to do: the archive, where the shards go, and the pipeline's parameters.
public struct IngestOptions: Sendable {
    /// Archive root (RSNA layout or any DICOM tree).
    public var archive: String
    /// Output folder for shards, manifest.json and ingest-report.json.
    public var output: URL
    /// The pipeline's configuration (fusion and shard parameters).
    public var pipeline: PipelineConfig
    /// Studies fused at once (each holds one study's pixels and grid in memory).
    public var workers: Int
    /// Replace the shards of an earlier run in `output` (otherwise such a folder is refused).
    public var overwrite: Bool

    /// Defaults: the default pipeline, 2 workers (at least 1 is used), no overwriting.
    public init(archive: String, output: URL, pipeline: PipelineConfig = PipelineConfig(), workers: Int = 2,
                overwrite: Bool = false) {
        self.archive = archive
        self.output = output
        self.pipeline = pipeline
        self.workers = max(1, workers)
        self.overwrite = overwrite
    }
}

/// Per study: what was fused from which series, or why not.
public struct StudyReport: Codable, Sendable {
    /// The archive's study id (RSNA folder name or Study Instance UID).
    public var studyID: String
    /// The id stored in the shards (`study_id`).
    public var sampleID: Int64
    /// "fused" or "failed".
    public var status: String
    /// Per channel name: the series fused into it, or "missing".
    public var channels: [String: String]
    /// Why the study failed, if it did.
    public var error: String?
    /// Files of this study that were skipped while decoding (path relative to the archive, reason).
    public var problems: [CatalogProblem]
    /// The fusion's provenance (box, grid, coverage, normalization, stacks used).
    public var fusion: FusionRecord?
}

/// `ingest-report.json`: every study's outcome and every file problem, with a summary.
public struct IngestReport: Codable, Sendable {
    /// Counts over the whole run.
    public struct Summary: Codable, Sendable {
        /// Studies found in the archive (fused or failed).
        public var studies: Int
        /// Studies fused into a sample.
        public var fused: Int
        /// Studies that could not be fused (see each report's `error`).
        public var failed: Int
        /// issue 9 (files): every regular file under the archive; filesFound = filesUsed + filesSkipped + filesIgnored.
        public var filesFound: Int
        /// Files read into a fused sample, and the RSNA tables read.
        public var filesUsed: Int
        /// Files skipped for a problem (each listed in `files` with its reason).
        public var filesSkipped: Int
        /// Files left out on purpose (listed in `ignoredSeries` and `ignoredFiles`).
        public var filesIgnored: Int
        /// Samples written to the shards (from the manifest).
        public var samples: Int
        /// Shard files written.
        public var shards: Int
    }
    /// The archive root that was scanned (standardized path).
    public var archive: String
    /// "rsna" when train_series_descriptions.csv named the series, else "tags".
    public var mode: String
    /// The pipeline configuration the run used.
    public var pipeline: PipelineConfig
    /// Counts of studies, files, samples and shards.
    public var summary: Summary
    /// One report per study, in catalog order (by study id).
    public var studies: [StudyReport]
    /// Problems found by the scan (unreadable, non-image, geometry-less files; table problems).
    public var files: [CatalogProblem]
    /// issue 9 (files): every series not fused, with its kind, file count and reason.
    public var ignoredSeries: [IgnoredSeries]
    /// issue 9 (files): files ignored one by one (duplicates, tables not read, studies of another partition).
    public var ignoredFiles: [CatalogProblem]

    /// The closing summary line of an ingest run.
    public var summaryLine: String {
        "\(summary.fused) of \(summary.studies) studies fused into \(summary.samples) samples in \(summary.shards) shard(s); "
            + "\(summary.failed) failed; \(summary.filesFound) files found: \(summary.filesUsed) used, "
            + "\(summary.filesSkipped) skipped, \(summary.filesIgnored) ignored (see ingest-report.json)"
    }
}

/// The first ingest: scan → read → fuse → pack, study by study in a fixed order, memory per study.
public enum IngestRunner {
    /// Name of the per-run report written beside the shards.
    public static let reportName = "ingest-report.json"

    /// Runs the whole ingest. `scanProgress(done, total)` reports the header scan's files,
    /// `progress(done, total)` each study fused.
    public static func run(_ options: IngestOptions, scanProgress: ((Int, Int) -> Void)? = nil,
                           progress: ((Int, Int) -> Void)? = nil) throws -> IngestReport {
        try claimOutput(options)
        let catalog = CatalogScanner.scan(root: options.archive, progress: scanProgress)
        let tables = RSNATables.load(root: catalog.root)
        try FileManager.default.createDirectory(at: options.output, withIntermediateDirectories: true)
        let writer = try ShardWriter(directory: options.output, options: options.pipeline.shardWriterOptions())
        let fuser = Fuser(parameters: options.pipeline.fusion)

        var reports: [StudyReport] = []
        let studies = catalog.studies
        var next = 0
        while next < studies.count {
            // A window of `workers` studies is fused at once; samples are packed in catalog order.
            let window = Array(studies[next..<min(studies.count, next + options.workers)])
            var results = [(FusedSample?, StudyReport)?](repeating: nil, count: window.count)
            results.withUnsafeMutableBufferPointer { out in
                DispatchQueue.concurrentPerform(iterations: window.count) { i in
                    let study = window[i]
                    out[i] = StudyFusion.fuse(study: study, root: catalog.root, labels: tables.labels(for: study.studyID),
                                              coordinates: tables.coordinates[study.studyID] ?? [], fuser: fuser)
                }
            }
            for r in results {
                let (sample, report) = r!
                if let sample { try writer.append(sample) }
                reports.append(report)
            }
            next += window.count
            progress?(next, studies.count)
        }
        let manifest = try writer.finish()
        try removeUnlistedShards(in: options.output, keeping: Set(manifest.shards.map(\.file)))
        // issue 9 (files): the fate of every file, from the catalog's accounting and each study's outcome.
        let accounting = FileAccounting.afterIngest(catalog, outcomes: reports.map {
            FileAccounting.StudyOutcome(studyID: $0.studyID, fused: $0.status == "fused", error: $0.error, problems: $0.problems)
        })
        let skippedPaths = Set(accounting.skipped.map(\.path))
        let nonFileProblems = catalog.problems.filter { !skippedPaths.contains($0.path) }
        let report = IngestReport(
            archive: catalog.root, mode: catalog.mode, pipeline: options.pipeline,
            summary: .init(studies: reports.count, fused: reports.filter { $0.status == "fused" }.count,
                           failed: reports.filter { $0.status != "fused" }.count, filesFound: accounting.filesFound,
                           filesUsed: accounting.filesUsed, filesSkipped: accounting.filesSkipped,
                           filesIgnored: accounting.filesIgnored, samples: manifest.samples, shards: manifest.shards.count),
            studies: reports, files: accounting.skipped + nonFileProblems + tables.problems,
            ignoredSeries: accounting.ignoredSeries, ignoredFiles: accounting.ignoredFiles)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try AtomicFile.write(try enc.encode(report), to: options.output.appendingPathComponent(reportName))
        return report
    }
}

/// The output folder holds a finished earlier run and `--overwrite` was not given.
public struct IngestOutputInUse: Error, CustomStringConvertible {
    /// The output folder that was refused.
    public var path: String
    /// Names the folder and how to proceed (--overwrite or another --out).
    public var description: String {
        "\(path): already holds shards of an earlier run (manifest.json); pass --overwrite to replace them, or choose another --out"
    }
}

extension IngestRunner {
    /// Refuses a folder with a finished earlier run (its manifest) unless overwriting; when overwriting,
    /// takes the old manifest away first, so that a run killed midway never leaves a manifest describing
    /// other shards.
    static func claimOutput(_ options: IngestOptions) throws {
        // Shards without a manifest are the remains of a run killed before it finished: replaced freely.
        let fm = FileManager.default
        let manifest = options.output.appendingPathComponent(Manifest.fileName)
        guard fm.fileExists(atPath: manifest.path) else { return }
        guard options.overwrite else { throw IngestOutputInUse(path: options.output.path) }
        try fm.removeItem(at: manifest)
    }

    /// Shards of an earlier run into the same folder that the new manifest no longer lists would make
    /// the folder inconsistent; they are removed once the new manifest is in place.
    static func removeUnlistedShards(in directory: URL, keeping listed: Set<String>) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        for name in names where name.hasPrefix("shard-") && name.hasSuffix(".h5") && !listed.contains(name) {
            try FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }
}

/// One function from a study's inputs to its fused sample: decode the three series, fuse them.
public enum StudyFusion {
    /// Decodes and fuses one study. Never throws: a failure is a report with status "failed".
    public static func fuse(study: CatalogStudy, root: String, labels: [Int8], coordinates: [LabelCoordinate],
                            fuser: Fuser) -> (FusedSample?, StudyReport) {
        let id = sampleID(study)
        // issue 9 (files): every Axial T2 series and one series of each sagittal kind, chosen by the catalog.
        let (volumes, channels, problems) = SeriesLoader.loadStudy(study, root: root)
        do {
            let (sample, record) = try fuser.fuse(series: volumes, labels: labels, coordinates: coordinates, studyID: id)
            return (sample, StudyReport(studyID: study.studyID, sampleID: id, status: "fused", channels: channels,
                                        error: nil, problems: problems, fusion: record))
        } catch {
            return (nil, StudyReport(studyID: study.studyID, sampleID: id, status: "failed", channels: channels,
                                     error: "\(error)", problems: problems, fusion: nil))
        }
    }

    /// The study id stored in shards: the RSNA numeric id, else a stable 62-bit hash of the Study Instance UID.
    public static func sampleID(_ study: CatalogStudy) -> Int64 {
        if let n = Int64(study.studyID), n >= 0 { return n }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in study.studyInstanceUID.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int64(h & 0x3FFF_FFFF_FFFF_FFFF)
    }
}
