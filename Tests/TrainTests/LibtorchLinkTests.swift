import Train
import XCTest

final class LibtorchLinkTests: XCTestCase {
    func testLinksTorch2_13() {
        XCTAssertTrue(libtorchVersion.hasPrefix("2.13"), libtorchVersion)
    }
}
