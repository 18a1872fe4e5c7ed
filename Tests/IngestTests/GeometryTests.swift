@testable import Ingest
import XCTest

final class GeometryTests: XCTestCase {
    /// A sagittal slice: rows run head→feet (−z), columns anterior→posterior (+y).
    func testSagittalPixelToPatient() {
        let g = SliceGeometry(position: Vec3(10, -100, 150), rowDirection: Vec3(0, 1, 0), columnDirection: Vec3(0, 0, -1),
                              rowSpacing: 0.5, columnSpacing: 0.75, rows: 256, columns: 256, thickness: 4)
        let p = g.patientPosition(row: 10, column: 20)
        XCTAssertEqual(p, Vec3(10, -100 + 20 * 0.75, 150 - 10 * 0.5))
        XCTAssertEqual(g.normal, Vec3(-1, 0, 0))
        let back = g.pixelCoordinates(of: p)
        XCTAssertEqual(back.row, 10, accuracy: 1e-9)
        XCTAssertEqual(back.column, 20, accuracy: 1e-9)
        XCTAssertEqual(back.distance, 0, accuracy: 1e-9)
    }
}
