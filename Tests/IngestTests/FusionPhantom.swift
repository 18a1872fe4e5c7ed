import Foundation
@testable import Ingest

/// A small in-memory study for the fusion tests: a bright Gaussian marker at a known LPS point,
/// seen by a sagittal T1 series, a sagittal T2 series of other spacing and field of view, and an
/// axial T2 series of three oblique stacks with gaps between them.
enum FusionPhantom {
    static let tilt = 10 * Double.pi / 180
    /// The marker: on the middle slice of the first axial stack (z ≈ 20, tilted +10°), 6 mm left, 4 mm down the slice.
    static let marker = Vec3(6, 4 * cos(tilt), 20 + 4 * sin(tilt))

    /// 100 plus a Gaussian of height 1000 and σ = 3 mm around the marker.
    static func intensity(_ p: Vec3) -> Float {
        let d = p - marker
        return Float(100 + 1000 * exp(-d.dot(d) / 18))
    }

    /// A slice whose pixels are `value` at each pixel centre's patient position.
    static func slice(position: Vec3, rowDirection: Vec3, columnDirection: Vec3, spacing: Double, size: Int,
                      instance: Int, value: (Vec3) -> Float = intensity) -> Slice {
        let g = SliceGeometry(position: position, rowDirection: rowDirection, columnDirection: columnDirection,
                              rowSpacing: spacing, columnSpacing: spacing, rows: size, columns: size, thickness: spacing)
        var pixels = [Float](repeating: 0, count: size * size)
        for r in 0..<size { for c in 0..<size { pixels[r * size + c] = value(g.patientPosition(row: Double(r), column: Double(c))) } }
        return Slice(geometry: g, pixels: pixels, instanceNumber: instance, sopInstanceUID: "1.2.\(instance)", source: "phantom/\(instance).dcm")
    }

    /// 12 sagittal slices at x = −22 + 4k (instances 101…112), 81 × 81 pixels of 1 mm over y, z ∈ [−40, 40].
    static func sagittalT1() -> SeriesVolume {
        let slices = (0..<12).map { k in
            slice(position: Vec3(-22 + 4 * Double(k), -40, 40), rowDirection: Vec3(0, 1, 0), columnDirection: Vec3(0, 0, -1),
                  spacing: 1, size: 81, instance: 101 + k)
        }
        return SeriesVolume(seriesID: "1001", kind: .sagittalT1, stacks: [Stack(slices: slices.reversed())])
    }

    /// 10 sagittal slices at x = −19.8 + 4.4k, 57 × 57 pixels of 1.25 mm over y, z ∈ [−35, 35].
    static func sagittalT2() -> SeriesVolume {
        let slices = (0..<10).map { k in
            slice(position: Vec3(-19.8 + 4.4 * Double(k), -35, 35), rowDirection: Vec3(0, 1, 0), columnDirection: Vec3(0, 0, -1),
                  spacing: 1.25, size: 57, instance: 201 + k)
        }
        return SeriesVolume(seriesID: "1002", kind: .sagittalT2, stacks: [Stack(slices: slices)])
    }

    /// Centres and tilts (about the x axis) of the three axial stacks.
    static let axialStacks: [(centre: Vec3, tilt: Double)] = [(Vec3(0, 0, 20), tilt), (Vec3(0, 0, 0), -tilt), (Vec3(0, 0, -20), tilt)]

    /// Unit normal of an axial stack tilted by `angle`.
    static func axialNormal(_ angle: Double) -> Vec3 { Vec3(0, -sin(angle), cos(angle)) }

    /// The marker plus a broad bump around the z axis, so the middle of every axial slice normalizes above 0.
    static func axialIntensity(_ p: Vec3) -> Float {
        intensity(p) + Float(100 * exp(-(p.x * p.x + p.y * p.y) / 800))
    }

    /// Three stacks of 3 slices 4 mm apart (61 × 61 pixels of 1 mm), one per entry of `axialStacks`.
    static func axialT2(value: @escaping (Vec3) -> Float = axialIntensity) -> SeriesVolume {
        let rd = Vec3(1, 0, 0)
        let stacks = axialStacks.enumerated().map { (s, spec) -> Stack in
            let cd = Vec3(0, cos(spec.tilt), sin(spec.tilt)), n = axialNormal(spec.tilt)
            return Stack(slices: (-1...1).map { j in
                let centre = spec.centre + (4 * Double(j)) * n
                return slice(position: centre - 30 * rd - 30 * cd, rowDirection: rd, columnDirection: cd, spacing: 1, size: 61,
                             instance: 301 + 3 * s + j + 1, value: value)
            })
        }
        return SeriesVolume(seriesID: "1003", kind: .axialT2, stacks: stacks)
    }

    /// Labels all missing.
    static let noLabels = [Int8](repeating: -1, count: 25)
}
