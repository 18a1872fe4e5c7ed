import Core
@testable import Synth
import Ingest
import XCTest

/// The phantom's anatomy: labels narrow the structure they name, and nothing else.
final class SynthAnatomyTests: XCTestCase {
    /// The same spine (same seed) with every label set to `cls`.
    func spine(_ cls: Int8) -> SpineAnatomy {
        var rng = SynthRandom(seed: 99)
        return SpineAnatomy(rng: &rng, labels: Array(repeating: cls, count: RSNA.labelColumns.count))
    }

    /// Volume (mm³) of `tissues` in a cube of half-size `half` mm around `centre`, sampled every 0.5 mm.
    func volume(_ a: SpineAnatomy, _ tissues: Set<Tissue>, around centre: Vec3, half: Double = 12) -> Double {
        var n = 0
        let steps = Int(2 * half / 0.5)
        for i in 0...steps {
            for j in 0...steps {
                for k in 0...steps {
                    let p = centre + Vec3(Double(i) * 0.5 - half, Double(j) * 0.5 - half, Double(k) * 0.5 - half)
                    if tissues.contains(a.tissue(at: p).tissue) { n += 1 }
                }
            }
        }
        return Double(n) * 0.125
    }

    func testSevereLabelsShrinkCanalForamenAndRecessAtTheirLevel() {
        let normal = spine(0), severe = spine(2)
        let level = 3  // L4/L5
        // Canal CSF in a thin slab through the disc (recesses included).
        let canalNormal = volume(normal, [.csf], around: normal.canalCentre(level), half: 6)
        let canalSevere = volume(severe, [.csf], around: severe.canalCentre(level), half: 6)
        XCTAssertGreaterThan(canalNormal, 300)
        XCTAssertLessThan(canalSevere, 0.5 * canalNormal)
        // Foraminal fat and root on the left.
        let foramenNormal = volume(normal, [.fat, .root], around: normal.foramenCentre(level, side: 0), half: 8)
        let foramenSevere = volume(severe, [.fat, .root], around: severe.foramenCentre(level, side: 0), half: 8)
        XCTAssertGreaterThan(foramenNormal, 400)
        XCTAssertLessThan(foramenSevere, 0.5 * foramenNormal)
        // The right recess: CSF in a small box around it, lateral of the central canal.
        let recessNormal = volume(normal, [.csf], around: normal.recessCentre(level, side: 1) + Vec3(-1.5, 0, 0), half: 2)
        let recessSevere = volume(severe, [.csf], around: severe.recessCentre(level, side: 1) + Vec3(-1.5, 0, 0), half: 2)
        XCTAssertGreaterThan(recessNormal, 10)
        XCTAssertLessThan(recessSevere, 0.4 * recessNormal)
    }

    func testStenosisIsLocalToItsDisc() {
        var labels = [Int8](repeating: 0, count: RSNA.labelColumns.count)
        labels[1] = 2  // spinal_canal_stenosis_l2_l3
        var rng = SynthRandom(seed: 99)
        let a = SpineAnatomy(rng: &rng, labels: labels)
        XCTAssertEqual(a.tissue(at: a.canalCentre(1) + Vec3(0, 5, 0)).tissue, .ligament, "narrowed at L2/L3")
        XCTAssertEqual(a.tissue(at: a.canalCentre(3) + Vec3(0, 5, 0)).tissue, .csf, "open at L4/L5")
        XCTAssertEqual(a.tissue(at: a.canalCentre(1)).tissue, .csf, "the canal centre stays CSF")
    }

    func testLandmarksAndSpineCoordinatesAgree() {
        let a = spine(0)
        for level in 0..<5 {
            let c = a.spineCoordinates(a.canalCentre(level))
            XCTAssertEqual(c.s, a.discS(level), accuracy: 1e-4)
            XCTAssertEqual(c.u, a.canalU, accuracy: 1e-9)
            XCTAssertEqual(c.x, 0, accuracy: 1e-12)
            let disc = a.disc(level)
            XCTAssertEqual(a.tissue(at: disc.centre).tissue, .nucleus)
            XCTAssertEqual(disc.axis.length, 1, accuracy: 1e-12)
        }
        // Round trips on the lordotic arc and on the straight part above the junction, and across it.
        for (s, u, x) in [(-80.0, 20.0, 3.0), (a.junction - 0.5, -10, 0), (a.junction + 0.5, 25, -4), (a.junction + 60, 40, 10)] {
            let back = a.spineCoordinates(a.point(s: s, u: u, x: x))
            XCTAssertEqual(back.s, s, accuracy: 1e-4)
            XCTAssertEqual(back.u, u, accuracy: 1e-6)
            XCTAssertEqual(back.x, x, accuracy: 1e-12)
        }
        XCTAssertEqual(a.axis(s: a.junction + 50), a.axis(s: a.junction), "straight above the junction")
        XCTAssertLessThan(a.axis(s: a.junction).dot(a.axis(s: a.discS(4))), cos(15 * Double.pi / 180), "lordotic below")
        XCTAssertEqual(SpineAnatomy.fastAtan2(1, -1), atan2(1, -1), accuracy: 1e-7)
        XCTAssertEqual(SpineAnatomy.fastAtan2(-0.3, 0.9), atan2(-0.3, 0.9), accuracy: 1e-7)
        XCTAssertEqual(a.tissue(at: Vec3(0, 400, 0)).tissue, .air, "outside the body")
    }
}
