import Foundation
import TestSupport
import XCTest

/// Issue 32: a decoder that dies or hangs inside a supervised worker costs the file it was reading, never the run;
/// the file is named in the report, its study fused without it, and the next run leaves it out from the start.
/// The worker's fault hook (FUSE3D_DECODER_FAULT) makes a real SIGSEGV and a real hang on one file of the real binary.
final class DecoderContainmentTests: XCTestCase {
    nonisolated(unsafe) static var root: URL!
    nonisolated(unsafe) static var cohort: URL!
    static let common = ["--size", "32", "--workers", "2"]

    override class func setUp() {
        super.setUp()
        root = try! Fixtures.scratch("decoder-containment")
        cohort = root.appendingPathComponent("cohort")
        let synth = try! Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "3", "--out", cohort.path, "--seed", "5",
                                                        "--sagittal-matrix", "64", "--axial-matrix", "48"])
        precondition(synth.status == 0, synth.stderr)
    }

    /// A sagittal T2 file of the second study (sorted by folder), relative to the archive.
    func victim() throws -> String {
        let images = Self.cohort.appendingPathComponent("train_images")
        let study = try FileManager.default.contentsOfDirectory(atPath: images.path).sorted()[1]
        let csv = try String(contentsOf: Self.cohort.appendingPathComponent("train_series_descriptions.csv"), encoding: .utf8)
        let series = try XCTUnwrap(csv.split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
            .first { $0.count == 3 && $0[0] == study && $0[2].hasPrefix("Sagittal T2") }?[1])
        let files = try FileManager.default.contentsOfDirectory(atPath: images.appendingPathComponent("\(study)/\(series)").path).sorted()
        return "train_images/\(study)/\(series)/\(files[files.count / 2])"
    }

    func report(_ out: URL) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("ingest-report.json"))) as? [String: Any])
    }

    /// Every (study, path, reason) of the report's per-study problems.
    func problems(_ report: [String: Any]) -> [(String, String, String)] {
        ((report["studies"] as? [[String: Any]]) ?? []).flatMap { s in
            ((s["problems"] as? [[String: Any]]) ?? []).map { (s["studyID"] as! String, $0["path"] as! String, $0["reason"] as! String) }
        }
    }

    func testACrashingDecoderCostsItsFileAndIsRememberedAcrossRuns() throws {
        let file = try victim()
        let out = Self.root.appendingPathComponent("crash-out")
        let fault = ["FUSE3D_DECODER_FAULT": "crash:\(file)"]
        let r = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path] + Self.common, environment: fault)
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        XCTAssertTrue(r.stdout.contains("3 of 3 studies fused"), r.stdout)
        let first = try report(out)
        let named = problems(first).filter { $0.1 == file }
        XCTAssertEqual(named.count, 1, "\(problems(first))")
        XCTAssertTrue(named.first?.2.hasPrefix("decoder crashed (SIGSEGV) while reading this file; the study was fused without it") ?? false,
                      "\(named)")
        XCTAssertEqual((first["summary"] as? [String: Any])?["filesSkipped"] as? Int, 1)
        let remembered = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent(".decoder-crashes.json"))) as? [[String: Any]])
        XCTAssertEqual(remembered.map { $0["path"] as? String }, [file])
        let shards = try Data(contentsOf: out.appendingPathComponent("shard-00000.h5"))

        // The next run, the fault still armed, never meets the file: all from the cache, the same report.
        let again = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path] + Self.common, environment: fault)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("3 from the cache"), again.stdout)
        XCTAssertEqual(try report(out) as NSDictionary, first as NSDictionary)
        // Recomputed from scratch (--overwrite) it leaves the file out from the start: the same report and shard bytes.
        let recomputed = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path, "--overwrite"] + Self.common,
                                          environment: fault)
        XCTAssertEqual(recomputed.status, 0, recomputed.stderr)
        XCTAssertTrue(recomputed.stdout.contains("3 computed"), recomputed.stdout)
        XCTAssertEqual(try report(out) as NSDictionary, first as NSDictionary)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("shard-00000.h5")), shards)

        // Without the fault and without the memory the file is used again: the study differs from the crashed run's.
        try FileManager.default.removeItem(at: out.appendingPathComponent(".decoder-crashes.json"))
        let healed = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path] + Self.common)
        XCTAssertEqual(healed.status, 0, healed.stderr)
        XCTAssertEqual((try report(out)["summary"] as? [String: Any])?["filesSkipped"] as? Int, 0)
        XCTAssertNotEqual(try Data(contentsOf: out.appendingPathComponent("shard-00000.h5")), shards)
    }

    func testAHungDecoderIsKilledAtItsTimeLimit() throws {
        let file = try victim()
        let out = Self.root.appendingPathComponent("hang-out")
        let r = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path, "--decoder-time-limit", "5"] + Self.common,
                                 environment: ["FUSE3D_DECODER_FAULT": "hang:\(file)"])
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        XCTAssertTrue(r.stdout.contains("3 of 3 studies fused"), r.stdout)
        let named = problems(try report(out)).filter { $0.1 == file }
        XCTAssertEqual(named.map(\.2), ["decoder ran past its time limit (5 s) while reading this file; the study was fused without it (remembered in .decoder-crashes.json: later runs leave it out)"])
    }

    func testScanDecodeNamesTheFileWhoseDecoderCrashed() throws {
        let file = try victim()
        let r = try Fixtures.run(Fixtures.fuse3d, ["scan", Self.cohort.path, "--decode", "--json"],
                                 environment: ["FUSE3D_DECODER_FAULT": "crash:\(file)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let catalog = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let listed = ((catalog["problems"] as? [[String: Any]]) ?? []).filter { $0["path"] as? String == file }
        XCTAssertEqual(listed.count, 1, r.stdout.prefix(2000).description)
        XCTAssertTrue((listed.first?["reason"] as? String)?.hasPrefix("decoder crashed (SIGSEGV)") ?? false, "\(listed)")
        // The other files decoded: the study count is that of the cohort.
        XCTAssertEqual((catalog["studies"] as? [Any])?.count, 3)
    }

    /// The header scan runs GDCM's parser on every file of the archive, damaged or not: it runs in the workers too.
    func testAHeaderParserCrashCostsItsFileInScanAndIngest() throws {
        let file = try victim()
        let fault = ["FUSE3D_DECODER_FAULT": "crash-header:\(file)"]
        let scan = try Fixtures.run(Fixtures.fuse3d, ["scan", Self.cohort.path, "--json"], environment: fault)
        XCTAssertEqual(scan.status, 0, scan.stderr)
        let catalog = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(scan.stdout.utf8)) as? [String: Any])
        let listed = ((catalog["problems"] as? [[String: Any]]) ?? []).filter { $0["path"] as? String == file }
        XCTAssertTrue((listed.first?["reason"] as? String)?.hasPrefix("header reader crashed (SIGSEGV)") ?? false, "\(listed)")

        let out = Self.root.appendingPathComponent("header-crash-out")
        let r = try Fixtures.run(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path] + Self.common, environment: fault)
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        XCTAssertTrue(r.stdout.contains("3 of 3 studies fused"), r.stdout)
        let skipped = ((try report(out)["files"] as? [[String: Any]]) ?? []).filter { $0["path"] as? String == file }
        XCTAssertTrue((skipped.first?["reason"] as? String)?.hasPrefix("header reader crashed (SIGSEGV)") ?? false, "\(skipped)")
    }
}
