@testable import Ingest
import XCTest

final class FusionRobustRangeTests: XCTestCase {
    func testPercentilesMatchNumPyLinearInterpolation() {
        // A permutation of 0…1000: np.percentile(.., [0.5, 99.5]) = [5, 995].
        let values = (0...1000).map { Float(($0 * 389) % 1001) }
        let r = RobustRange.percentiles(values, low: 0.5, high: 99.5)
        XCTAssertEqual(r.low, 5)
        XCTAssertEqual(r.high, 995)
        // np.percentile([4, 1, 3, 2], [10, 50]) = [1.3, 2.5].
        let small = RobustRange.percentiles([4, 1, 3, 2], low: 10, high: 50)
        XCTAssertEqual(small.low, 1.3, accuracy: 1e-6)
        XCTAssertEqual(small.high, 2.5, accuracy: 1e-6)
        XCTAssertEqual(RobustRange.percentiles([7, 7, 7, 7, 7], low: 0.5, high: 99.5).high, 7)
        XCTAssertTrue(RobustRange.percentiles([], low: 1, high: 2) == (0, 0))
    }

    func testNormalizeClampsToTheUnitInterval() {
        XCTAssertEqual(RobustRange.normalize(150, low: 100, high: 300), 0.25)
        XCTAssertEqual(RobustRange.normalize(50, low: 100, high: 300), 0)
        XCTAssertEqual(RobustRange.normalize(400, low: 100, high: 300), 1)
        XCTAssertEqual(RobustRange.normalize(5, low: 7, high: 7), 0)
    }
}
