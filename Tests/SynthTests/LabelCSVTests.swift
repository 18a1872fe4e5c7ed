import Core
import Foundation
@testable import Ingest
import Shards
import Synth
import TestSupport
import XCTest

/// The RSNA label CSVs as people's tools write them: a phantom cohort's CSVs rewritten by Python's csv module the way
/// Excel, pandas and editors save them give the same study ids, labels and keypoints; broken values cost their own
/// cell and are named with file, line and column; what would silently drop labels is named and counted.
final class LabelCSVTests: XCTestCase {
    static let names = ["train.csv", "train_series_descriptions.csv", "train_label_coordinates.csv"]

    /// Rewrites the three CSVs of `root` in place with python3's csv module (stdlib only): UTF-8 with a byte-order
    /// mark (Excel's "CSV UTF-8"), CRLF, every cell quoted, columns reversed with an extra column holding a comma and a
    /// line break, header names upper-cased with spaces, spaces around every value, severities, conditions, levels
    /// and series descriptions in lower case.
    static let rewrite = """
    import csv, os, sys
    root = sys.argv[1]
    def rewrite(name, change):
        with open(os.path.join(root, name), newline="") as f:
            rows = list(csv.reader(f))
        header = rows[0]
        fields = list(reversed(header))
        fields.insert(1, "notes")
        with open(os.path.join(root, name), "w", newline="", encoding="utf-8-sig") as f:
            w = csv.writer(f, quoting=csv.QUOTE_ALL)
            w.writerow([" " + h.upper() + " " for h in fields])
            for n, row in enumerate(rows[1:]):
                cells = dict(zip(header, row))
                cells["notes"] = f"row {n}, read twice\\nby two readers"
                w.writerow([" " + change(h, cells[h]) + " " for h in fields])
    lower = lambda h, v: v.lower() if h not in ("study_id", "series_id") else v
    rewrite("train.csv", lower)
    rewrite("train_series_descriptions.csv", lower)
    rewrite("train_label_coordinates.csv", lower)
    """

    /// Runs a python3 (stdlib) snippet with `arguments`.
    static func python3(_ code: String, _ arguments: [String]) throws {
        let r = try Fixtures.run(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", code] + arguments)
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// A three-study phantom cohort (coarse matrices, few slices).
    static func cohort(_ dir: URL) throws -> SynthSummary {
        try SynthCohort.write(SynthOptions(studies: 3, seed: 23, sagittalMatrix: 64, axialMatrix: 48, sagittalSlices: 9...9,
                                           axialSlicesPerStack: 3...3, threads: 2), to: dir)
    }

    /// Each sample of a shard folder: study id → (labels, keypoints with NaN written as −1000).
    static func samples(_ shards: URL) throws -> [Int64: ([Int8], [Float])] {
        let dataset = try ShardDataset(directory: shards)
        var out: [Int64: ([Int8], [Float])] = [:]
        for i in 0..<dataset.count {
            let s = try dataset.read(i)
            out[s.studyID] = (s.labels, s.keypoints.map { $0.isNaN ? -1000 : $0 })
        }
        return out
    }

    func testRewrittenCSVsIngestToTheSameIDsLabelsAndKeypoints() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let archive = dir.appendingPathComponent("archive")
        let summary = try Self.cohort(archive)
        var pipeline = PipelineConfig()
        pipeline.fusion.size = 16
        let clean = try IngestRunner.run(IngestOptions(archive: archive.path, output: dir.appendingPathComponent("clean"),
                                                       pipeline: pipeline, workers: 2)).report
        let cleanTables = RSNATables.load(root: archive.path, catalog: CatalogScanner.scan(root: archive.path))

        try Self.python3(Self.rewrite, [archive.path])
        let train = try Data(contentsOf: archive.appendingPathComponent("train.csv"))
        XCTAssertEqual([UInt8](train.prefix(3)), [0xEF, 0xBB, 0xBF], "Python wrote a byte-order mark")
        let written = String(decoding: train, as: UTF8.self)
        XCTAssertTrue(written.contains("\" row 0, read twice\nby two readers \"") && written.contains("\" normal/mild \"")
                      && !written.contains("Normal/Mild"), "Python wrote lowercase severities and a quoted comma and line break")
        let rewritten = try IngestRunner.run(IngestOptions(archive: archive.path, output: dir.appendingPathComponent("rewritten"),
                                                           pipeline: pipeline, workers: 2)).report
        let catalog = CatalogScanner.scan(root: archive.path)
        let tables = RSNATables.load(root: archive.path, catalog: catalog)

        // The tables read the same, and nothing in them is a problem.
        XCTAssertEqual(tables.labels, cleanTables.labels)
        XCTAssertEqual(tables.coordinates, cleanTables.coordinates)
        XCTAssertEqual(tables.labels.count, 3)
        XCTAssertEqual(tables.coordinates.values.map(\.count).reduce(0, +), summary.coordinates.count)
        XCTAssertEqual(tables.problems(for: nil), [])
        XCTAssertEqual(tables.lost, [:])
        XCTAssertEqual(catalog.mode, "rsna")
        XCTAssertEqual(catalog.problems, [])
        for study in catalog.studies {
            XCTAssertEqual(study.series.filter { $0.kind != .other }.map(\.kindReason), Array(repeating: "train_series_descriptions.csv", count: 3))
        }

        // The two ingests: same study ids (the RSNA folder numbers, not hashes), same labels and keypoints.
        XCTAssertEqual(rewritten.studies.map(\.sampleID), summary.studies.map { Int64($0.studyID) })
        XCTAssertEqual(rewritten.studies.map(\.sampleID), clean.studies.map(\.sampleID))
        XCTAssertEqual(rewritten.studies.map(\.status), [.fused, .fused, .fused])
        XCTAssertEqual(rewritten.summary.labelProblems, 0)
        XCTAssertEqual(rewritten.labelsLost, [])
        XCTAssertNil(rewritten.labelLossLine)
        XCTAssertEqual(rewritten.labelTables, ["train.csv", "train_label_coordinates.csv"])
        let a = try Self.samples(dir.appendingPathComponent("clean")), b = try Self.samples(dir.appendingPathComponent("rewritten"))
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
        for (id, sample) in a {
            XCTAssertEqual(b[id]?.0, sample.0, "labels of \(id)")
            XCTAssertEqual(b[id]?.1, sample.1, "keypoints of \(id)")
            XCTAssertEqual(sample.0, summary.studies.first { Int64($0.studyID) == id }!.labels, "labels of \(id) are the cohort's")
            XCTAssertTrue(sample.1.contains { $0 != -1000 }, "study \(id) has keypoints")
        }
    }

    /// Broken values by hand: each costs its own cell or row, is named with file, line and column, and the studies that
    /// lose labels or keypoints are listed.
    func testBrokenValuesCostTheirCellAndAreNamed() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let summary = try Self.cohort(dir)
        let catalog = CatalogScanner.scan(root: dir.path)
        let clean = RSNATables.load(root: dir.path, catalog: catalog)
        let ids = summary.studies.map { String($0.studyID) }
        let trainURL = dir.appendingPathComponent("train.csv")
        var lines = try String(contentsOf: trainURL, encoding: .utf8).split(separator: "\n").map(String.init)
        // Study 0: a quoted extra-column cell with a line break (line 2 spans two lines), an unknown severity in its
        // first label column. Study 1: its id is not a number. Study 2: a second row that disagrees, and one row for a
        // study with no folder.
        lines[0] += ",notes"
        var cells0 = lines[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        cells0[1] = "Normal-Mild"
        lines[1] = cells0.joined(separator: ",") + ",\"two\nlines\""
        lines[2] = lines[2].replacingOccurrences(of: ids[1], with: "\(ids[1])x") + ","
        lines[3] += ","
        let disagreeing = lines[3].replacingOccurrences(of: ",Severe,", with: ",Moderate,").replacingOccurrences(of: ",Normal/Mild,", with: ",Moderate,")
        lines.append(disagreeing)
        lines.append("77," + Array(repeating: "Moderate", count: 25).joined(separator: ",") + ",")
        try (lines.joined(separator: "\n") + "\n").write(to: trainURL, atomically: true, encoding: .utf8)

        let t = RSNATables.load(root: dir.path, catalog: catalog)
        // The unknown severity costs only its cell: the rest of study 0's labels are the cohort's.
        var expected = summary.studies[0].labels
        expected[0] = -1
        XCTAssertEqual(t.labels[ids[0]], expected)
        XCTAssertEqual(t.labels.count, 1, "study 1's id is unreadable, study 2's rows disagree")
        XCTAssertEqual(t.coordinates, clean.coordinates)
        let problems = t.problems(for: nil)
        func problem(_ line: Int) -> CatalogProblem? { problems.first { $0.line == line } }
        XCTAssertEqual(problem(2)?.column, 2)
        XCTAssertEqual(problem(2)?.reason, "line 2, column 2 (spinal_canal_stenosis_l1_l2): unknown severity 'Normal-Mild' "
            + "(not Normal/Mild, Moderate, Severe); this label is left empty")
        XCTAssertEqual(problem(4)?.column, 1)
        XCTAssertEqual(problem(4)?.reason, "line 4, column 1 (study_id): '\(ids[1])x' is not a study id (a whole number); the row is not read")
        XCTAssertEqual(problem(6)?.reason, "line 6: study \(ids[2]) has a row on line 5 too, and they disagree "
            + "(first in \(RSNA.labelColumns[zip(summary.studies[2].labels, 0...).first { $0.0 != 1 }!.1])); neither row is used")
        XCTAssertEqual(problem(7)?.reason, "line 7, column 1 (study_id): study 77: no folder train_images/77; the row is not used")
        XCTAssertTrue(problems.contains { $0.path == "train.csv" && $0.line == nil && $0.reason == "study \(ids[1]) (train_images/\(ids[1])) has no row; no labels" },
                      "\(problems)")
        XCTAssertTrue(problems.allSatisfy { $0.path == "train.csv" })
        XCTAssertEqual(t.lost, [ids[1]: "no usable train.csv row", ids[2]: "train.csv has rows for it that disagree"])

        // Coordinates: a series that does not exist, an instance that does not exist, an x that is not a number.
        let coordsURL = dir.appendingPathComponent("train_label_coordinates.csv")
        var rows = try String(contentsOf: coordsURL, encoding: .utf8).split(separator: "\n").map(String.init)
        func cells(_ n: Int) -> [String] { rows[n].split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        var r1 = cells(1), r2 = cells(2), r3 = cells(3)
        let study = r1[0]
        r1[1] = "999"
        r2[2] = "9999"
        r3[5] = "12;5"
        rows[1] = r1.joined(separator: ","); rows[2] = r2.joined(separator: ","); rows[3] = r3.joined(separator: ",")
        try (rows.joined(separator: "\n") + "\n").write(to: coordsURL, atomically: true, encoding: .utf8)
        let c = RSNATables.load(root: dir.path, catalog: catalog)
        let cp = c.problems(for: nil).filter { $0.path == "train_label_coordinates.csv" }
        XCTAssertEqual(cp.map(\.line), [2, 3, 4])
        XCTAssertEqual(cp.map(\.column), [2, 3, 6])
        XCTAssertEqual(cp[0].reason, "line 2, column 2 (series_id): study \(study) has no series 999 (no readable images in "
            + "train_images/\(study)/999); this keypoint is not placed")
        XCTAssertTrue(cp[1].reason.hasPrefix("line 3, column 3 (instance_number): series \(r2[1]) of study \(study) has no image with instance number 9999"), cp[1].reason)
        XCTAssertEqual(cp[2].reason, "line 4, column 6 (x): '12;5' is not a pixel coordinate (a number); the row is not read")
        XCTAssertEqual(c.coordinates[study]?.count, clean.coordinates[study]!.count - 1, "only the unreadable row is dropped")
        XCTAssertEqual(c.lost[study], "train_label_coordinates.csv line 2 names a series that does not exist")
    }

    /// A label CSV whose required columns cannot be found costs every study: named, and every study is listed as lost.
    /// Without a catalog (no archive to match), the tables read as before: ids as written, nothing lost.
    func testMissingRequiredColumnLosesEveryStudy() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let summary = try Self.cohort(dir)
        let catalog = CatalogScanner.scan(root: dir.path)
        let url = dir.appendingPathComponent("train_label_coordinates.csv")
        let text = try String(contentsOf: url, encoding: .utf8)
        try text.replacingOccurrences(of: "instance_number", with: "instance").write(to: url, atomically: true, encoding: .utf8)
        let t = RSNATables.load(root: dir.path, catalog: catalog)
        XCTAssertEqual(t.coordinates, [:])
        XCTAssertEqual(t.labels.count, 3, "train.csv is fine")
        XCTAssertEqual(t.problems.map(\.path), ["train_label_coordinates.csv"])
        XCTAssertEqual(t.problems.first?.line, 1)
        XCTAssertTrue(t.problems[0].reason.hasPrefix("line 1: needs the columns study_id, series_id, instance_number, condition, "
            + "level, x, y; cannot find instance_number (the header reads 'study_id', 'series_id', 'instance', "), t.problems[0].reason)
        XCTAssertEqual(Set(t.lost.keys), Set(summary.studies.map { String($0.studyID) }))
        XCTAssertEqual(RSNATables.load(root: dir.path).labels.count, 3)
    }

    /// What we write, Python's csv module reads as our reader does: the phantom's three CSVs and `predict --keypoints`'s
    /// table.
    func testPythonReadsWhatWeWrite() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let summary = try Self.cohort(dir)
        let points = Dictionary(uniqueKeysWithValues: summary.studies.map { (Int64($0.studyID), (0..<75).map { Double($0) / 3 }) })
        try KeypointsTable.csv(points: points).write(to: dir.appendingPathComponent("points.csv"), atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("python.json")
        try Self.python3("""
        import csv, json, sys
        root, out = sys.argv[1], sys.argv[2]
        tables = {}
        for name in ["train.csv", "train_series_descriptions.csv", "train_label_coordinates.csv", "points.csv"]:
            with open(root + "/" + name, newline="") as f:
                tables[name] = list(csv.DictReader(f))
        json.dump(tables, open(out, "w"))
        """, [dir.path, out.path])
        let python = try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as! [String: [[String: String]]]
        for name in Self.names + ["points.csv"] {
            let table = try CSVTable.read(dir.appendingPathComponent(name).path)
            let ours = table.records.map { r in Dictionary(uniqueKeysWithValues: zip(table.header, r.cells)) }
            XCTAssertEqual(ours, python[name], name)
            XCTAssertFalse(ours.isEmpty, name)
        }
        XCTAssertEqual(python["points.csv"]?.count, 75)
    }
}
