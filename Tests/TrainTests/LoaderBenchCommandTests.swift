import Foundation
import TestSupport
import XCTest

/// `fuse3d bench loader` end to end, through the built binary.
final class LoaderBenchCommandTests: XCTestCase {
    func testPrintsSamplesPerSecondOverEveryEpoch() throws {
        let dir = try LoaderFixtures.folder(count: 10, perShard: 4)
        let r = try Fixtures.run(Fixtures.fuse3d, ["bench", "loader", dir.path, "--threads", "2", "--epochs", "2", "--batch", "4",
                                                   "--augment", "--decode-limit"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("threads 2 batch 4 epochs 2 samples 20"), r.stdout)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("samples/s ") })
        XCTAssertGreaterThan(try XCTUnwrap(Double(line.dropFirst(10))), 0)
        XCTAssertTrue(r.stdout.contains("augment sec/batch "), r.stdout)
        XCTAssertTrue(r.stdout.contains("decode limit samples/s per thread "), r.stdout)
    }

    func testRefusesAFolderWithoutManifestAndHasHelp() throws {
        let empty = try Fixtures.scratch()
        let r = try Fixtures.run(Fixtures.fuse3d, ["bench", "loader", empty.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("has no manifest.json"), r.stderr)
        let help = try Fixtures.run(Fixtures.fuse3d, ["bench", "loader", "--help"])
        XCTAssertTrue(help.stdout.contains("Example: fuse3d bench loader"), help.stdout)
    }
}
