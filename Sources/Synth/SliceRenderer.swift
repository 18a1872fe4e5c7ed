import Foundation
import Ingest

/// Renders one image plane of a `SpineAnatomy` the way an MR scanner would see it: tissue signal
/// averaged through the slice thickness (partial volume), a smooth coil-sensitivity shading, gain,
/// and Rician noise, quantised to 12-bit unsigned pixels.
struct SliceRenderer {
    /// Signal of the brightest tissue (pixel value before noise).
    var gain: Double
    /// Noise standard deviation as a fraction of `gain`.
    var noise: Double
    /// Direction and wavelength (mm) of the coil-sensitivity shading, and its depth (fraction).
    var shadingDirection: Vec3, shadingWavelength: Double, shadingDepth: Double

    /// Sub-samples across the slice thickness, as fractions of it (centred on the plane).
    static let throughPlane: [Double] = [-1.0 / 3, 0, 1.0 / 3]
    /// Largest value of a 12-bit pixel.
    static let maxValue = 4095.0

    /// Renderer settings drawn from `rng`.
    init(rng: inout SynthRandom) {
        gain = rng.uniform(1800...2800).rounded()
        noise = rng.uniform(0.015...0.03)
        let angle = rng.uniform(0...(2 * Double.pi))
        shadingDirection = Vec3(cos(angle), sin(angle) * 0.7, sin(angle) * 0.7).normalized
        shadingWavelength = rng.uniform(400...700)
        shadingDepth = rng.uniform(0.05...0.12)
    }

    /// 4096 standard-normal quantiles: noise is drawn by table look-up (Box–Muller's log, sin and
    /// cos per pixel cost more than the anatomy); 12 random bits per value are plenty for image noise.
    static let normalTable: [Double] = (0..<4096).map { i in inverseNormalCDF((Double(i) + 0.5) / 4096) }

    /// Φ⁻¹(p) by bisection on erfc: only used to build `normalTable`.
    static func inverseNormalCDF(_ p: Double) -> Double {
        var lo = -10.0, hi = 10.0
        for _ in 0..<80 {
            let mid = (lo + hi) / 2
            if 0.5 * erfc(-mid / 2.0.squareRoot()) < p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// The pixels of plane `g` (row-major), noise drawn from `rng`.
    func render(_ g: SliceGeometry, anatomy: SpineAnatomy, contrast: SynthContrast, rng: inout SynthRandom) -> [UInt16] {
        let signals = contrast.signals
        let normal = g.normal
        let offsets = SliceRenderer.throughPlane.map { ($0 * g.thickness) * normal }
        let sigma = noise * gain
        var out = [UInt16](repeating: 0, count: g.rows * g.columns)
        let dc = g.columnSpacing * g.rowDirection, dr = g.rowSpacing * g.columnDirection
        let k = 2 * Double.pi / shadingWavelength
        // The shading is a sine of a linear function of the column: step it by rotation, not sin().
        let step = k * dc.dot(shadingDirection)
        let cosStep = cos(step), sinStep = sin(step)
        SliceRenderer.normalTable.withUnsafeBufferPointer { normals in
            for r in 0..<g.rows {
                let rowStart = g.position + Double(r) * dr
                let phase = k * rowStart.dot(shadingDirection)
                var sinPhase = sin(phase), cosPhase = cos(phase)
                for c in 0..<g.columns {
                    let p = rowStart + Double(c) * dc
                    var value = 0.0
                    for o in offsets {
                        let (tissue, scale) = anatomy.tissue(at: p + o)
                        value += Double(signals[tissue.rawValue]) * scale
                    }
                    value /= Double(offsets.count)
                    let clean = value * (1 + shadingDepth * sinPhase) * gain
                    (sinPhase, cosPhase) = (sinPhase * cosStep + cosPhase * sinStep, cosPhase * cosStep - sinPhase * sinStep)
                    let bits = rng.next()
                    let n1 = normals[Int(bits & 4095)], n2 = normals[Int((bits >> 12) & 4095)]
                    let magnitude = ((clean + sigma * n1) * (clean + sigma * n1) + (sigma * n2) * (sigma * n2)).squareRoot()
                    out[r * g.columns + c] = UInt16(min(magnitude + 0.5, SliceRenderer.maxValue))
                }
            }
        }
        return out
    }
}
