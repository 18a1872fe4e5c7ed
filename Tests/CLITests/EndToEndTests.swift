import Foundation
import TestSupport
import XCTest

/// The phantom cohort through the real binary: synth → scan → ingest → inspect → verify, and the
/// shards read back by h5py + hdf5plugin.
final class EndToEndTests: XCTestCase {
    // Set once by the class setUp before any test of the class runs; XCTest runs them one at a time.
    nonisolated(unsafe) static var cohort: URL!
    nonisolated(unsafe) static var shards: URL!

    override class func setUp() {
        super.setUp()
        let root = try! Fixtures.scratch("e2e")
        cohort = root.appendingPathComponent("cohort")
        shards = root.appendingPathComponent("shards")
        let synth = try! Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "3", "--out", cohort.path, "--seed", "11", "--quirks"])
        precondition(synth.status == 0, synth.stderr)
        let ingest = try! Fixtures.run(Fixtures.fuse3d, ["ingest", cohort.path, "--out", shards.path, "--size", "32"])
        precondition(ingest.status == 0, ingest.stderr + ingest.stdout)
    }

    private func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    func testScanListsTheCohortAndItsProblems() throws {
        let r = try Fixtures.run(Fixtures.fuse3d, ["scan", Self.cohort.path, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let catalog = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(catalog["mode"] as? String, "rsna")
        let studies = catalog["studies"] as! [[String: Any]]
        XCTAssertEqual(studies.count, 3)
        // Every series the CSV names is found with the kind it names.
        let csv = try String(contentsOf: Self.cohort.appendingPathComponent("train_series_descriptions.csv"), encoding: .utf8)
        for line in csv.split(separator: "\n").dropFirst() {
            let f = line.split(separator: ",").map(String.init)
            let study = try XCTUnwrap(studies.first { $0["studyID"] as? String == f[0] })
            let series = try XCTUnwrap((study["series"] as! [[String: Any]]).first { $0["seriesID"] as? String == f[1] }, "\(f)")
            XCTAssertEqual(series["kind"] as? String, f[2])
        }
        let problems = (catalog["problems"] as! [[String: Any]]).map { "\($0["path"]!): \($0["reason"]!)" }
        XCTAssertTrue(problems.contains { $0.contains("truncated pixel data") }, "\(problems)")
        XCTAssertTrue(problems.contains { $0.contains("not a DICOM file") }, "\(problems)")
    }

    func testIngestWritesShardsAReportAndHDF5ReadableSamples() throws {
        let report = try json(Self.shards.appendingPathComponent("ingest-report.json"))
        let summary = report["summary"] as! [String: Int]
        XCTAssertEqual(summary["studies"], 3)
        XCTAssertEqual(summary["fused"], 3)
        XCTAssertGreaterThanOrEqual(summary["filesSkipped"]!, 2)
        let manifest = try json(Self.shards.appendingPathComponent("manifest.json"))
        XCTAssertEqual(manifest["samples"] as? Int, 3)

        // h5py reads what we wrote; labels equal train.csv; the spinal-canal keypoints sit on bright CSF in T2.
        let r = try Fixtures.python("""
        import sys, glob, csv, numpy as np, h5py, hdf5plugin
        shards, cohort = sys.argv[1], sys.argv[2]
        f = h5py.File(sorted(glob.glob(shards + "/shard-*.h5"))[0], "r")
        v = f["volumes"]; assert v.shape == (3, 3, 32, 32, 32) and v.dtype == np.float16, (v.shape, v.dtype)
        assert v.chunks == (1, 1, 32, 32, 32), v.chunks
        rows = {r["study_id"]: r for r in csv.DictReader(open(cohort + "/train.csv"))}
        names = {"Normal/Mild": 0, "Moderate": 1, "Severe": 2, "": -1}
        cols = [c.decode() if isinstance(c, bytes) else c for c in f.attrs["label_columns"]]
        bright = 0; total = 0
        for i, sid in enumerate(f["study_id"][:]):
            want = [names[rows[str(sid)][c]] for c in cols]
            assert list(f["labels"][i]) == want, (sid, list(f["labels"][i]), want)
            vol = v[i].astype(np.float32)
            for level in range(5):
                kp = f["keypoints"][i, level]
                if np.isnan(kp).any() or not f["present"][i, 1]:
                    continue
                d, h, w = np.round(kp).astype(int)
                total += 1
                if vol[1, d, h, w] > np.percentile(vol[1][vol[1] > 0], 75):
                    bright += 1
        assert total >= 10 and bright >= 0.8 * total, (bright, total)
        print("ok", bright, total)
        """, [Self.shards.path, Self.cohort.path])
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        XCTAssertTrue(r.stdout.hasPrefix("ok"), r.stdout)
    }

    func testInspectAndVerify() throws {
        let summary = try Fixtures.run(Fixtures.fuse3d, ["inspect", Self.shards.path])
        XCTAssertEqual(summary.status, 0, summary.stderr)
        XCTAssertTrue(summary.stdout.contains("3 samples"), summary.stdout)
        let png = Self.shards.deletingLastPathComponent().appendingPathComponent("s.png")
        let nii = Self.shards.deletingLastPathComponent().appendingPathComponent("s.nii")
        let export = try Fixtures.run(Fixtures.fuse3d, ["inspect", Self.shards.path, "--sample", "1", "--png", png.path, "--nifti", nii.path])
        XCTAssertEqual(export.status, 0, export.stderr)
        let bytes = [UInt8](try Data(contentsOf: png).prefix(8))
        XCTAssertEqual(bytes, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(try Data(contentsOf: nii).count, 352 + 32 * 32 * 32 * 3 * 4)
        let page = Self.shards.deletingLastPathComponent().appendingPathComponent("shards.html")
        let html = try Fixtures.run(Fixtures.fuse3d, ["inspect", Self.shards.path, "--html", page.path, "--gallery-limit", "2"])
        XCTAssertEqual(html.status, 0, html.stderr)
        let text = try String(contentsOf: page, encoding: .utf8)
        XCTAssertEqual(text.components(separatedBy: "<img alt=\"study ").count - 1, 2)
        XCTAssertEqual(text.components(separatedBy: "data:image/png;base64,iVBORw0KGgo").count - 1, 2)
        XCTAssertTrue(text.contains("<text x=\"0\" y=\"13\">spinal_canal_stenosis_l1_l2</text>"), text.prefix(3000).description)
        let verify = try Fixtures.run(Fixtures.fuse3d, ["verify", Self.shards.path])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        let bad = try Fixtures.run(Fixtures.fuse3d, ["inspect", Self.shards.path, "--study", "12345"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("no sample of study 12345"), bad.stderr)
    }

    func testIngestIsDeterministic() throws {
        let again = Self.shards.deletingLastPathComponent().appendingPathComponent("again")
        let r = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", again.path, "--size", "32", "--workers", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for name in ["shard-00000.h5", "manifest.json"] {
            XCTAssertEqual(try Data(contentsOf: again.appendingPathComponent(name)),
                           try Data(contentsOf: Self.shards.appendingPathComponent(name)), name)
        }
    }

    func testEveryCommandHasHelpWithAnExample() throws {
        for command in ["synth", "scan", "ingest", "inspect", "verify"] {
            let r = try Fixtures.run(Fixtures.fuse3d, [command, "--help"])
            XCTAssertEqual(r.status, 0, command)
            XCTAssertTrue(r.stdout.contains("Example"), "\(command): \(r.stdout)")
        }
    }

    func testReingestIntoTheSameFolderLeavesOnlyTheNewShards() throws {
        let out = Self.shards.deletingLastPathComponent().appendingPathComponent("rerun")
        let first = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path, "--size", "16", "--samples-per-shard", "1"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("shard-00002.h5").path))
        XCTAssertEqual(try Fixtures.run(Fixtures.fuse3d, ["verify", out.path]).status, 0)
        // Re-running is an update: other shard sizes need no fusion (every study comes from the cache).
        let second = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path, "--size", "16",
                                                        "--samples-per-shard", "2"])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stdout.contains("(3 from the cache, 0 computed)"), second.stdout)
        let shards = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".h5") }.sorted()
        XCTAssertEqual(shards, ["shard-00000.h5", "shard-00001.h5"])
        let verify = try Fixtures.run(Fixtures.fuse3d, ["verify", out.path])
        XCTAssertEqual(verify.status, 0, verify.stdout)
    }

    /// SIGKILL in the middle of an ingest: every shard file left is complete, no manifest describes
    /// other shards, and a rerun gives a folder that verifies.
    func testKilledIngestLeavesOnlyCompleteShards() throws {
        let out = Self.shards.deletingLastPathComponent().appendingPathComponent("killed")
        let p = try Fixtures.start(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path, "--size", "48", "--samples-per-shard", "1",
                                                     "--workers", "1"])
        // Shards are staged in .staging until the dataset is complete; the state needed is a first staged shard.
        let staging = out.appendingPathComponent(".staging")
        // The timeout only stops a hang (it is no measure of speed): generous on a loaded machine.
        let landed = Fixtures.kill(p, when: { FileManager.default.fileExists(atPath: staging.appendingPathComponent("shard-00000.h5").path) },
                                   timeout: 600)
        XCTAssertTrue(landed, "the ingest never staged a shard")
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "the ingest ended before the kill")

        let names = try FileManager.default.contentsOfDirectory(atPath: out.path)
        let staged = (try? FileManager.default.contentsOfDirectory(atPath: staging.path)) ?? []
        for url in names.map(out.appendingPathComponent) + staged.map(staging.appendingPathComponent) where url.pathExtension == "h5" {
            let r = try Fixtures.run(Fixtures.fuse3d, ["inspect", url.path])
            XCTAssertEqual(r.status, 0, "\(url.path): \(r.stderr)")
        }
        // The kill landed mid-run: after the first staged shard, before the dataset was complete.
        XCTAssertFalse(names.contains("manifest.json"), "the kill landed after the ingest finished: \(names)")
        XCTAssertFalse(staged.contains("manifest.json"), "the kill landed after the dataset was complete: \(staged)")
        XCTAssertLessThan(staged.filter { $0.hasSuffix(".h5") }.count, 3, "every shard was staged before the kill: \(staged)")
        let rerun = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path, "--size", "48"])
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        let verify = try Fixtures.run(Fixtures.fuse3d, ["verify", out.path])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
    }
}
