import Foundation
import TestSupport
import XCTest

/// `fuse3d ingest` and the label CSVs through the real binary: a CSV that would silently drop labels stops the run
/// with one line and exit status 1 after the shards and report are written; `--allow-unlabelled` accepts it; an
/// archive without label CSVs and an Excel "CSV UTF-8" series table (byte-order mark) ingest as usual.
final class LabelCSVCLITests: XCTestCase {
    private func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    private func ingest(_ archive: URL, _ out: URL, _ extra: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        try Fixtures.run(Fixtures.fuse3d, ["ingest", archive.path, "--out", out.path, "--size", "16", "--workers", "2"] + extra)
    }

    func testLabelLossStopsTheRunAfterTheReportUnlessAllowed() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let archive = dir.appendingPathComponent("cohort")
        let synth = try Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "2", "--out", archive.path, "--seed", "5",
                                                       "--sagittal-matrix", "64", "--axial-matrix", "48"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let folders = try FileManager.default.contentsOfDirectory(atPath: archive.appendingPathComponent("train_images").path).sorted()

        // Excel's "CSV UTF-8": a byte-order mark before the series table's header. The studies keep their folder ids.
        let descriptions = archive.appendingPathComponent("train_series_descriptions.csv")
        try (Data([0xEF, 0xBB, 0xBF]) + Data(contentsOf: descriptions)).write(to: descriptions)
        let bom = try ingest(archive, dir.appendingPathComponent("bom"))
        XCTAssertEqual(bom.status, 0, bom.stderr + bom.stdout)
        XCTAssertTrue(bom.stdout.contains("; 0 label CSV problem(s) (see ingest-report.json)"), bom.stdout)
        let bomReport = try json(dir.appendingPathComponent("bom/ingest-report.json"))
        XCTAssertEqual(bomReport["mode"] as? String, "rsna")
        XCTAssertEqual((bomReport["studies"] as! [[String: Any]]).map { "\($0["sampleID"]!)" }, folders)

        // train.csv's study_id column renamed: every study would lose its labels.
        let train = archive.appendingPathComponent("train.csv")
        let text = try String(contentsOf: train, encoding: .utf8)
        try text.replacingOccurrences(of: "study_id,", with: "study,").write(to: train, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("lost")
        let lost = try ingest(archive, out)
        XCTAssertEqual(lost.status, 1, lost.stdout)
        let line = "labels: 2 of 2 studies (100 %) lost labels or keypoints to problems in the label CSVs (first: study "
            + "\(folders[0]): train.csv has no study_id column); each problem is named with its file, line and column in "
            + "ingest-report.json (files); fix the CSVs, or accept this with --allow-unlabelled"
        XCTAssertEqual(lost.stderr.split(separator: "\n").filter { $0.contains("labels:") }.map { String($0) }, ["Error: " + line])
        XCTAssertTrue(lost.stdout.contains("; 1 label CSV problem(s) costing 2 studies labels or keypoints (see ingest-report.json)"), lost.stdout)
        // The shards and the report are written all the same.
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("manifest.json").path))
        let report = try json(out.appendingPathComponent("ingest-report.json"))
        let files = report["files"] as! [[String: Any]]
        let problem = try XCTUnwrap(files.first { $0["path"] as? String == "train.csv" })
        XCTAssertEqual(problem["line"] as? Int, 1)
        XCTAssertTrue((problem["reason"] as! String).hasPrefix("line 1: needs the column study_id; cannot find study_id (the header reads 'study', "))
        XCTAssertEqual((report["labelsLost"] as! [[String: Any]]).map { $0["studyID"] as! String }, folders)
        let summary = report["summary"] as! [String: Any]
        XCTAssertEqual(summary["labelProblems"] as? Int, 1)
        XCTAssertEqual(summary["studiesLosingLabels"] as? Int, 2)
        XCTAssertEqual(summary["fused"] as? Int, 2)

        let allowed = try ingest(archive, dir.appendingPathComponent("allowed"), ["--allow-unlabelled"])
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertTrue(allowed.stdout.contains("(accepted: --allow-unlabelled)"), allowed.stdout)

        // Without label CSVs: an ordinary unlabelled ingest.
        try FileManager.default.removeItem(at: train)
        try FileManager.default.removeItem(at: archive.appendingPathComponent("train_label_coordinates.csv"))
        let unlabelled = try ingest(archive, dir.appendingPathComponent("unlabelled"))
        XCTAssertEqual(unlabelled.status, 0, unlabelled.stderr)
        XCTAssertFalse(unlabelled.stdout.contains("labels:"), unlabelled.stdout)
        let plain = try json(dir.appendingPathComponent("unlabelled/ingest-report.json"))
        XCTAssertEqual(plain["labelTables"] as? [String], [])
        XCTAssertEqual((plain["labelsLost"] as? [Any])?.count, 0)
    }
}
