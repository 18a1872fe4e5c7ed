import Foundation
import TestSupport
import XCTest

/// `fuse3d bench train` end to end, through the built binary.
final class BenchCommandTests: XCTestCase {
    func testPrintsSecondsPerStepAndPeakMemory() throws {
        let r = try Fixtures.run(Fixtures.fuse3d, ["bench", "train", "--model", "efficientnet3d", "--width", "0.25",
                                                   "--size", "16", "--batch", "1", "--steps", "2", "--warmup", "0", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("sec/step ") })
        XCTAssertGreaterThan(try XCTUnwrap(Double(line.dropFirst(9))), 0)
        XCTAssertTrue(r.stdout.contains("peak RSS "), r.stdout)
        XCTAssertTrue(r.stdout.contains("threads 1 device cpu"), r.stdout)
    }

    func testRejectsBadOptionsWithAdvice() throws {
        let model = try Fixtures.run(Fixtures.fuse3d, ["bench", "train", "--model", "resnet"])
        XCTAssertNotEqual(model.status, 0)
        XCTAssertTrue(model.stderr.contains("--model must be one of efficientnet3d, vit3d"), model.stderr)
        let vit = try Fixtures.run(Fixtures.fuse3d, ["bench", "train", "--model", "vit3d", "--size", "40"])
        XCTAssertTrue(vit.stderr.contains("multiple of 16"), vit.stderr)
        let device = try Fixtures.run(Fixtures.fuse3d, ["bench", "train", "--device", "tpu"])
        XCTAssertTrue(device.stderr.contains("--device must be cpu, cuda or cuda:N"), device.stderr)
    }

    func testHelpHasAnExample() throws {
        let r = try Fixtures.run(Fixtures.fuse3d, ["bench", "train", "--help"])
        XCTAssertTrue(r.stdout.contains("Example: fuse3d bench train"), r.stdout)
    }
}
