import Core
import Foundation
import Ingest
import Synth
import TestSupport
import XCTest

/// `predict --keypoints` rows map back to the same patient points: the label points of a phantom study, placed in
/// patient space and written by `KeypointsTable`, come back as train_label_coordinates.csv gives them (same series,
/// same instance, the same pixel), and each row's pixel on its slice is the row's (x, y, z).
final class KeypointsTableTests: XCTestCase {
    func testRowsMapBackToTheSamePatientPoints() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let options = SynthOptions(studies: 1, seed: 11, sagittalMatrix: 64, axialMatrix: 48,
                                   variety: SpineVariety(shiftCentimetres: 2, tiltDegrees: 12, lordosisDegrees: 8, sizePercent: 10))
        let summary = try SynthCohort.write(options, to: dir)
        let catalog = CatalogScanner.scan(root: dir.path)
        let study = try XCTUnwrap(summary.studies.first)
        // The label points in patient space, through the geometry of the slice each row names.
        var points = [Double](repeating: .nan, count: 75)
        for row in summary.coordinates {
            let column = RSNA.conditionTitles.firstIndex(of: row.condition)! * 5 + RSNA.levelTitles.firstIndex(of: row.level)!
            let file = dir.appendingPathComponent("train_images/\(row.studyID)/\(row.seriesID)/\(row.instanceNumber).dcm").path
            guard case .success(let g) = try DicomReader.readHeader(file).geometry() else { return XCTFail("no geometry in \(file)") }
            let p = g.patientPosition(row: row.y, column: row.x)
            points.replaceSubrange((3 * column)..<(3 * column + 3), with: [p.x, p.y, p.z])
        }
        let csv = KeypointsTable.csv(points: [Int64(study.studyID): points], catalog: catalog, root: dir.path)
        let lines = csv.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "study_id,condition,level,x,y,z,series_id,instance_number,pixel_x,pixel_y")
        XCTAssertEqual(lines.count, 26)
        var checked = 0
        for row in summary.coordinates {
            let line = try XCTUnwrap(lines.first { $0.hasPrefix("\(row.studyID),\(row.condition),\(row.level),") })
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(f[6], String(row.seriesID), line)
            XCTAssertEqual(f[7], String(row.instanceNumber), line)
            XCTAssertEqual(Double(f[8])!, row.x, accuracy: 0.006, line)
            XCTAssertEqual(Double(f[9])!, row.y, accuracy: 0.006, line)
            // The row's pixel on its slice is the row's patient point (to the printed precision).
            let file = dir.appendingPathComponent("train_images/\(row.studyID)/\(f[6])/\(f[7]).dcm").path
            guard case .success(let g) = try DicomReader.readHeader(file).geometry() else { return XCTFail("no geometry in \(file)") }
            let back = g.patientPosition(row: Double(f[9])!, column: Double(f[8])!)
            let written = Vec3(Double(f[3])!, Double(f[4])!, Double(f[5])!)
            XCTAssertLessThan((back - written).length, 0.05 + abs(g.pixelCoordinates(of: written).distance), line)
            checked += 1
        }
        XCTAssertEqual(checked, summary.coordinates.count)
        XCTAssertGreaterThan(checked, 20)
    }
}
