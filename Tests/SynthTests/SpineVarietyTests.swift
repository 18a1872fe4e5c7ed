@testable import Synth
import Ingest
import XCTest

/// `SpineVariety` moves the levels in the sagittal field of view as much as asked, and no variety changes nothing.
final class SpineVarietyTests: XCTestCase {
    /// Per study: the L3/L4 canal point relative to the Sagittal T2 field of view's centre (mm), and the sagittal angle
    /// (degrees) of the line from the L1/L2 to the L5/S1 canal point.
    func placements(_ options: SynthOptions) -> [(offset: Vec3, angle: Double)] {
        (0..<options.studies).map { i in
            let study = PhantomStudy(index: i, studyID: 100 + i, options: options)
            let plan = study.plans.first { $0.kind == .sagittalT2 }!
            let middle = plan.slices[plan.slices.count / 2]
            let centre = middle.patientPosition(row: Double(middle.rows - 1) / 2, column: Double(middle.columns - 1) / 2)
            let top = study.anatomy.canalCentre(0), bottom = study.anatomy.canalCentre(4)
            let angle = atan2(top.y - bottom.y, top.z - bottom.z) * 180 / .pi
            return (study.anatomy.canalCentre(2) - centre, angle)
        }
    }

    func spread(_ values: [Double]) -> Double {
        let mean = values.reduce(0, +) / Double(values.count)
        return (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
    }

    func testVarietyMovesTheLevelsAsAsked() {
        let plain = SynthOptions(studies: 40, seed: 3)
        var varied = plain
        varied.variety = SpineVariety(shiftCentimetres: 3, tiltDegrees: 20, lordosisDegrees: 10, sizePercent: 16)
        let a = placements(plain), b = placements(varied)
        // Uniform ±30 mm has a standard deviation of 17 mm; the phantom's own spread is a few millimetres.
        XCTAssertLessThan(spread(a.map(\.offset.z)), 6)
        XCTAssertGreaterThan(spread(b.map(\.offset.z)), 12)
        XCTAssertLessThan(spread(b.map(\.offset.z)), 24)
        // Uniform ±20° tilts: standard deviation 11.5°.
        XCTAssertLessThan(spread(a.map(\.angle)), 4)
        XCTAssertGreaterThan(spread(b.map(\.angle)), 7)
        // Every level stays in the field of view (Sagittal T2 is at least 250 mm square).
        XCTAssertTrue(b.allSatisfy { abs($0.offset.z) < 125 && abs($0.offset.y) < 125 })
    }

    func testNoVarietyDrawsTheIdentity() {
        var rng = SynthRandom(seed: 1)
        let draw = SpineVariety.none.draw(&rng)
        XCTAssertEqual([draw.shiftY, draw.shiftZ, draw.tilt, draw.lordosis, draw.size], [0, 0, 0, 0, 1])
        // Without variety the spine is untilted: its landmarks follow the arc as they did before variety existed.
        let a = PhantomStudy(index: 2, studyID: 7, options: SynthOptions(studies: 3, seed: 9)).anatomy
        XCTAssertEqual(SynthOptions().variety, .none)
        XCTAssertEqual(a.tilt, 0)
        XCTAssertEqual(a.fieldOfViewShift, .zero)
        let phi = a.discS(3) / a.radius, d = a.radius - a.canalU
        XCTAssertEqual(a.canalCentre(3), Vec3(a.midline, a.arcY - d * cos(phi), a.arcZ + d * sin(phi)))
    }
}
