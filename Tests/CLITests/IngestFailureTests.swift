import Foundation
import TestSupport
import XCTest

/// issue 17 (ingest): one study the writer refuses fails alone, and a finished dataset in the output folder
/// is replaced only by a finished one (a re-run killed midway leaves the earlier dataset whole).
final class IngestFailureTests: XCTestCase {
    // Set once by the class setUp before any test of the class runs; XCTest runs them one at a time.
    nonisolated(unsafe) static var root: URL!
    nonisolated(unsafe) static var cohort: URL!
    static let common = ["--size", "32", "--samples-per-shard", "1", "--workers", "1"]

    override class func setUp() {
        super.setUp()
        root = try! Fixtures.scratch("ingest-failure")
        cohort = root.appendingPathComponent("cohort")
        let synth = try! Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "3", "--out", cohort.path, "--seed", "3",
                                                        "--sagittal-matrix", "64", "--axial-matrix", "48"])
        precondition(synth.status == 0, synth.stderr)
    }

    func studyFolders(_ archive: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: archive.appendingPathComponent("train_images").path).sorted()
    }

    /// The study ids stored in the dataset's shards, read by h5py through the manifest.
    func storedStudyIDs(_ out: URL) throws -> [Int64] {
        let r = try Fixtures.python("""
        import h5py, hdf5plugin, json, sys
        m = json.load(open(sys.argv[1] + "/manifest.json"))
        ids = []
        for s in m["shards"]:
            with h5py.File(sys.argv[1] + "/" + s["file"], "r") as f:
                ids += [int(x) for x in f["study_id"][:]]
        print(",".join(map(str, ids)))
        """, [out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").compactMap { Int64($0) }
    }

    /// Two RSNA study folders whose names are one number ("123" and a zero-padded copy "0123", as re-exported
    /// archives have) give two catalog studies with one sample id: the one visited second is refused by the
    /// writer, fails with that reason in the report and the printed output, and the run writes the others.
    /// (Two Study Instance UIDs inside one folder no longer reach the writer: the folder is the study.)
    func testAStudyTheWriterRefusesFailsAloneAndTheRunFinishes() throws {
        let archive = Self.root.appendingPathComponent("padded-copy")
        try FileManager.default.copyItem(at: Self.cohort, to: archive)
        let folders = try studyFolders(archive)
        let images = archive.appendingPathComponent("train_images")
        let padded = "0" + folders[0]
        try FileManager.default.copyItem(at: images.appendingPathComponent(folders[0]), to: images.appendingPathComponent(padded))

        let out = Self.root.appendingPathComponent("padded-copy-out")
        let r = try Fixtures.run(Fixtures.fuse3d, ["ingest", archive.path, "--out", out.path] + Self.common)
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        XCTAssertTrue(r.stdout.contains("not written to the shards: its sample id \(folders[0])"), r.stdout)
        XCTAssertTrue(r.stdout.contains("3 of 4 studies fused into 3 samples"), r.stdout)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("ingest-report.json"))) as? [String: Any])
        let summary = try XCTUnwrap(report["summary"] as? [String: Any])
        XCTAssertEqual(summary["failed"] as? Int, 1)
        XCTAssertEqual(summary["samples"] as? Int, 3)
        let failed = (report["studies"] as! [[String: Any]]).filter { $0["status"] as? String == "failed" }
        XCTAssertEqual(failed.count, 1)
        let loser = try XCTUnwrap(failed.first?["studyID"] as? String)
        XCTAssertTrue([folders[0], padded].contains(loser), loser)
        let winner = loser == padded ? folders[0] : padded
        XCTAssertTrue((failed.first?["error"] as? String)?.contains("already taken by study \(winner)") == true, "\(failed)")
        XCTAssertEqual(try storedStudyIDs(out).sorted(), folders.map { Int64($0)! }.sorted())
        let verify = try Fixtures.run(Fixtures.fuse3d, ["verify", out.path])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
    }

    /// A re-run killed midway (here with other parameters, so every shard would change) leaves the earlier
    /// dataset as it was: manifest, report and shards byte for byte, verifying; the next run replaces it whole.
    func testAKilledRerunKeepsTheFinishedDataset() throws {
        let out = Self.root.appendingPathComponent("kept")
        let first = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path] + Self.common)
        XCTAssertEqual(first.status, 0, first.stderr)
        func datasetFiles() throws -> [String: Data] {
            var files: [String: Data] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: out.path) where !name.hasPrefix(".") {
                files[name] = try Data(contentsOf: out.appendingPathComponent(name))
            }
            return files
        }
        let before = try datasetFiles()
        XCTAssertEqual(before.keys.sorted(), ["ingest-report.json", "manifest.json", "shard-00000.h5", "shard-00001.h5", "shard-00002.h5"])

        let p = try Fixtures.start(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path, "--size", "40", "--samples-per-shard", "1",
                                                     "--workers", "1"])
        // The state needed: the new run has staged its first shard (so it is past its start and mid-dataset).
        let staged = out.appendingPathComponent(".staging/shard-00000.h5")
        // The timeout only stops a hang (it is no measure of speed): generous on a loaded machine.
        let landedMidway = Fixtures.kill(p, when: { FileManager.default.fileExists(atPath: staged.path) }, timeout: 600)
        XCTAssertTrue(landedMidway, "the re-run never staged a shard")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(".staging/manifest.json").path),
                       "the kill landed after the new dataset was complete")

        let after = try datasetFiles()
        XCTAssertEqual(after.keys.sorted(), before.keys.sorted())
        for (name, data) in before { XCTAssertTrue(after[name] == data, "\(name) changed under a killed re-run") }
        let verify = try Fixtures.run(Fixtures.fuse3d, ["verify", out.path])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)

        let rerun = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path, "--size", "40",
                                                       "--samples-per-shard", "1", "--workers", "1"])
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(".staging").path))
        let shape = try Fixtures.python("""
        import h5py, hdf5plugin, sys
        with h5py.File(sys.argv[1] + "/shard-00002.h5", "r") as f: print(f["volumes"].shape)
        """, [out.path])
        XCTAssertEqual(shape.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "(1, 3, 40, 40, 40)", shape.stderr)
        XCTAssertEqual(try Fixtures.run(Fixtures.fuse3d, ["verify", out.path]).status, 0)
    }
}
