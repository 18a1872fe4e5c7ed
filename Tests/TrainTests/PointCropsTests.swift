import Foundation
import Train
import XCTest

/// Crops at given points equal an independent trilinear resampling of the grid at those points.
final class PointCropsTests: XCTestCase {
    /// A 2-channel 7 × 9 × 8 grid of known, non-linear values.
    static let shape = [7, 9, 8]
    static func value(_ c: Int, _ d: Int, _ h: Int, _ w: Int) -> Float {
        Float(c * 1000 + d * d * 7 + h * 13 + (w * w) % 11) + Float(d * h * w % 5) * 0.25
    }

    /// Trilinear interpolation written out: the eight neighbours of `p`, each voxel's `value` weighted by its distance;
    /// neighbours outside the grid count 0.
    static func interpolate(_ p: [Double], _ value: (Int, Int, Int) -> Double) -> Double {
        let lo = p.map { Int($0.rounded(.down)) }
        var sum = 0.0
        for corner in 0..<8 {
            let offset = [(corner >> 2) & 1, (corner >> 1) & 1, corner & 1]
            let idx = (0..<3).map { lo[$0] + offset[$0] }
            let weight = (0..<3).map { a in offset[a] == 1 ? p[a] - Double(lo[a]) : 1 - (p[a] - Double(lo[a])) }.reduce(1, *)
            guard weight > 0, (0..<3).allSatisfy({ idx[$0] >= 0 && idx[$0] < shape[$0] }) else { continue }
            sum += weight * value(idx[0], idx[1], idx[2])
        }
        return sum
    }

    /// The grid's channel `c` resampled at `p` (0 outside the grid).
    static func resample(_ c: Int, _ p: [Double]) -> Double { interpolate(p) { Double(value(c, $0, $1, $2)) } }

    func testCropsEqualAnIndependentResamplingAtThePoints() throws {
        var values: [Float] = []
        for s in 0..<2 {
            for c in 0..<2 {
                for d in 0..<7 { for h in 0..<9 { for w in 0..<8 { values.append(Self.value(c, d, h, w) + Float(s) * 0.5) } } }
            }
        }
        let x = try Tensor(values, shape: [2, 2] + Self.shape)
        // Sample 0: two interior points; sample 1: one at a voxel centre, one half outside the grid (zeros there).
        let points: [Float] = [3.3, 4.6, 2.25, 2.5, 6.1, 5.7, 3, 4, 4, 0.4, 0.2, 7.6]
        let crops = try PointCrops(size: [3, 2, 4], scale: 0.75)
        let out = try crops(x, points: try Tensor(points, shape: [2, 2, 3]))
        XCTAssertEqual(out.shape, [4, 2, 3, 2, 4])  // (levels · B) level-major, C, crop
        let got = try out.toArray(Float.self)
        var worst = 0.0
        for level in 0..<2 {
            for s in 0..<2 {
                let centre = (0..<3).map { Double(points[6 * s + 3 * level + $0]) }
                for c in 0..<2 {
                    for i in 0..<3 {
                        for j in 0..<2 {
                            for k in 0..<4 {
                                let at = [i, j, k].enumerated().map { a, n in centre[a] + (Double(n) - Double(crops.size[a] - 1) / 2) * 0.75 }
                                var expected = Self.resample(c, at)
                                // The per-sample offset 0.5, interpolated with the same weights (0 outside).
                                expected += 0.5 * Double(s) * Self.coverage(at)
                                let index = ((((level * 2 + s) * 2 + c) * 3 + i) * 2 + j) * 4 + k
                                worst = max(worst, abs(Double(got[index]) - expected))
                            }
                        }
                    }
                }
            }
        }
        XCTAssertLessThan(worst, 1e-3)
        // A crop voxel at a voxel centre is that voxel exactly: sample 1, level 0 at (3, 4, 4) with an odd crop.
        let exact = try PointCrops(size: [1, 1, 1], scale: 1)(x, points: try Tensor(points, shape: [2, 2, 3])).toArray(Float.self)
        XCTAssertEqual(exact[2 * 1 + 0], Self.value(0, 3, 4, 4) + 0.5)
    }

    /// The interpolation weight inside the grid at `p` (1 inside, less where neighbours fall outside).
    static func coverage(_ p: [Double]) -> Double { interpolate(p) { _, _, _ in 1 } }

    /// A mirrored crop samples c − (i − (D − 1)/2) · scale along d: the unmirrored crop reversed along d.
    func testMirroredCropsRunAlongMinusD() throws {
        var values: [Float] = []
        for c in 0..<2 { for d in 0..<7 { for h in 0..<9 { for w in 0..<8 { values.append(Self.value(c, d, h, w)) } } } }
        let x = try Tensor(values, shape: [1, 2] + Self.shape)
        let points = try Tensor([Float(3.3), 4.6, 2.25], shape: [1, 1, 3])
        let crops = try PointCrops(size: [4, 2, 3], scale: 0.8)
        let plain = try crops(x, points: points).toArray(Float.self), mirrored = try crops(x, points: points, mirrored: true).toArray(Float.self)
        for c in 0..<2 { for i in 0..<4 { for j in 0..<2 { for k in 0..<3 {
            let at = [3.3 - (Double(i) - 1.5) * 0.8, 4.6 + (Double(j) - 0.5) * 0.8, 2.25 + (Double(k) - 1) * 0.8]
            let m = mirrored[((c * 4 + i) * 2 + j) * 3 + k], p = plain[((c * 4 + (3 - i)) * 2 + j) * 3 + k]
            XCTAssertEqual(Double(m), Self.resample(c, at), accuracy: 1e-3)
            XCTAssertEqual(m, p, accuracy: 1e-3)
        } } } }
    }

    /// Side crops: the head reads each side's features as (spinal, foramen, recess) with one Linear, the spinal logit
    /// the mean of the two sides'; columns in RSNA order (left before right); a left-right mirrored volume with its
    /// points mirrored gives the same logits with left and right columns swapped.
    func testSideCropModelSwapsSidesUnderAMirror() throws {
        try swapsSidesUnderAMirror(try TwoStageLayout(crops: PointCrops(size: [6, 8, 8]), localizerWidth: 2, sideShift: 1.5))
    }

    /// Condition crops (one per label column at its condition's point, the right side's mirrored): the same symmetry,
    /// with offsets whose left and right columns mirror each other.
    func testConditionCropModelSwapsSidesUnderAMirror() throws {
        try swapsSidesUnderAMirror(try TwoStageLayout(crops: PointCrops(size: [4, 6, 6]), localizerWidth: 2, conditionCrops: true))
    }

    func swapsSidesUnderAMirror(_ layout: TwoStageLayout) throws {
        Torch.manualSeed(3)
        var spec = ModelSpec(name: "efficientnet3d", inputSize: [16, 16, 16], width: 0.25)
        spec.twoStage = layout
        let model = try spec.make()
        model.eval()
        let backbone = try XCTUnwrap(model.backbone as? TwoStageBackbone)
        let head = try XCTUnwrap(model.head as? CropKindHead)
        XCTAssertEqual(head.crops, layout.conditionCrops ? .conditions : .sides)
        XCTAssertEqual(backbone.featureCount, 5 * layout.cropsPerLevel * backbone.inner.featureCount)
        // Offsets (voxels) of each column from its level's point: left (+d) and right (−d) mirror each other.
        var offsets = [Float](repeating: 0, count: 75)
        for level in 0..<5 {
            for (column, d) in [(5, Float(3.5)), (10, -3.5), (15, 1.5), (20, -1.5)] {
                offsets[3 * (column + level)] = d
                offsets[3 * (column + level) + 1] = -1
                offsets[3 * (column + level) + 2] = 0.5
            }
            offsets[3 * level + 2] = 0.25
        }
        try Torch.noGrad { try backbone.offsets.copy_(try Tensor(offsets, shape: [25, 3])) }
        let x = try Tensor.rand([1, 3, 16, 16, 16])
        var points: [Float] = [], mirroredPoints: [Float] = []
        for l in 0..<5 {
            // The mirror of d (0…15) is 15 − d; the mid-plane here is 7.5, so points move from 7.5 + δ to 7.5 − δ.
            let delta = Float(l) * 0.3, h = Float(3 + 2 * l)
            points += [7.5 + delta, h, 8]
            mirroredPoints += [7.5 - delta, h, 8]
        }
        // The crops sit at the input's keypoints (the levels' points, then the other 20 columns, which only the
        // localizer's loss reads).
        func guidedLogits(_ x: Tensor, _ levels: [Float]) throws -> [Float] {
            let keypoints = try Tensor(levels + [Float](repeating: .nan, count: 60), shape: [1, 25, 3])
            return try Torch.noGrad { try model.forward(ModelInput(x, keypoints: keypoints)).logits }.toArray(Float.self)
        }
        let logits = try guidedLogits(x, points)
        let swapped = try guidedLogits(try x.flip([2]), mirroredPoints)
        // Columns: spinal 0–4, left foramen 5–9, right foramen 10–14, left recess 15–19, right recess 20–24.
        let swap = Array(0..<5) + Array(10..<15) + Array(5..<10) + Array(20..<25) + Array(15..<20)
        let bias = try head.bias.toArray(Float.self)
        for k in 0..<25 {
            // The per-column bias is not mirrored: compare without it.
            XCTAssertEqual(swapped[swap[k]] - bias[swap[k]], logits[k] - bias[k], accuracy: 1e-4, "column \(k)")
        }
    }
}
