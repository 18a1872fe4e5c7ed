import TestSupport
import XCTest

final class CLIVersionTests: XCTestCase {
    func testHelpListsExample() throws {
        let r = try Fixtures.run(Fixtures.fuse3d, ["--help"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("fuse3d synth --studies 8"), r.stdout)
    }
}
