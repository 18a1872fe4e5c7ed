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

    /// An axial slice: rows run anterior→posterior (+y), columns right→left (+x); normal +z (superior).
    func testAxialPixelToPatient() {
        let g = SliceGeometry(position: Vec3(-120, -90, 30), rowDirection: Vec3(1, 0, 0), columnDirection: Vec3(0, 1, 0),
                              rowSpacing: 0.8, columnSpacing: 0.6, rows: 320, columns: 320, thickness: 4)
        XCTAssertEqual(g.normal, Vec3(0, 0, 1))
        XCTAssertEqual(g.patientPosition(row: 100, column: 50), Vec3(-120 + 50 * 0.6, -90 + 100 * 0.8, 30))
    }

    /// An oblique axial slice tilted 20° about x (following a disc): rowDir (1,0,0), colDir (0, cos, −sin).
    func testObliquePixelToPatientAndBack() {
        let t = 20 * Double.pi / 180
        let g = SliceGeometry(position: Vec3(-80, -60, 10), rowDirection: Vec3(1, 0, 0), columnDirection: Vec3(0, cos(t), -sin(t)),
                              rowSpacing: 0.5, columnSpacing: 0.5, rows: 256, columns: 256, thickness: 3)
        // Hand-computed: x = −80 + 40·0.5 = −60; y = −60 + 120·0.5·cos20° = −3.618…; z = 10 − 120·0.5·sin20° = −10.521…
        let p = g.patientPosition(row: 120, column: 40)
        XCTAssertEqual(p.x, -60, accuracy: 1e-9)
        XCTAssertEqual(p.y, -60 + 60 * 0.9396926207859084, accuracy: 1e-9)
        XCTAssertEqual(p.z, 10 - 60 * 0.3420201433256687, accuracy: 1e-9)
        XCTAssertEqual(g.normal.y, sin(t), accuracy: 1e-12)
        XCTAssertEqual(g.normal.z, cos(t), accuracy: 1e-12)
        // A point 2 mm above the plane projects back onto (120, 40) at distance 2.
        let back = g.pixelCoordinates(of: p + 2 * g.normal)
        XCTAssertEqual(back.row, 120, accuracy: 1e-9)
        XCTAssertEqual(back.column, 40, accuracy: 1e-9)
        XCTAssertEqual(back.distance, 2, accuracy: 1e-9)
    }
}
