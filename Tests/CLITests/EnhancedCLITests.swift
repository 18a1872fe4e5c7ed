import Foundation
import TestSupport
import XCTest

/// `synth --enhanced` through the real binary: `scan` names the SOP class and counts frames apart from
/// files; `ingest` fuses every study and its summary counts unresolved label coordinates.
final class EnhancedCLITests: XCTestCase {
    func testSynthEnhancedScanAndIngest() throws {
        let root = try Fixtures.scratch()
        let cohort = root.appendingPathComponent("cohort")
        let synth = try Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "1", "--out", cohort.path, "--seed", "5", "--enhanced",
                                                       "--sagittal-matrix", "40", "--axial-matrix", "32"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        XCTAssertTrue(synth.stdout.hasPrefix("wrote 1 studies, 3 files"), synth.stdout)

        // --verbose: the per-series listing (scan prints a summary by default).
        let scan = try Fixtures.run(Fixtures.fuse3d, ["scan", cohort.path, "--decode", "--verbose"])
        XCTAssertEqual(scan.status, 0, scan.stderr)
        XCTAssertTrue(scan.stdout.contains("1 studies, 3 image files holding "), scan.stdout)
        XCTAssertTrue(scan.stdout.contains("0 problems, 0 warnings"), scan.stdout)
        // "Axial T2 ... 5 stacks (4+4+4+4+4 slices) ...", then "... ; Enhanced MR Image, 20 frames in 1 file".
        let lines = scan.stdout.split(separator: "\n").map(String.init)
        let axial = try XCTUnwrap(lines.firstIndex { $0.contains("Axial T2") && $0.contains(" 5 stacks (") }, scan.stdout)
        let counts = try XCTUnwrap(lines[axial].split(separator: "(").last?.split(separator: " ").first)
        let frames = counts.split(separator: "+").compactMap { Int($0) }.reduce(0, +)
        XCTAssertGreaterThanOrEqual(frames, 15)
        XCTAssertTrue(lines[axial + 1].hasSuffix("; Enhanced MR Image, \(frames) frames in 1 file"), lines[axial + 1])
        XCTAssertFalse(scan.stderr.contains("Enhanced Multiframe"), scan.stderr)

        let ingest = try Fixtures.run(Fixtures.fuse3d, ["ingest", cohort.path, "--out", root.appendingPathComponent("shards").path,
                                                        "--size", "16"])
        XCTAssertEqual(ingest.status, 0, ingest.stderr + ingest.stdout)
        XCTAssertTrue(ingest.stdout.contains("1 of 1 studies fused"), ingest.stdout)
        XCTAssertTrue(ingest.stdout.contains("; 0 label coordinate(s) unresolved"), ingest.stdout)
    }
}
