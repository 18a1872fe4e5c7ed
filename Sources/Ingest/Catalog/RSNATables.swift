import Core
import Foundation

/// The label tables of an RSNA-layout archive: `train.csv` and `train_label_coordinates.csv`, read by `CSVTable`.
///
/// Tolerant where it is harmless (see `CSVTable`; severities and coordinate words in any case, ids written as
/// "4003253.0" or with leading zeros); loud where labels would be lost. With the archive's catalog, each of these is
/// a named problem (file, line, column), and the studies it costs labels or keypoints are in `lost`:
/// - a table that cannot be read, or lacks a required column (every study loses what the table gives);
/// - a row refused by the reader (cells shifted), a study id that is not a whole number, a coordinate cell that
///   cannot be read (the row's study, when its id can be read, loses keypoints);
/// - a train.csv row for a study with no folder, a coordinate row for a study with no folder (nothing lost: no study);
/// - a study folder with no train.csv row (that study loses its labels);
/// - two train.csv rows for one study that disagree (neither is used: the study loses its labels);
/// - a coordinate row naming a series the study does not have, or an instance its series does not have (the study
///   loses that keypoint; the row still goes to the fusion, which lists it among the unresolved coordinates).
/// An unknown severity ("Normal-Mild") costs only its cell (−1), named; it is not counted as a lost study.
public struct RSNATables: Sendable {
    /// The label tables in the order they are read.
    public static let labelTableNames = ["train.csv", "train_label_coordinates.csv"]
    /// The required columns of train_label_coordinates.csv, in this order.
    public static let coordinateColumns = ["study_id", "series_id", "instance_number", "condition", "level", "x", "y"]

    /// Per study id (the study's folder name when read with a catalog): 25 classes (0, 1, 2; −1 empty) in
    /// `RSNA.labelColumns` order.
    public var labels: [String: [Int8]] = [:]
    /// Per study id (as `labels`): the label coordinate rows.
    public var coordinates: [String: [LabelCoordinate]] = [:]
    /// Problems met while reading the tables that concern no one study of the archive (file: reason).
    public var problems: [CatalogProblem] = []
    /// Problems that concern one study folder (with a catalog), by study id.
    public var studyProblems: [String: [CatalogProblem]] = [:]
    /// Studies (with a catalog) that the label tables' problems cost their labels or some keypoints, with the first reason.
    public var lost: [String: String] = [:]
    /// Of `lost`, the studies whose only loss is keypoints on an instance or series the scan did not find: a damaged
    /// image whose header read with other values can be why. Such a study is not counted as the CSVs' loss when its
    /// decode skipped a file (`IngestRunner.makeReport`).
    public var lostToMissingImages: Set<String> = []
    /// The label tables found at the archive root (`labelTableNames` order).
    public var tablesFound: [String] = []

    /// Empty tables: no labels, no coordinates, no problems.
    public init() {}

    /// Labels of a study, or all −1 when train.csv has no row for it.
    public func labels(for study: String) -> [Int8] { labels[study] ?? Array(repeating: -1, count: 25) }

    /// The problems of the tables that concern `studies` (nil: every study) or no study, by file and line.
    public func problems(for studies: Set<String>?) -> [CatalogProblem] {
        let chosen = studyProblems.filter { studies?.contains($0.key) ?? true }.values.joined()
        return (problems + chosen).sorted {
            let a = Self.labelTableNames.firstIndex(of: $0.path) ?? 9, b = Self.labelTableNames.firstIndex(of: $1.path) ?? 9
            return (a, $0.line ?? Int.max, $0.column ?? 0, $0.reason) < (b, $1.line ?? Int.max, $1.column ?? 0, $1.reason)
        }
    }

    /// "study/series" (canonical ids) of every series `root`'s train_label_coordinates.csv names; empty without the
    /// table. Its problems are not reported here: `load` reads the table again, with the catalog, and names them.
    static func seriesWithCoordinates(root: String) -> Set<String> {
        let path = root + "/train_label_coordinates.csv"
        guard FileManager.default.fileExists(atPath: path), let table = try? CSVTable.read(path, name: "train_label_coordinates.csv"),
              let c = table.columns(["study_id", "series_id"]) else { return [] }
        var named: Set<String> = []
        for record in table.records {
            if let study = RSNAID.canonical(record.cells[c[0]]), let series = RSNAID.canonical(record.cells[c[1]]) {
                named.insert("\(study)/\(series)")
            }
        }
        return named
    }

    /// Reads whichever of the two tables exist under `root`. With `catalog` (the archive's scan), ids are matched to
    /// the study folders (and series) it found and every study the tables fail is named (see the type's notes).
    public static func load(root: String, catalog: Catalog? = nil) -> RSNATables {
        load(root: root, catalog: catalog, studies: { visit in catalog?.studies.forEach(visit) })
    }

    /// `load(root:catalog:)` for a catalog whose studies are not held in it (the ingest's, spilled to disk):
    /// `studies` hands each of them to its argument in catalog order, one at a time.
    static func load(root: String, catalog: Catalog?, studies: ((CatalogStudy) -> Void) throws -> Void) rethrows -> RSNATables {
        var t = RSNATables()
        let reader = try TableReader(catalog: catalog, studies: studies)
        let train = root + "/train.csv"
        if FileManager.default.fileExists(atPath: train) {
            t.tablesFound.append("train.csv")
            reader.readTrain(train, into: &t)
        }
        let coords = root + "/train_label_coordinates.csv"
        if FileManager.default.fileExists(atPath: coords) {
            t.tablesFound.append("train_label_coordinates.csv")
            reader.readCoordinates(coords, into: &t)
        }
        return t
    }
}

/// What the tables are matched against: the catalog's study folders and their series' instance numbers.
private struct TableReader {
    let catalog: Catalog?
    /// Canonical id → study folder names (several when names differ only in leading zeros, "123" and "0123").
    var folders: [String: [String]] = [:]
    /// Study folder → canonical series id → (series folder name, instance numbers of its images).
    var series: [String: [String: (id: String, instances: Set<Int>)]] = [:]
    /// "study/series" (RSNA folders, the series id canonical) → files of that series folder the scan skipped as
    /// unreadable. A keypoint on an instance missing there may be on one of them: the image is damaged, not the CSV.
    var skippedFiles: [String: Int] = [:]
    /// The catalog's study ids, in catalog order.
    let studyIDs: [String]

    init(catalog: Catalog?, studies: ((CatalogStudy) -> Void) throws -> Void) rethrows {
        self.catalog = catalog
        for problem in catalog?.problems ?? [] {
            let parts = problem.path.split(separator: "/")
            guard parts.count >= 4, parts[0] == "train_images" else { continue }
            skippedFiles["\(parts[1])/\(RSNAID.folderKey(String(parts[2])))", default: 0] += 1
        }
        var ids: [String] = []
        var folders: [String: [String]] = [:]
        var series: [String: [String: (id: String, instances: Set<Int>)]] = [:]
        try studies { study in
            ids.append(study.studyID)
            folders[RSNAID.folderKey(study.studyID), default: []].append(study.studyID)
            var byID: [String: (id: String, instances: Set<Int>)] = [:]
            for s in study.series {
                byID[RSNAID.folderKey(s.seriesID)] = (s.seriesID, Set(s.stacks.flatMap { $0.images.compactMap(\.instanceNumber) }))
            }
            series[study.studyID] = byID
        }
        (studyIDs, self.folders, self.series) = (ids, folders, series)
    }

    /// Where a study's folder would be, for messages.
    func folderName(_ id: String) -> String {
        guard let catalog, catalog.mode == "rsna" else {
            return "no study has that id (without train_series_descriptions.csv studies are named by their Study Instance UID)"
        }
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: catalog.root + "/train_images/\(id)", isDirectory: &isFolder) && isFolder.boolValue
        return exists ? "no readable images in train_images/\(id)" : "no folder train_images/\(id)"
    }

    /// Every study of the catalog loses what `table` gives, for `reason`.
    func loseAll(_ reason: String, into t: inout RSNATables) {
        for id in studyIDs {
            t.lostToMissingImages.remove(id)
            if t.lost[id] == nil { t.lost[id] = reason }
        }
    }

    /// The study folders a row's id cell names: the folders of that id (with a catalog) or the canonical id (without);
    /// nil, named, when the cell is not a number or (with a catalog) no folder has that id.
    func studies(_ table: CSVTable, _ record: CSVTable.Record, column: Int, into t: inout RSNATables) -> [String]? {
        let cell = record.cells[column]
        guard let id = RSNAID.canonical(cell) else {
            t.problems.append(table.problem(record, column, "'\(cell)' is not a study id (a whole number); the row is not read"))
            return nil
        }
        guard catalog != nil else { return [id] }
        guard let found = folders[id] else {
            t.problems.append(table.problem(record, column, "study \(id): \(folderName(id)); the row is not used"))
            return nil
        }
        return found
    }

    func readTrain(_ path: String, into t: inout RSNATables) {
        let table: CSVTable
        do { table = try CSVTable.read(path, name: "train.csv") } catch {
            t.problems.append(CatalogProblem(path: "train.csv", reason: "\(error)"))
            loseAll("train.csv cannot be read", into: &t)
            return
        }
        t.problems += table.problems
        guard let sid = table.columns(["study_id"])?[0] else {
            t.problems.append(table.missing(["study_id"]))
            loseAll("train.csv has no study_id column", into: &t)
            return
        }
        let columns = RSNA.labelColumns.map { table.column($0) }
        let absent = zip(RSNA.labelColumns, columns).filter { $0.1 == nil }.map(\.0)
        if !absent.isEmpty {
            t.problems.append(CatalogProblem(path: "train.csv", reason: "line 1: cannot find the label column\(absent.count == 1 ? "" : "s") "
                + "\(absent.joined(separator: ", ")); every study loses \(absent.count == 1 ? "that label" : "those labels")", line: 1))
            loseAll("train.csv lacks label columns (\(absent.joined(separator: ", ")))", into: &t)
        }
        var firstLine: [String: Int] = [:]
        var disagreeing: Set<String> = []
        for record in table.records {
            guard let studies = studies(table, record, column: sid, into: &t) else { continue }
            var classes = [Int8](repeating: -1, count: 25)
            var unknown: [CatalogProblem] = []
            for (i, c) in columns.enumerated() {
                guard let c else { continue }
                let cell = record.cells[c]
                classes[i] = RSNA.severityClass(cell)
                if classes[i] < 0 && !cell.isEmpty {
                    unknown.append(table.problem(record, c, "unknown severity '\(cell)' (not \(RSNA.severities.joined(separator: ", "))); "
                        + "this label is left empty"))
                }
            }
            for (n, study) in studies.enumerated() {
                if let earlier = t.labels[study] {
                    if earlier != classes {
                        let first = firstLine[study]!
                        let column = zip(earlier, classes).enumerated().first { $0.element.0 != $0.element.1 }!.offset
                        t.studyProblems[study, default: []].append(table.problem(
                            record, "study \(study) has a row on line \(first) too, and they disagree (first in "
                                + "\(RSNA.labelColumns[column])); neither row is used"))
                        disagreeing.insert(study)
                    }
                    continue
                }
                if n == 0 { t.studyProblems[study, default: []] += unknown }
                t.labels[study] = classes
                firstLine[study] = record.line
            }
        }
        for study in disagreeing {
            t.labels[study] = nil
            t.lost[study] = t.lost[study] ?? "train.csv has rows for it that disagree"
            t.lostToMissingImages.remove(study)
        }
        guard let catalog else { return }
        for study in studyIDs where t.labels[study] == nil && !disagreeing.contains(study) {
            let refusedRow = table.refused.first { sid < $0.cells.count && RSNAID.canonical($0.cells[sid]).flatMap { folders[$0] }?.contains(study) == true }
            t.studyProblems[study, default: []].append(CatalogProblem(
                path: "train.csv", reason: refusedRow.map { "study \(study): its row (line \($0.line)) could not be read; no labels" }
                    ?? "study \(study) (\(catalog.mode == "rsna" ? "train_images/\(study)" : "a study of the archive")) has no row; no labels"))
            t.lost[study] = t.lost[study] ?? "no usable train.csv row"
            t.lostToMissingImages.remove(study)
        }
    }

    func readCoordinates(_ path: String, into t: inout RSNATables) {
        let name = "train_label_coordinates.csv"
        let table: CSVTable
        do { table = try CSVTable.read(path, name: name) } catch {
            t.problems.append(CatalogProblem(path: name, reason: "\(error)"))
            loseAll("\(name) cannot be read", into: &t)
            return
        }
        t.problems += table.problems
        guard let i = table.columns(RSNATables.coordinateColumns) else {
            t.problems.append(table.missing(RSNATables.coordinateColumns))
            loseAll("\(name) lacks required columns", into: &t)
            return
        }
        for record in table.refused where i[0] < record.cells.count {
            for folder in RSNAID.canonical(record.cells[i[0]]).flatMap({ folders[$0] }) ?? [] {
                t.lostToMissingImages.remove(folder)
                guard t.lost[folder] == nil else { continue }
                t.lost[folder] = "a \(name) row that could not be read (line \(record.line))"
            }
        }
        // Optional: the frame of a multi-frame file (1-based); empty for single-frame files.
        let frameColumn = table.column(LabelCoordinate.frameColumn)
        // A table has a few distinct (condition, level) pairs in many rows: each is mapped once.
        var labelOf: [String: Int?] = [:]
        for record in table.records {
            let row = record.cells
            guard let studies = studies(table, record, column: i[0], into: &t) else { continue }
            var bad: [CatalogProblem] = []
            let seriesCell = row[i[1]]
            let seriesID = RSNAID.canonical(seriesCell)
            if seriesID == nil { bad.append(table.problem(record, i[1], "'\(seriesCell)' is not a series id (a whole number)")) }
            let instance = Int(row[i[2]])
            if instance == nil { bad.append(table.problem(record, i[2], "'\(row[i[2]])' is not an instance number (a whole number)")) }
            let pair = row[i[3]] + "\u{0}" + row[i[4]]
            let mapped = labelOf[pair] ?? {
                let index = LabelCoordinate.labelIndex(condition: row[i[3]], level: row[i[4]])
                labelOf[pair] = index
                return index
            }()
            if mapped == nil {
                let conditionKnown = RSNA.conditionTitles.contains { $0.lowercased() == row[i[3]].lowercased() }
                bad.append(table.problem(record, conditionKnown ? i[4] : i[3], conditionKnown
                    ? "unknown level '\(row[i[4]])' (not \(RSNA.levelTitles.joined(separator: ", ")))"
                    : "unknown condition '\(row[i[3]])' (not \(RSNA.conditionTitles.joined(separator: ", ")))"))
            }
            let x = Double(row[i[5]]), y = Double(row[i[6]])
            for (v, c) in [(x, i[5]), (y, i[6])] where !(v?.isFinite ?? false) {
                bad.append(table.problem(record, c, "'\(row[c])' is not a pixel coordinate (a number)"))
            }
            let frameCell = frameColumn.map { row[$0] } ?? ""
            let frame = frameCell.isEmpty ? nil : Int(frameCell)
            if let frameColumn, !frameCell.isEmpty, (frame ?? 0) < 1 {
                bad.append(table.problem(record, frameColumn, "'\(frameCell)' is not a frame number (1, 2, …)"))
            }
            guard bad.isEmpty, let seriesID, let instance, let label = mapped, let x, let y else {
                let last = bad.count - 1
                for (n, p) in bad.enumerated() {
                    var p = p
                    if n == last { p.reason += "; the row is not read" }
                    t.studyProblems[studies[0], default: []].append(p)
                }
                for study in studies where catalog != nil {
                    t.lostToMissingImages.remove(study)
                    guard t.lost[study] == nil else { continue }
                    t.lost[study] = "\(name) line \(record.line) could not be read"
                }
                continue
            }
            for study in studies {
                var series = seriesID
                if catalog != nil {
                    // Where files of the series were skipped as unreadable, the point may be on one of them: named
                    // and left unplaced, but the images' loss (in `files`), not the CSV's.
                    let damaged = skippedFiles["\(study)/\(RSNAID.folderKey(seriesID))"] ?? 0
                    let becauseDamaged = damaged > 0 ? " (\(damaged) file(s) of train_images/\(study)/\(seriesID) were skipped as unreadable: see files)" : ""
                    if let known = self.series[study]?[seriesID] {
                        series = known.id
                        if !known.instances.contains(instance) {
                            t.studyProblems[study, default: []].append(table.problem(
                                record, i[2], "series \(known.id) of study \(study) has no image with instance number \(instance)\(becauseDamaged); "
                                    + "this keypoint is not placed"))
                            if t.lost[study] == nil && damaged == 0 {
                                t.lost[study] = "\(name) line \(record.line) names an instance that does not exist"
                                t.lostToMissingImages.insert(study)
                            }
                        }
                    } else {
                        t.studyProblems[study, default: []].append(table.problem(
                            record, i[1], "study \(study) has no series \(seriesID)\(catalog?.mode == "rsna" ? " (no readable images in train_images/\(study)/\(seriesID))" : "")\(becauseDamaged); "
                                + "this keypoint is not placed"))
                        if t.lost[study] == nil && damaged == 0 {
                            t.lost[study] = "\(name) line \(record.line) names a series that does not exist"
                            t.lostToMissingImages.insert(study)
                        }
                    }
                }
                t.coordinates[study, default: []].append(
                    LabelCoordinate(seriesID: series, instanceNumber: instance, labelIndex: label, x: x, y: y, frameNumber: frame))
            }
        }
    }
}

extension LabelCoordinate {
    /// The optional column of train_label_coordinates.csv naming the frame of a multi-frame file (data-schema.md).
    public static let frameColumn = "frame_number"

    /// The label column of a condition and level as Kaggle spells them ("Spinal Canal Stenosis", "L1/L2"; any case,
    /// spaces around them or doubled inside are harmless).
    public static func labelIndex(condition: String, level: String) -> Int? {
        let c = condition.lowercased().split(whereSeparator: { $0 == " " || $0 == "_" }).joined(separator: "_")
        let l = level.lowercased().replacingOccurrences(of: " ", with: "").replacingOccurrences(of: "/", with: "_")
        return RSNA.labelColumns.firstIndex(of: "\(c)_\(l)")
    }
}

/// Kaggle's `sample_submission.csv` (row_id, normal_mild, moderate, severe): the row ids
/// `{study_id}_{condition}_{level}` a submission must hold, read by `CSVTable` (`predict` checks its predictions
/// against them).
public enum SampleSubmission {
    /// The file's name at an archive's root.
    public static let name = "sample_submission.csv"

    /// The study ids the file asks for (canonical, in order of first appearance) and its problems: a missing row_id
    /// column, a row id that is not `{study_id}_{label column}`, each named with its line and column.
    public static func read(_ path: String) -> (studies: [String], problems: [CatalogProblem]) {
        let (rows, problems) = rows(path)
        var studies: [String] = [], seen: Set<String> = []
        for row in rows where seen.insert(row.study).inserted { studies.append(row.study) }
        return (studies, problems)
    }

    /// One row id of the file: the study (canonical id) and the label column (index into `RSNA.labelColumns`).
    public struct Row: Sendable, Equatable {
        public var study: String
        public var label: Int
    }

    /// The file's usable row ids in file order (a submission keeps this order), and its problems.
    public static func rows(_ path: String) -> (rows: [Row], problems: [CatalogProblem]) {
        let table: CSVTable
        do { table = try CSVTable.read(path, name: name) } catch {
            return ([], [CatalogProblem(path: name, reason: "\(error)")])
        }
        var problems = table.problems
        guard let column = table.column("row_id") else { return ([], problems + [table.missing(["row_id"])]) }
        var rows: [Row] = [], seen: Set<String> = []
        for record in table.records {
            let cell = record.cells[column]
            let parts = cell.split(separator: "_", maxSplits: 1).map(String.init)
            guard parts.count == 2, let study = RSNAID.canonical(parts[0]), let label = RSNA.labelColumns.firstIndex(of: parts[1].lowercased()) else {
                problems.append(table.problem(record, column, "'\(cell)' is not a row id ({study_id}_{condition}_{level}, e.g. "
                    + "4003253_spinal_canal_stenosis_l1_l2); the row is not read"))
                continue
            }
            guard seen.insert("\(study)_\(label)").inserted else {
                problems.append(table.problem(record, column, "row id '\(cell)' is repeated; the later row is not read"))
                continue
            }
            rows.append(Row(study: study, label: label))
        }
        return (rows, problems)
    }
}
