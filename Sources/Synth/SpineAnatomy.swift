import Foundation
import Ingest

/// A lumbar spine in patient space (LPS, mm) made of implicit shapes, with its labels rendered in.
///
/// Shapes live in spine coordinates (s, u, x): `s` is arc length along a lordotic arc through the
/// vertebral-body centres (superior positive), `u` the distance posterior of that arc, `x` the lateral
/// offset from the mid-sagittal plane (patient left positive). Because the arc bends, discs are
/// wedge-shaped and every level's axis tilts with the lordosis, as in a real lumbar spine. Above the
/// thoracolumbar junction (the T12/L1 disc) the centre line runs straight on along the arc's tangent,
/// since the lordosis is a lumbar curve.
struct SpineAnatomy: Sendable {
    /// Mid-sagittal plane (patient x, mm).
    var midline: Double
    /// Centre of the lordotic arc in the sagittal plane (patient y, z); it lies posterior of the spine.
    var arcY: Double, arcZ: Double
    /// Radius of the arc (mm): smaller is more lordotic.
    var radius: Double
    /// Sagittal tilt of the whole spine (radians): the arc angle of arc length 0 (`SpineVariety`).
    var tilt = 0.0
    /// Patient y of the arc's apex line, which the torso is placed from.
    var anteriorY: Double
    /// How far the spine sits from the centre of the sagittal field of view (patient mm; `SpineVariety`).
    var fieldOfViewShift = Vec3.zero
    /// Half extents of a vertebral body (s, x, u) and of a disc along s.
    var bodyHalfHeight: Double, discHalfHeight: Double, bodyHalfWidth: Double, bodyHalfDepth: Double
    /// Half extents of the central canal at full width (x, u).
    var canalHalfWidth: Double, canalHalfDepth: Double
    /// Arc length of L1's body centre.
    var l1: Double
    /// Canal, foramen and recess openings per level (1 = normal; smaller = narrower), foramen and
    /// recess indexed [side][level] with side 0 = patient left.
    var canalOpening: [Double]
    var foramenOpening: [[Double]]
    var recessOpening: [[Double]]
    /// Nucleus signal scale of each disc, T9/T10 … L5/S1 (index disc + 4); degenerate discs are darker.
    var hydration: [Double]
    /// sin and cos of the arc angle at the junction (kept: the renderer needs them for every point above it).
    private(set) var junctionDirection = (sin: 0.0, cos: 1.0)

    /// Vertebrae modelled: T9 (−4) … L1 (0) … S1 (5), the sacrum continuing below S1.
    static let vertebrae = -4...5
    /// Discs modelled, by the vertebra above them: T9/T10 (−4) … L5/S1 (4).
    static let discs = -4...4
    /// Axial extent (σ, mm) of a stenosis around its disc.
    static let stenosisSigma = 5.0

    var pitch: Double { 2 * (bodyHalfHeight + discHalfHeight) }
    /// Arc length of vertebra `i`'s body centre.
    func vertebraS(_ i: Int) -> Double { l1 - Double(i) * pitch }
    /// Arc length of the centre of the disc below vertebra `k`.
    func discS(_ k: Int) -> Double { vertebraS(k) - pitch / 2 }
    /// Distance of the canal's centre line posterior of the body arc.
    var canalU: Double { bodyHalfDepth + 2 + canalHalfDepth }
    /// Where the lateral recess and the foramen sit, from the midline (mm).
    var recessX: Double { canalHalfWidth + 1 }
    var foramenX: Double { canalHalfWidth + 10 }

    /// A spine drawn from `rng` with the 25 labels (RSNA.labelColumns order, class 0...2) rendered in, varied by
    /// `variety` (drawn from its own stream, so the identity draw leaves the spine as it was).
    init(rng: inout SynthRandom, labels: [Int8], variety: SpineVariety.Draw = SpineVariety.Draw()) {
        let size = rng.uniform(0.92...1.08) * variety.size
        midline = rng.uniform(-4...4)
        radius = rng.uniform(220...320)
        if variety.lordosis != 0 {
            // The L1–S1 curve spans about five pitches of arc: change its angle, keep its length.
            let span = 10 * (12.5 + 4.5) * size
            radius = span / max(span / radius + variety.lordosis, 0.05)
        }
        tilt = variety.tilt
        fieldOfViewShift = Vec3(0, variety.shiftY, variety.shiftZ)
        bodyHalfHeight = 12.5 * size
        discHalfHeight = 4.5 * size
        bodyHalfWidth = 21 * size
        bodyHalfDepth = 15 * size
        let canal = rng.uniform(0.9...1.1)
        canalHalfWidth = 7.5 * canal
        canalHalfDepth = 7.5 * canal
        // L1 sits two pitches above L3, which sits within 8 mm of the arc's apex.
        l1 = 2 * 2 * (bodyHalfHeight + discHalfHeight) + rng.uniform(-8...8)
        // The arc's apex (s = 0) sits near the scanner's isocentre.
        let apexY = rng.uniform(-20...10), apexZ = rng.uniform(-15...15)
        arcY = apexY + radius * cos(tilt)
        arcZ = apexZ - radius * sin(tilt)
        anteriorY = arcY - radius * cos(tilt)
        func opening(_ cls: Int8, _ ranges: [ClosedRange<Double>], _ rng: inout SynthRandom) -> Double {
            rng.uniform(ranges[Int(max(cls, 0))])
        }
        // Openings per class (Normal/Mild, Moderate, Severe): separated bands, so the image decides the label.
        let canalRanges = [0.85...1.05, 0.50...0.62, 0.25...0.36]
        let foramenRanges = [0.85...1.05, 0.55...0.68, 0.30...0.40]
        let recessRanges = [0.85...1.05, 0.50...0.62, 0.20...0.30]
        var canalOpening: [Double] = [], foramen: [[Double]] = [[], []], recess: [[Double]] = [[], []]
        for l in 0..<5 { canalOpening.append(opening(labels[l], canalRanges, &rng)) }
        for side in 0..<2 {
            for l in 0..<5 { foramen[side].append(opening(labels[(1 + side) * 5 + l], foramenRanges, &rng)) }
            for l in 0..<5 { recess[side].append(opening(labels[(3 + side) * 5 + l], recessRanges, &rng)) }
        }
        self.canalOpening = canalOpening
        foramenOpening = foramen
        recessOpening = recess
        hydration = SpineAnatomy.discs.map { _ in rng.uniform(0.55...1.0) }
        let phi = junction / radius + tilt
        junctionDirection = (sin(phi), cos(phi))
    }

    // MARK: spine coordinates

    /// Spine coordinates (s, u, x) of a patient-space point.
    @inline(__always)
    func spineCoordinates(_ p: Vec3) -> (s: Double, u: Double, x: Double) {
        let dy = p.y - arcY, dz = p.z - arcZ
        let d = (dy * dy + dz * dz).squareRoot()
        let s = radius * (SpineAnatomy.fastAtan2(dz, -dy) - tilt)
        guard s > junction else { return (s, radius - d, p.x - midline) }
        // Straight part: the radial line through the junction splits the two parts, so both agree on it.
        let (sinPhi, cosPhi) = junctionDirection
        let ey = p.y - (arcY - radius * cosPhi), ez = p.z - (arcZ + radius * sinPhi)
        return (junction + ey * sinPhi + ez * cosPhi, ey * cosPhi - ez * sinPhi, p.x - midline)
    }

    /// Arc length of the thoracolumbar junction (T12/L1 disc), where the lordotic arc ends.
    var junction: Double { discS(-1) }

    /// atan2 to within 1e-7 rad (well under a micrometre of arc here) at a fraction of libm's cost: the
    /// renderer calls it for every sub-sample.
    @inline(__always)
    static func fastAtan2(_ y: Double, _ x: Double) -> Double {
        let ax = abs(x), ay = abs(y)
        guard ax > 0 || ay > 0 else { return 0 }
        let swap = ay > ax
        let t = swap ? ax / ay : ay / ax
        let t2 = t * t
        // Minimax polynomial for atan on [0, 1].
        var a = -0.0040540580
        a = a * t2 + 0.0218612288
        a = a * t2 - 0.0559098861
        a = a * t2 + 0.0964200441
        a = a * t2 - 0.1390853351
        a = a * t2 + 0.1994653599
        a = a * t2 - 0.3332985605
        a = a * t2 + 0.9999993329
        var r = a * t
        if swap { r = Double.pi / 2 - r }
        if x < 0 { r = Double.pi - r }
        return y < 0 ? -r : r
    }

    /// ⌊v⌋ for |v| < 1000 without a libm call (truncation of a positive number is its floor).
    @inline(__always)
    static func floorInt(_ v: Double) -> Int { Int(v + 1000) - 1000 }

    /// The patient-space point at spine coordinates (s, u, x).
    func point(s: Double, u: Double, x: Double) -> Vec3 {
        let phi = min(s, junction) / radius + tilt, d = radius - u
        let onArc = Vec3(midline + x, arcY - d * cos(phi), arcZ + d * sin(phi))
        return s > junction ? onArc + (s - junction) * axis(s: junction) : onArc
    }

    /// The spine's superior axis at arc length `s` (unit, in the sagittal plane).
    func axis(s: Double) -> Vec3 {
        let phi = min(s, junction) / radius + tilt
        return Vec3(0, sin(phi), cos(phi))
    }

    // MARK: label landmarks (level 0...4 = L1/L2 … L5/S1; side 0 = left)

    /// Centre of the disc at `level`, and its superior axis (normal of an axial slice through it).
    func disc(_ level: Int) -> (centre: Vec3, axis: Vec3) {
        (point(s: discS(level), u: 0, x: 0), axis(s: discS(level)))
    }
    /// Centre of the spinal canal at the disc of `level`.
    func canalCentre(_ level: Int) -> Vec3 { point(s: discS(level), u: canalU, x: 0) }
    /// Centre of the neural foramen at `level` on `side`.
    func foramenCentre(_ level: Int, side: Int) -> Vec3 {
        point(s: discS(level) + 4, u: canalU - 2, x: side == 0 ? foramenX : -foramenX)
    }
    /// Centre of the subarticular (lateral) recess at the disc of `level` on `side`.
    func recessCentre(_ level: Int, side: Int) -> Vec3 {
        point(s: discS(level), u: canalU - 0.35 * canalHalfDepth, x: side == 0 ? recessX : -recessX)
    }

    // MARK: tissue

    /// The tissue at `p` and a signal scale (a disc nucleus's hydration; 1 elsewhere).
    func tissue(at p: Vec3) -> (tissue: Tissue, scale: Double) {
        // Torso: an elliptic cylinder along the scanner axis with a subcutaneous fat layer.
        let tx = (p.x - midline) / 165, ty = (p.y - anteriorY - 15) / 115
        let torso = tx * tx + ty * ty
        if torso > 1 { return (.air, 1) }
        if torso > 0.78 { return (.fat, 1) }
        let (s, u, x) = spineCoordinates(p)
        // Spine coordinates mean little far from the spine: there, only soft tissue.
        if abs(u) > 120 || abs(x) > 120 { return (p.y < anteriorY - 45 ? .viscera : .muscle, 1) }

        let t = (l1 - s) / pitch
        let i = min(max(SpineAnatomy.floorInt(t + 0.5), SpineAnatomy.vertebrae.lowerBound), SpineAnatomy.vertebrae.upperBound)
        let ds = s - vertebraS(i)
        let ax = abs(x)
        let hb = bodyHalfHeight, w = bodyHalfWidth, d = bodyHalfDepth

        // Vertebral body (the sacrum continues below S1) and disc.
        let inBodySpan = i == SpineAnatomy.vertebrae.upperBound ? ds <= hb : abs(ds) <= hb
        if inBodySpan {
            let cross = (x / w) * (x / w) + (u / d) * (u / d)
            if cross <= 1 && u <= 0.9 * d {
                let endplate = hb - abs(ds) < 1.2 && !(i == SpineAnatomy.vertebrae.upperBound && ds < 0)
                return (cross > 0.85 || endplate ? .cortex : .marrow, 1)
            }
        } else {
            let k = min(max(ds > 0 ? i - 1 : i, SpineAnatomy.discs.lowerBound), SpineAnatomy.discs.upperBound)
            let dd = s - discS(k)
            let cross = (x / (w + 1)) * (x / (w + 1)) + (u / (d + 1.5)) * (u / (d + 1.5))
            if cross <= 1 && abs(dd) <= discHalfHeight + 0.01 {
                let nucleus = (x / (0.55 * w)) * (x / (0.55 * w)) + (u / (0.5 * d)) * (u / (0.5 * d))
                if nucleus <= 1 && abs(dd) < 0.75 * discHalfHeight {
                    return (.nucleus, hydration[k - SpineAnatomy.discs.lowerBound])
                }
                return (.annulus, 1)
            }
        }

        // The nearest disc decides which stenoses narrow this part of the canal.
        let k = min(max(SpineAnatomy.floorInt(t), SpineAnatomy.discs.lowerBound), SpineAnatomy.discs.upperBound)
        let level = (0..<5).contains(k) ? k : nil
        let side = x >= 0 ? 0 : 1

        // Spinal canal: central part, lateral recesses, cord above the conus; dark ligament where narrowed.
        let a = canalHalfDepth, cw = canalHalfWidth, du = u - canalU
        let envelope = (x / (cw + 5.5)) * (x / (cw + 5.5)) + (du / (a + 3)) * (du / (a + 3))
        if envelope <= 1 {
            let nearDisc = s - discS(k)
            let window = exp(-nearDisc * nearDisc / (2 * SpineAnatomy.stenosisSigma * SpineAnatomy.stenosisSigma))
            let open = level.map { 1 - (1 - canalOpening[$0]) * window } ?? 1
            let cx = x / (cw * open), cu = du / (a * open)
            if cx * cx + cu * cu <= 1 {
                let conus = vertebraS(0)
                if s > conus {
                    let r = 4.2 * min(1, (s - conus) / 12)
                    if x * x + du * du <= r * r { return (.cord, 1) }
                }
                return (.csf, 1)
            }
            let ropen = level.map { 1 - (1 - recessOpening[side][$0]) * window } ?? 1
            let rx = (ax - recessX) / (3.5 * ropen), ru = (du + 0.35 * a) / (3.0 * ropen)
            if rx * rx + ru * ru <= 1 { return (.csf, 1) }
            return (.ligament, 1)
        }
        if du > a + 3 && du < a + 6 && ax < cw + 2 { return (.fat, 1) }

        // Posterior elements: lamina and spinous process around each vertebra's mid-height.
        let lamina = canalU + a + 6
        if u > lamina && u < lamina + 45 && abs(ds) < hb + 1 {
            if (u < lamina + 10 && ax < cw + 12) || ax < 4 { return (.bone, 1) }
        }

        // Pedicles and facets beside the canal, with a neural foramen (fat around the exiting root) at each disc.
        if ax >= cw + 5.5 && ax <= cw + 20 && u >= 0.6 * d && u <= lamina + 4 {
            let fopen = level.map { foramenOpening[side][$0] } ?? 1
            let fs = discS(k) + 4
            let rx = 5.5, ru = 4.5 * fopen, rs = 7 * fopen
            let ex = (ax - foramenX) / rx, eu = (u - (canalU - 2)) / ru, es = (s - fs) / rs
            if ex * ex + eu * eu + es * es <= 1 {
                let qx = (ax - foramenX) / (0.5 * rx), qu = (u - (canalU - 2)) / (0.45 * ru)
                let qs = (s - (fs + 0.6 * rs)) / (0.28 * rs)
                return (qx * qx + qu * qu + qs * qs <= 1 ? .root : .fat, 1)
            }
            return (.bone, 1)
        }

        // Great vessels anterior of the spine (flow voids), viscera further forward, muscle elsewhere.
        let aorta = (x - 15) * (x - 15) + (u + d + 15) * (u + d + 15)
        let cava = (x + 20) * (x + 20) + (u + d + 14) * (u + d + 14)
        if aorta < 100 || cava < 121 { return (.vessel, 1) }
        if p.y < anteriorY - 45 { return (.viscera, 1) }
        return (.muscle, 1)
    }
}
