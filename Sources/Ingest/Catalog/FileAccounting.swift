import Foundation

/// A series found in a study but not fused, and why.
public struct IgnoredSeries: Codable, Sendable, Equatable {
    /// The study it belongs to (catalog study id).
    public var studyID: String
    /// The series id (RSNA folder name or Series Instance UID).
    public var seriesID: String
    /// What the series was classified as.
    public var kind: SeriesKind
    /// Files of the series, all of them ignored with it.
    public var files: Int
    /// Why it is not fused: localizer, derived, other kind, too few slices, another series chosen.
    public var reason: String
}

/// The fate of every regular file under an archive: used, skipped (a problem, listed with its
/// reason) or ignored (a file of an ignored series, a duplicate, a table fuse3d does not read), so
/// that `filesFound == filesUsed + filesSkipped + filesIgnored` always holds.
public struct FileAccounting: Codable, Sendable, Equatable {
    /// Every regular file under the archive root (RSNA tables included).
    public var filesFound: Int
    /// Files read into a fused sample (or, after a scan, due to be), and the RSNA tables read.
    public var filesUsed: Int
    /// Files that could not be used because something is wrong with them; each is in `skipped`.
    public var filesSkipped: Int
    /// Files left out on purpose; each is in an `ignoredSeries` entry or in `ignoredFiles`.
    public var filesIgnored: Int
    /// Every skipped file and why, sorted by path.
    public var skipped: [CatalogProblem]
    /// Every series not fused, with its kind, file count and reason.
    public var ignoredSeries: [IgnoredSeries]
    /// Files ignored one by one (duplicates, tables fuse3d does not read), sorted by path.
    public var ignoredFiles: [CatalogProblem]

    /// True when every file found has exactly one fate.
    public var isComplete: Bool { filesFound == filesUsed + filesSkipped + filesIgnored }

    /// The counts in one line, e.g. "120 files found: 110 used, 4 skipped, 6 ignored".
    public var summaryLine: String {
        "\(filesFound) files found: \(filesUsed) used, \(filesSkipped) skipped, \(filesIgnored) ignored"
    }

    /// What one study's fusion did with its files: fused or not, why not, and the files that failed to decode.
    public struct StudyOutcome: Sendable {
        /// The catalog study id.
        public var studyID: String
        /// True when the study became a sample.
        public var fused: Bool
        /// Why the study failed, when it did.
        public var error: String?
        /// Files of the study that could not be decoded (path relative to the archive, reason).
        public var problems: [CatalogProblem]

        /// One study's outcome as the ingest report records it.
        public init(studyID: String, fused: Bool, error: String?, problems: [CatalogProblem]) {
            self.studyID = studyID
            self.fused = fused
            self.error = error
            self.problems = problems
        }
    }

    /// The accounting after an ingest: the scan's fates, with each fused series' files used when they
    /// decoded and skipped (with the reason) when they did not; the files of a failed study are skipped
    /// with its error, and a study this run did not process (another partition) is ignored.
    public static func afterIngest(_ catalog: Catalog, outcomes: [StudyOutcome]) -> FileAccounting {
        let byStudy = Dictionary(outcomes.map { ($0.studyID, $0) }, uniquingKeysWith: { first, _ in first })
        var tally = Tally(scan: catalog.accounting)
        for study in catalog.studies {
            tally.add(studyID: study.studyID, fusedFiles: study.fusedFiles,
                      outcome: byStudy[study.studyID])
        }
        return tally.finish()
    }

    /// `afterIngest` study by study, as the outcomes arrive (an ingest holds no catalog of every file to the end).
    public struct Tally: Sendable {
        private var scan: FileAccounting
        private var skipped: [CatalogProblem]
        private var ignored: [CatalogProblem]
        private var used: Int

        /// Starts from the scan's fates (a study's fused files counted used until its outcome says otherwise).
        public init(scan: FileAccounting) {
            self.scan = scan
            skipped = scan.skipped
            ignored = scan.ignoredFiles
            used = scan.filesUsed
        }

        /// One study of the scan: the files of its fused series and its outcome (nil: not part of this run).
        public mutating func add(studyID: String, fusedFiles: [String], outcome: StudyOutcome?) {
            used -= fusedFiles.count
            guard let outcome else {
                ignored += fusedFiles.map { CatalogProblem(path: $0, reason: "study \(studyID) is not part of this run") }
                return
            }
            let failed = Dictionary(outcome.problems.map { ($0.path, $0.reason) }, uniquingKeysWith: { first, _ in first })
            for path in fusedFiles {
                if let reason = failed[path] {
                    skipped.append(CatalogProblem(path: path, reason: reason))
                } else if outcome.fused {
                    used += 1
                } else {
                    skipped.append(CatalogProblem(path: path, reason: "study \(studyID) failed: \(outcome.error ?? "unknown error")"))
                }
            }
        }

        /// The accounting of every study added: lists sorted by path, counts from them.
        public func finish() -> FileAccounting {
            var a = scan
            a.skipped = skipped.sorted { $0.path < $1.path }
            a.ignoredFiles = ignored.sorted { $0.path < $1.path }
            a.filesUsed = used
            a.filesSkipped = a.skipped.count
            a.filesIgnored = a.ignoredFiles.count + a.ignoredSeries.reduce(0) { $0 + $1.files }
            return a
        }
    }
}
