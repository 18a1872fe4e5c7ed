import Core
import XCTest

final class RSNATests: XCTestCase {
    func testLabelColumnsFollowTrainCSVOrder() {
        XCTAssertEqual(RSNA.labelColumns.count, 25)
        XCTAssertEqual(RSNA.labelColumns[0], "spinal_canal_stenosis_l1_l2")
        XCTAssertEqual(RSNA.labelColumns[5], "left_neural_foraminal_narrowing_l1_l2")
        XCTAssertEqual(RSNA.labelColumns[24], "right_subarticular_stenosis_l5_s1")
        XCTAssertEqual(RSNA.severityClass("Severe"), 2)
        XCTAssertEqual(RSNA.severityClass(""), -1)
    }
}
