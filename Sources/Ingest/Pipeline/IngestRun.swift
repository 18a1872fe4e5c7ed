import Core
import Foundation
import Shards

/// What `fuse3d ingest` is asked to do: the archive, where the shards go, the pipeline's parameters,
/// the cache and the part of the archive.
public struct IngestOptions: Sendable {
    /// Archive root (RSNA layout or any DICOM tree).
    public var archive: String
    /// Output folder for shards, manifest.json and ingest-report.json.
    public var output: URL
    /// The pipeline's configuration (fusion and shard parameters).
    public var pipeline: PipelineConfig
    /// Studies decoded, fused and compressed at once (each holds one study's pixels and grid in memory).
    public var workers: Int
    /// The study cache's folder; nil: `output/.cache`.
    public var cacheDirectory: URL?
    /// Recompute every study instead of reusing cached ones (the cache entries are refreshed).
    public var recompute: Bool
    /// Only this part of the studies; nil: all of them.
    public var partition: Partition?
    /// Where decoders run: in this process, or in supervised worker processes (the CLI's choice; issue 32).
    public var isolation: DecoderIsolation = .none

    /// Defaults: the default pipeline, 2 workers (at least 1 is used), the cache in `output/.cache`, all studies.
    public init(archive: String, output: URL, pipeline: PipelineConfig = PipelineConfig(), workers: Int = 2,
                cacheDirectory: URL? = nil, recompute: Bool = false, partition: Partition? = nil) {
        self.archive = archive
        self.output = output
        self.pipeline = pipeline
        self.workers = max(1, workers)
        self.cacheDirectory = cacheDirectory
        self.recompute = recompute
        self.partition = partition
    }

    /// The cache folder in force.
    public var cache: StudyCache {
        StudyCache(directory: cacheDirectory ?? output.appendingPathComponent(IngestRunner.defaultCacheName))
    }
}

/// Per study: what was fused from which series, or why not.
public struct StudyReport: Codable, Sendable {
    /// The archive's study id (RSNA folder name or Study Instance UID).
    public var studyID: String
    /// The id stored in the shards (`study_id`).
    public var sampleID: Int64
    /// Fused into a sample, or failed (see `error`).
    public var status: StudyStatus
    /// Per channel name: the series fused into it, or "missing".
    public var channels: [String: String]
    /// Why the study failed, if it did.
    public var error: String?
    /// How the catalog's grouping rule met the study's files (`CatalogStudy.notes`): several Study Instance
    /// UIDs in one RSNA study folder, one UID under several folders.
    public var notes: [String]
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
        /// Label coordinates of fused studies that placed no keypoint (each named with its reason in its
        /// study's `fusion.unresolvedCoordinates`).
        public var unresolvedCoordinates: Int
        /// Problems of the RSNA tables (the label CSVs and the series descriptions), each in `files` with its file,
        /// line and column.
        public var labelProblems: Int
        /// Studies of this run that those problems cost their labels or some keypoints (listed in `labelsLost`).
        public var studiesLosingLabels: Int
    }

    /// A study that the label CSVs' problems cost its labels or some of its keypoints, and the first reason.
    public struct LabelLoss: Codable, Sendable, Equatable {
        /// The archive's study id.
        public var studyID: String
        /// Why, in words (the problems themselves are in `files`).
        public var reason: String
    }

    /// Above this share of the run's studies losing labels or keypoints to the label CSVs' problems, `ingest` says so
    /// in one line and exits non-zero (unless `--allow-unlabelled`): a 20-study run tolerates one such study, not two.
    public static let labelLossShare = 0.05
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
    /// The part of the archive this run fused; nil: all of it.
    public var partition: Partition?
    /// Every series not fused, with its kind, file count and reason.
    public var ignoredSeries: [IgnoredSeries]
    /// Files ignored one by one (duplicates, tables not read, studies of another partition).
    public var ignoredFiles: [CatalogProblem]
    /// The label CSVs found at the archive root (train.csv, train_label_coordinates.csv); empty: an unlabelled ingest.
    public var labelTables: [String]
    /// Studies of this run that the label CSVs' problems cost their labels or some keypoints, in study order.
    public var labelsLost: [LabelLoss]

    /// The one line `ingest` prints (and exits non-zero with, unless `--allow-unlabelled`) when more than
    /// `labelLossShare` of the run's studies lost labels or keypoints to the label CSVs; nil otherwise.
    public var labelLossLine: String? {
        guard summary.studies > 0, Double(labelsLost.count) > Self.labelLossShare * Double(summary.studies) else { return nil }
        let first = labelsLost[0]
        return "\(labelsLost.count) of \(summary.studies) studies (\(Int((100 * Double(labelsLost.count) / Double(summary.studies)).rounded())) %) "
            + "lost labels or keypoints to problems in the label CSVs (first: study \(first.studyID): \(first.reason)); "
            + "each problem is named with its file, line and column in ingest-report.json (files)"
    }

    /// What a person reads first (the top of ingest-report.json): the run in a few lines, the first of each kind of
    /// problem named (the lists below hold all of them).
    public var headline: [String] {
        var lines = ["\(summary.fused) of \(summary.studies) studies fused into \(summary.samples) samples in \(summary.shards) shard(s); "
            + "\(summary.failed) failed",
                     "\(summary.filesFound) files found: \(summary.filesUsed) used, \(summary.filesSkipped) skipped, \(summary.filesIgnored) ignored "
            + "(\(ignoredSeries.count) series left out: ignoredSeries)"]
        if let first = studies.first(where: { $0.status != .fused }) {
            lines.append("\(summary.failed) stud\(summary.failed == 1 ? "y" : "ies") failed; first: \(first.studyID): \(first.error ?? "")")
        }
        if let first = files.first {
            lines.append("\(files.count) problem(s) in files, series and tables; first: \(first.path): \(first.reason)")
        }
        if summary.unresolvedCoordinates > 0, let study = studies.first(where: { !($0.fusion?.unresolvedCoordinates.isEmpty ?? true) }),
           let first = study.fusion?.unresolvedCoordinates.first {
            lines.append("\(summary.unresolvedCoordinates) label coordinate(s) unresolved; first: study \(study.studyID): \(first.reason)")
        }
        if let loss = labelLossLine { lines.append(loss) }
        return lines
    }

    /// The closing summary line of an ingest run.
    public var summaryLine: String {
        "\(summary.fused) of \(summary.studies) studies fused into \(summary.samples) samples in \(summary.shards) shard(s); "
            + "\(summary.failed) failed; \(summary.filesFound) files found: \(summary.filesUsed) used, "
            + "\(summary.filesSkipped) skipped, \(summary.filesIgnored) ignored; "
            + "\(summary.unresolvedCoordinates) label coordinate(s) unresolved; \(summary.labelProblems) label CSV problem(s)"
            + (summary.studiesLosingLabels > 0 ? " costing \(summary.studiesLosingLabels) stud\(summary.studiesLosingLabels == 1 ? "y" : "ies") labels or keypoints" : "")
            + " (see ingest-report.json)"
    }
}

/// How a run went, beyond what the report records (the report's bytes do not depend on the cache,
/// the number of workers or the machine; these do).
public struct IngestStatistics: Sendable {
    /// Studies taken whole from the cache.
    public var cached = 0
    /// Studies decoded and fused in this run.
    public var computed = 0
    /// Cache entries found corrupt or stale (their studies were recomputed).
    public var invalidated = 0
    /// Cache entries that could not be written (their studies are in the shards all the same).
    public var cacheWriteFailures = 0
    /// Files whose DICOM header the scan read (parsed).
    public var headersRead = 0
    /// Files whose header came from the header index (`OUT/.headers.index`): stat unchanged since it was read.
    public var headersFromIndex = 0
    /// False when the header index could not be written (the next run reads every header again).
    public var headerIndexWritten = false
    /// True when the published dataset was left as it is: every study from the cache under the keys it was
    /// written from, its files untouched (see `UnchangedDataset`).
    public var datasetKept = false
    /// Wall-clock seconds of the whole run, scan included.
    public var seconds = 0.0
    /// Peak resident memory of the process, bytes.
    public var peakRSSBytes = 0
    /// Cache entries no dataset of this folder uses, removed after the run (see `StudyCache.prune`); nil: not pruned.
    public var pruned: StudyCache.PruneResult?
}

/// A run's report and statistics.
public struct IngestOutcome: Sendable {
    /// What was written to ingest-report.json.
    public var report: IngestReport
    /// Cache hits, time, memory.
    public var statistics: IngestStatistics
}

/// Where an ingest stands, for a progress line.
public struct IngestProgress: Sendable {
    /// Studies written (in catalog order).
    public var done: Int
    /// Studies in this run (this partition's).
    public var total: Int
    /// Of `done`, studies from the cache.
    public var cached: Int
    /// Of `done`, studies that failed.
    public var failed: Int
    /// Files skipped so far (scan problems plus decoding problems of the studies done).
    public var problems: Int
}

/// The ingest: scan → (decode → fuse → normalize → compress, in `workers` threads, or the cache) →
/// write in catalog order. Memory is bounded by the workers and the reorder window, not the cohort.
public enum IngestRunner {
    /// Name of the per-run report written beside the shards.
    public static let reportName = "ingest-report.json"
    /// The cache's folder inside the output folder unless `--cache` says otherwise.
    public static let defaultCacheName = ".cache"

    /// Runs the whole ingest. `scanProgress(done, total)` reports the header scan's files,
    /// `progress` each study written.
    public static func run(_ options: IngestOptions, scanProgress: (@Sendable (Int, Int) -> Void)? = nil,
                           progress: ((IngestProgress) -> Void)? = nil) throws -> IngestOutcome {
        let start = Date()
        var statistics = IngestStatistics()
        let indexURL = options.output.appendingPathComponent(HeaderIndex.fileName)
        let root = (options.archive as NSString).standardizingPath
        try FileManager.default.createDirectory(at: options.output, withIntermediateDirectories: true)
        let lock = try OutputLock(directory: options.output)
        defer { withExtendedLifetime(lock) {} }
        // The index is written as the scan reads, not with the dataset: the headers hold whatever becomes of this run (a
        // killed run's next scan reuses them). Not written, the next run reads the headers again: slower, never wrong.
        // An index that would hold the same entries as the file already there is not written again. The earlier index
        // is held for the scan only.
        let index = try? HeaderIndex.FileWriter(url: indexURL, root: root, scannedAt: FileIdentity.now())
        // One pool of decode workers for the header scan and the studies (nil: everything in this process).
        let pool = DecoderPool(options.isolation)
        // The catalog's studies wait on disk (an unnamed file in the output folder) until a worker takes them: the
        // per-file state of an RSNA-size archive is not held for the run (issue 27).
        let spill = try StudySpill(directory: options.output)
        let (catalog, spilled, headers) = try CatalogScanner.scan(root: root, reusing: options.recompute ? nil : HeaderIndex.load(from: indexURL, root: root),
                                                                  index: index, pool: pool, spill: spill, progress: scanProgress)
        if headers.sameAsEarlier {
            index?.discard()
            statistics.headerIndexWritten = true
        } else {
            statistics.headerIndexWritten = headers.indexWritten && index != nil && (try? index!.commit()) != nil
        }
        HeapTrim.returnFreePages()
        let tables = try RSNATables.load(root: catalog.root, catalog: catalog, studies: { visit in
            for entry in spilled { visit(try spill.load(entry)) }
        })
        let studies = spilled.filter { options.partition?.contains(studyID: $0.studyID) ?? true }
        // One cache value for the whole run: its stores' pending fsyncs and renames are the ones `finishWrites` waits for.
        let cache = options.cache
        cache.sweepAbandonedWrites()
        var writerOptions = options.pipeline.shardWriterOptions()
        writerOptions.keepUnchangedShards = true
        writerOptions.stageUntilPublished = true
        // Files whose decoder crashed in an earlier run of this folder are left out from the start (issue 32).
        let crashes = DecoderCrashes(output: options.output, root: catalog.root)
        let worker = StudyWorker(root: catalog.root, tables: tables, pipeline: options.pipeline,
                                 cache: cache, recompute: options.recompute, pool: pool, crashes: crashes)
        /// Study `i` read back from the spill, without the files known to crash its decoder.
        @Sendable func prepared(_ i: Int) throws -> PreparedStudy { try PreparedStudy(spill.load(studies[i]), crashes: crashes) }
        let problemFiles = Set(catalog.problems.map(\.path)).count
        // The fate of every file: the scan's, with each study's files as its outcome says (issue 27: tallied as the
        // outcomes arrive, not from a catalog held to the end).
        var accounting = FileAccounting.Tally(scan: catalog.accounting)
        // Entries still waiting for their fsync and rename are in place before this returns, whatever happens.
        defer { cache.finishWrites() }
        // The studies' keys come first only when the folder holds a dataset that may be kept (its state file is there):
        // the signature needs them all. Otherwise each worker makes its study's key when it takes the study, so a cold
        // run's first studies start without waiting for every study's key (issue 20).
        var upfrontKeys: [StudyCache.StudyKey]?
        var kept: (reports: [StudyReport], manifest: Manifest)?
        if !options.recompute && UnchangedDataset.hasState(in: options.output) {
            var studyKeys: [StudyCache.StudyKey] = []
            studyKeys.reserveCapacity(studies.count)
            try OrderedPipeline.run(count: studies.count, workers: options.workers, window: 4 * options.workers,
                                    work: { i in Result { worker.key(for: try prepared(i).study) } }) { _, key in studyKeys.append(try key.get()) }
            upfrontKeys = studyKeys
            let signature = UnchangedDataset.signature(keys: studyKeys.map(\.hex), options: writerOptions, partition: options.partition)
            kept = try keptDataset(options: options, writerOptions: writerOptions, signature: signature, count: studies.count,
                                   keys: studyKeys, root: catalog.root, problems: problemFiles, progress: progress)
            if let kept {
                // A study fused with every file leaves the scan's count as it is; only the others' files are named, so
                // only they are read back from the spill (no file list is held for the whole dataset).
                for (i, report) in kept.reports.enumerated() where report.status != .fused || !report.problems.isEmpty {
                    accounting.add(report, fusedFiles: try prepared(i).fusedFiles)
                }
            }
        }

        let report: IngestReport
        var keys: [String] = []
        if let kept {
            keys = upfrontKeys!.map(\.hex)
            try accounting.addStudiesNotInThisRun(spilled, spill: spill, inRun: Set(studies.map(\.studyID)))
            report = makeReport(catalog: catalog, tables: tables, options: options, studies: kept.reports, manifest: kept.manifest,
                                accounting: accounting.finish())
            try writeReport(report, to: options.output, unlessSame: true)
            if (try? StudyCache.keys(usedBy: options.output)) != Set(keys) { try StudyCache.writeKeys(keys, to: options.output) }
            statistics.cached = studies.count
            statistics.datasetKept = true
        } else {
            let writer = try ShardWriter(directory: options.output, options: writerOptions)
            var reports: [StudyReport] = []
            var writtenBy: [Int64: StudySpill.Entry] = [:]
            var state = IngestProgress(done: 0, total: studies.count, cached: 0, failed: 0, problems: problemFiles)
            keys.reserveCapacity(studies.count)
            let given = upfrontKeys
            // A worker per core: each study's loops stay on its worker's thread until workers run out of studies
            // (see StudyParallelism).
            StudyParallelism.configure(workers: min(options.workers, studies.count))
            try OrderedPipeline.run(count: studies.count, workers: options.workers, window: 2 * options.workers,
                                    work: { i in
                                        Result { () throws -> (StudyWorker.Outcome, [String]) in
                                            let p = try prepared(i)
                                            return (worker.process(p.study, key: given?[i] ?? worker.key(for: p.study), leftOut: p.leftOut), p.fusedFiles)
                                        }
                                    },
                                    stopped: { StudyParallelism.workerFinished() }) { index, result in
                let (outcome, fusedFiles) = try result.get()
                keys.append(outcome.key)
                var report = outcome.report
                if let sample = outcome.sample {
                    do {
                        try writer.append(sample)
                        writtenBy[sample.studyID] = studies[index]
                    } catch ShardError.sample(_, let reason) {
                        report.status = .failed
                        report.error = refusal(reason, study: studies[index], sampleID: sample.studyID, earlier: writtenBy[sample.studyID])
                    }
                }
                accounting.add(report, fusedFiles: fusedFiles)
                reports.append(report)
                switch outcome.source {
                case .cache: statistics.cached += 1
                case .computed(let invalidated, let stored):
                    statistics.computed += 1
                    if invalidated { statistics.invalidated += 1 }
                    if !stored { statistics.cacheWriteFailures += 1 }
                }
                state.done += 1
                state.cached = statistics.cached
                if report.status != .fused { state.failed += 1 }
                state.problems += report.problems.count
                if state.done % 16 == 0 { HeapTrim.returnFreePages() }
                progress?(state)
            }
            let manifest = try writer.finish()
            // After the shard's close and hash, which overlap the last entries' fsyncs.
            statistics.cacheWriteFailures += cache.finishWrites()
            try accounting.addStudiesNotInThisRun(spilled, spill: spill, inRun: Set(studies.map(\.studyID)))
            report = makeReport(catalog: catalog, tables: tables, options: options, studies: reports, manifest: manifest,
                                accounting: accounting.finish())
            try writeReport(report, to: writer.stagingDirectory)
            try StudyCache.writeKeys(keys, to: writer.stagingDirectory)
            UnchangedDataset.forget(in: options.output)
            try writer.publish()
            // Not recorded, the next run is an ordinary one: slower, never wrong.
            let signature = UnchangedDataset.signature(keys: keys, options: writerOptions, partition: options.partition)
            try? UnchangedDataset.record(signature: signature, in: options.output)
        }
        if options.cacheDirectory == nil && options.partition == nil {
            statistics.pruned = cache.prune(keeping: Set(keys))
        }
        statistics.headersRead = headers.read
        statistics.headersFromIndex = headers.fromIndex
        statistics.seconds = Date().timeIntervalSince(start)
        statistics.peakRSSBytes = peakResidentBytes()
        return IngestOutcome(report: report, statistics: statistics)
    }

    /// The report of a finished run: every study's outcome, the fate of every file (the catalog's accounting
    /// and each study's outcome) and the counts.
    static func makeReport(catalog: Catalog, tables: RSNATables, options: IngestOptions, studies reports: [StudyReport],
                           manifest: Manifest, accounting: FileAccounting) -> IngestReport {
        let skippedPaths = Set(accounting.skipped.map(\.path))
        let nonFileProblems = catalog.problems.filter { !skippedPaths.contains($0.path) }
        let tableProblems = tables.problems(for: Set(reports.map(\.studyID)))
        let tableNames = CatalogScanner.metadataNames
        // A keypoint on an instance the scan did not find, in a study whose decode skipped a file, is the damaged file's
        // loss (named in `files`), not the CSVs': a header that reads with other values hides its instance number.
        let lost = reports.compactMap { r -> IngestReport.LabelLoss? in
            guard let reason = tables.lost[r.studyID], !(tables.lostToMissingImages.contains(r.studyID) && !r.problems.isEmpty) else { return nil }
            return IngestReport.LabelLoss(studyID: r.studyID, reason: reason)
        }
        return IngestReport(
            archive: catalog.root, mode: catalog.mode, pipeline: options.pipeline,
            summary: .init(studies: reports.count, fused: reports.filter { $0.status == .fused }.count,
                           failed: reports.filter { $0.status != .fused }.count, filesFound: accounting.filesFound,
                           filesUsed: accounting.filesUsed, filesSkipped: accounting.filesSkipped,
                           filesIgnored: accounting.filesIgnored, samples: manifest.samples, shards: manifest.shards.count,
                           unresolvedCoordinates: reports.reduce(0) { $0 + ($1.fusion?.unresolvedCoordinates.count ?? 0) },
                           labelProblems: (nonFileProblems + tableProblems).filter { tableNames.contains($0.path) }.count,
                           studiesLosingLabels: lost.count),
            studies: reports, files: accounting.skipped + nonFileProblems + tableProblems, partition: options.partition,
            ignoredSeries: accounting.ignoredSeries, ignoredFiles: accounting.ignoredFiles,
            labelTables: tables.tablesFound, labelsLost: lost)
    }

    /// Writes ingest-report.json atomically, piece by piece (`encodeReport`), so that a large run's report is never
    /// whole in memory. `unlessSame`: a file already holding these bytes is left as it is.
    static func writeReport(_ report: IngestReport, to directory: URL, unlessSame: Bool = false) throws {
        let url = directory.appendingPathComponent(reportName)
        let partial = AtomicFile.partial(for: url)
        guard FileManager.default.createFile(atPath: partial.path, contents: nil), let handle = FileHandle(forWritingAtPath: partial.path) else {
            throw ShardError.io(path: partial.path, "cannot write the ingest report")
        }
        do {
            try encodeReport(report) { try handle.write(contentsOf: Data($0.utf8)) }
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(at: partial)
            throw error
        }
        if unlessSame, sameBytes(partial, url) {
            try? FileManager.default.removeItem(at: partial)
            return
        }
        try AtomicFile.commit(partial, to: url)
    }

    /// True when the files at `a` and `b` both exist and hold the same bytes (read in blocks).
    private static func sameBytes(_ a: URL, _ b: URL) -> Bool {
        guard let x = FileHandle(forReadingAtPath: a.path), let y = FileHandle(forReadingAtPath: b.path) else { return false }
        defer { try? x.close(); try? y.close() }
        while true {
            let p = (try? x.read(upToCount: 1 << 20)) ?? nil, q = (try? y.read(upToCount: 1 << 20)) ?? nil
            guard p == q else { return false }
            if p?.isEmpty ?? true { return true }
        }
    }

    /// ingest-report.json's text, handed to `emit` in pieces: `headline` and `summary` first (what a person reads
    /// first), then the other keys in sorted order; pretty-printed, keys sorted inside each value, paths greppable (no
    /// escaped slashes). The long lists (studies, files) are encoded one element at a time, so that the encoder holds
    /// one study's tree, not the run's.
    static func encodeReport(_ report: IngestReport, emit: (String) throws -> Void) throws {
        try withoutActuallyEscaping(emit) { emit in try encodeReport(report, escapingEmit: emit) }
    }

    private static func encodeReport(_ report: IngestReport, escapingEmit emit: @escaping (String) throws -> Void) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        func json<T: Encodable>(_ value: T, indent: Int) throws -> String {
            String(decoding: try enc.encode(value), as: UTF8.self).replacingOccurrences(of: "\n", with: "\n" + String(repeating: " ", count: indent))
        }
        /// A key's value, written when its turn comes.
        struct Field {
            var key: String
            var write: () throws -> Void
        }
        func value<T: Encodable>(_ key: String, _ v: T) -> Field { Field(key: key) { try emit(try json(v, indent: 2)) } }
        func list<T: Encodable>(_ key: String, _ items: [T]) -> Field {
            Field(key: key) {
                guard !items.isEmpty else { return try emit("[]") }
                for (i, item) in items.enumerated() { try emit((i == 0 ? "[\n    " : ",\n    ") + (try json(item, indent: 4))) }
                try emit("\n  ]")
            }
        }
        var rest = [value("archive", report.archive), list("files", report.files), list("ignoredFiles", report.ignoredFiles),
                    list("ignoredSeries", report.ignoredSeries), value("labelTables", report.labelTables),
                    list("labelsLost", report.labelsLost), value("mode", report.mode), value("pipeline", report.pipeline),
                    list("studies", report.studies)]
        if let partition = report.partition { rest.append(value("partition", partition)) }
        let fields = [value("headline", report.headline), value("summary", report.summary)] + rest.sorted { $0.key < $1.key }
        for (i, field) in fields.enumerated() {
            try emit((i == 0 ? "{\n" : ",\n") + "  \"\(field.key)\" : ")
            try field.write()
        }
        try emit("\n}\n")
    }

    /// The reports of a dataset left as it is (`UnchangedDataset`): every study a cache hit read from its entry's
    /// header, the published manifest. nil: an ordinary run is needed (nothing was written).
    static func keptDataset(options: IngestOptions, writerOptions: ShardWriterOptions, signature: String, count: Int,
                            keys: [StudyCache.StudyKey], root: String, problems: Int,
                            progress: ((IngestProgress) -> Void)?) throws -> (reports: [StudyReport], manifest: Manifest)? {
        guard let manifest = UnchangedDataset.manifest(in: options.output, signature: signature, options: writerOptions) else { return nil }
        let cache = options.cache
        var found: [StudyCache.CachedReport?] = []
        found.reserveCapacity(count)
        try OrderedPipeline.run(count: count, workers: options.workers, window: 4 * options.workers,
                                work: { cache.loadReport(keys[$0], root: root) }) { _, entry in found.append(entry) }
        let entries = found.compactMap { $0 }
        guard entries.count == count,
              entries.compactMap(\.sampleID) == manifest.shards.flatMap(\.studies),
              entries.allSatisfy({ ($0.report.status == .fused) == ($0.sampleID != nil) }) else { return nil }
        var state = IngestProgress(done: 0, total: count, cached: 0, failed: 0, problems: problems)
        for entry in entries {
            state.done += 1
            state.cached += 1
            if entry.report.status != .fused { state.failed += 1 }
            state.problems += entry.report.problems.count
            progress?(state)
        }
        return (entries.map(\.report), manifest)
    }

    /// Peak resident memory of this process (Linux reports kilobytes).
    static func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Int(usage.ru_maxrss) * 1024
    }
}

extension IngestRunner {
    /// Why the writer refused `study`'s sample, for its report: the writer's reason, and for a repeated
    /// sample id which catalog study was written under it first (both Study Instance UIDs, as two studies
    /// of one RSNA folder share its id).
    static func refusal(_ reason: String, study: StudySpill.Entry, sampleID: Int64, earlier: StudySpill.Entry?) -> String {
        guard let earlier else { return "not written to the shards: \(reason)" }
        return "not written to the shards: its sample id \(sampleID) (Study Instance UID \(study.studyInstanceUID)) is "
            + "already taken by study \(earlier.studyID) (Study Instance UID \(earlier.studyInstanceUID)), written earlier in this run"
    }
}

extension FileAccounting.Tally {
    /// A study this run processed, as its report says.
    mutating func add(_ report: StudyReport, fusedFiles: [String]) {
        add(studyID: report.studyID, fusedFiles: fusedFiles, outcome: FileAccounting.StudyOutcome(
            studyID: report.studyID, fused: report.status == .fused, error: report.error, problems: report.problems))
    }

    /// The spilled studies not in `inRun` (another partition's): their files are ignored, by name.
    mutating func addStudiesNotInThisRun(_ spilled: [StudySpill.Entry], spill: StudySpill, inRun: Set<String>) throws {
        for entry in spilled where !inRun.contains(entry.studyID) {
            let study = try spill.load(entry)
            add(studyID: study.studyID, fusedFiles: study.fusedFiles, outcome: nil)
        }
    }
}

/// A study read back from the spill for a worker: without the files known to crash their decoder (and the problems
/// that name them), and the files of its fused series as the scan listed them (the file accounting's, crashed ones
/// included: they are skipped by name).
struct PreparedStudy: Sendable {
    var study: CatalogStudy
    var leftOut: [CatalogProblem]
    var fusedFiles: [String]

    init(_ study: CatalogStudy, crashes: DecoderCrashes) {
        fusedFiles = study.fusedFiles
        (self.study, leftOut) = crashes.leavingOut(study)
    }
}

/// One ingest at a time per output folder: an exclusive `flock` on `OUT/.ingest.lock`, which the kernel
/// releases when the process ends however it ends (kill -9 included), so a lock is never stale.
final class OutputLock {
    private let fd: Int32

    /// Takes the lock or throws, naming the folder, when another process holds it.
    init(directory: URL) throws {
        let path = directory.appendingPathComponent(".ingest.lock").path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ShardError.io(path: path, "cannot open the output folder's lock file") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ShardError.io(path: directory.path, "another fuse3d ingest is writing to this folder; wait for it or choose another --out")
        }
    }

    deinit { close(fd) }
}

/// What a worker does with one study: the cache's entry when it is whole and its files unchanged,
/// else decode → fuse → normalize → compress, and store the result in the cache.
struct StudyWorker: Sendable {
    /// Where a study's result came from.
    enum Source {
        case cache
        /// Fused in this run; `invalidated`: a corrupt or stale entry was replaced; `stored`: the entry was written.
        case computed(invalidated: Bool, stored: Bool)
    }

    /// One study's result, ready for the writer.
    struct Outcome {
        /// The study's cache key (hex), whether or not its entry was used or stored.
        var key: String
        var report: StudyReport
        var sample: EncodedSample?
        var source: Source
    }

    let root: String
    let tables: RSNATables
    let pipeline: PipelineConfig
    let cache: StudyCache
    let recompute: Bool
    /// The decode workers; nil: decode and fuse in this process.
    var pool: DecoderPool? = nil
    /// The files whose decoder crashed, in earlier runs and this one.
    var crashes: DecoderCrashes? = nil
    /// Files a study may lose to crashing decoders before it is given up.
    static let maxCrashedFiles = 3

    /// The cache key of `study` (stats its files).
    func key(for study: CatalogStudy) -> StudyCache.StudyKey {
        StudyCache.key(study: study, root: root, sampleID: StudyFusion.sampleID(study), labels: tables.labels(for: study.studyID),
                       coordinates: tables.coordinates[study.studyID] ?? [], fusion: pipeline.fusion, zstdLevel: pipeline.zstdLevel)
    }

    /// `leftOut`: the files of the study (already removed from `study`) that crashed their decoder in an earlier run.
    func process(_ study: CatalogStudy, key: StudyCache.StudyKey, leftOut: [CatalogProblem] = []) -> Outcome {
        let labels = tables.labels(for: study.studyID)
        let coordinates = tables.coordinates[study.studyID] ?? []
        var invalidated = false
        if !recompute {
            switch cache.load(key, root: root) {
            case .hit(let entry): return Outcome(key: key.hex, report: entry.report, sample: entry.sample, source: .cache)
            case .miss: break
            case .corrupt, .stale: invalidated = true
            }
        }
        var (study, key, leftOut) = (study, key, leftOut)
        var result: StudyCache.CachedStudy
        if let pool {
            // A file whose decoder dies or hangs is left out and the study tried again without it, up to a few files;
            // the key then names the study without them, which is what the next run (leaving them out) looks up.
            while true {
                let request = WorkerRequest(study: study, root: root, labels: labels, coordinates: coordinates,
                                            fusion: pipeline.fusion, zstdLevel: pipeline.zstdLevel, serial: StudyParallelism.isSerial)
                switch pool.fuse(request) {
                case .done(let cached):
                    result = cached
                case .crashed(let file?, let how) where leftOut.count < Self.maxCrashedFiles:
                    crashes?.remember(file, how: how)
                    leftOut.append(CatalogProblem(path: file, reason: DecoderCrashes.reason(how)))
                    study = study.leavingOut([file])
                    key = self.key(for: study)
                    continue
                case .crashed(let file, let how):
                    let problems = file.map { [CatalogProblem(path: $0, reason: DecoderCrashes.reason(how))] } ?? []
                    if let file { crashes?.remember(file, how: how) }
                    result = .init(report: StudyReport(studyID: study.studyID, sampleID: StudyFusion.sampleID(study), status: .failed,
                                                       channels: [:], error: file == nil ? how : "\(how) on \(file!)",
                                                       notes: study.notes, problems: problems, fusion: nil), sample: nil)
                }
                break
            }
        } else {
            let fused = StudyFusion.fuse(study: study, root: root, labels: labels, coordinates: coordinates,
                                         fuser: Fuser(parameters: pipeline.fusion))
            result = .init(report: fused.1, sample: nil)
            if let sample = fused.0 {
                do { result.sample = try EncodedSample(encoding: sample, zstdLevel: pipeline.zstdLevel) } catch {
                    result.report.status = .failed
                    result.report.error = "\(error)"
                }
            }
        }
        result.report.problems = leftOut + result.report.problems
        let stored = (try? cache.store(key, root: root, study: result)) != nil
        return Outcome(key: key.hex, report: result.report, sample: result.sample,
                       source: .computed(invalidated: invalidated, stored: stored))
    }
}

/// One function from a study's inputs to its fused sample: decode the three series, fuse them.
public enum StudyFusion {
    /// Decodes and fuses one study. Never throws: a failure is a report with status `.failed`.
    /// `willDecode` hears each file before its decode, `willFuse` the start of the fusion (a decode worker's supervisor).
    public static func fuse(study: CatalogStudy, root: String, labels: [Int8], coordinates: [LabelCoordinate],
                            fuser: Fuser, willDecode: ((String) -> Void)? = nil,
                            willFuse: (() -> Void)? = nil) -> (FusedSample?, StudyReport) {
        let id = sampleID(study)
        // issue 9 (files): every Axial T2 series and one series of each sagittal kind, chosen by the catalog.
        let (volumes, channels, problems) = SeriesLoader.loadStudy(study, root: root, willDecode: willDecode)
        willFuse?()
        do {
            let (sample, record) = try fuser.fuse(series: volumes, labels: labels, coordinates: coordinates, studyID: id)
            return (sample, StudyReport(studyID: study.studyID, sampleID: id, status: .fused, channels: channels,
                                        error: nil, notes: study.notes, problems: problems, fusion: record))
        } catch {
            return (nil, StudyReport(studyID: study.studyID, sampleID: id, status: .failed, channels: channels,
                                     error: "\(error)", notes: study.notes, problems: problems, fusion: nil))
        }
    }

    /// The study id stored in shards: the RSNA numeric id, else a stable 62-bit hash of the Study Instance UID.
    public static func sampleID(_ study: CatalogStudy) -> Int64 {
        if let n = Int64(study.studyID), n >= 0 { return n }
        return Int64(StableHash.fnv1a64(study.studyInstanceUID) & 0x3FFF_FFFF_FFFF_FFFF)
    }
}
