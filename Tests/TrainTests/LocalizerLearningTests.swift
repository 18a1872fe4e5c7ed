import Foundation
import Train
import XCTest

/// The localizer learns where the levels are: on a tiny cohort whose five "levels" (bright blobs stacked along h, each
/// level its own brightness) move by up to ±5 voxels between studies, its held-out error falls well below the error of
/// an atlas (the training studies' mean point per level), which is all that level crops had before.
final class LocalizerLearningTests: XCTestCase {
    static let size = 24, studies = 32, held = 8

    /// Volumes (studies, 3, size³) and the blob centres (studies, 5, 3), from a fixed generator.
    static func cohort() throws -> (x: Tensor, points: [Float]) {
        var state: UInt64 = 12345
        func next() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) * 0x1.0p-53
        }
        var volumes = [Float](repeating: 0, count: studies * 3 * size * size * size), points: [Float] = []
        for s in 0..<studies {
            let origin = [12 + 5 * (2 * next() - 1), 3 + 4 * next(), 12 + 5 * (2 * next() - 1)]
            for l in 0..<5 {
                let c = [origin[0], origin[1] + 4 * Double(l), origin[2] + Double(l) * 0.8]
                points += c.map(Float.init)
                let brightness = 0.4 + 0.15 * Double(l)
                for d in 0..<size {
                    for h in 0..<size {
                        for w in 0..<size {
                            let r2 = pow(Double(d) - c[0], 2) + pow(Double(h) - c[1], 2) + pow(Double(w) - c[2], 2)
                            guard r2 < 16 else { continue }
                            let v = Float(brightness * exp(-r2 / 3))
                            for ch in 0..<3 { volumes[((s * 3 + ch) * size + d) * size * size + h * size + w] += v }
                        }
                    }
                }
            }
        }
        return (try Tensor(volumes, shape: [studies, 3, size, size, size]), points)
    }

    func medianError(_ predicted: [Float], _ truth: [Float]) -> Double {
        let e = (0..<(truth.count / 3)).map { i in (0..<3).map { pow(Double(predicted[3 * i + $0] - truth[3 * i + $0]), 2) }.reduce(0, +).squareRoot() }
        return e.sorted()[e.count / 2]
    }

    func testErrorFallsWellBelowTheAtlas() throws {
        Torch.manualSeed(4)
        Torch.threads = 2
        let (x, points) = try Self.cohort()
        let trainCount = Self.studies - Self.held
        let truth = try Tensor(points, shape: [Self.studies, 5, 3])
        let localizer = try LevelLocalizer(width: 4)
        let optimizer = try AdamW(localizer.namedParameters(), learningRate: 5e-3, weightDecay: 0)
        for step in 0..<90 {
            let start = (step * 8) % trainCount
            let xb = try x.narrow(0, start: start, length: 8), tb = try truth.narrow(0, start: start, length: 8)
            optimizer.zeroGrad()
            let loss = try LocalizationLoss()(LevelLocalizer.softArgmax(localizer(xb), gridSize: [Self.size, Self.size, Self.size]), tb)
            try loss.backward()
            try optimizer.step()
        }
        localizer.eval()
        let heldX = try x.narrow(0, start: trainCount, length: Self.held)
        let predicted = try Torch.noGrad {
            try LevelLocalizer.softArgmax(localizer(heldX), gridSize: [Self.size, Self.size, Self.size]).toArray(Float.self)
        }
        let heldTruth = Array(points[(trainCount * 15)...])
        let atlas = (0..<15).map { i in (0..<trainCount).map { Double(points[15 * $0 + i]) }.reduce(0, +) / Double(trainCount) }
        let atlasError = medianError((0..<Self.held).flatMap { _ in atlas.map(Float.init) }, heldTruth)
        let error = medianError(predicted, heldTruth)
        XCTAssertGreaterThan(atlasError, 3, "the levels really move between studies")
        XCTAssertLessThan(error, 0.4 * atlasError, "localizer \(error) voxels against the atlas's \(atlasError)")
    }

    /// The heatmap loss equals the cross-entropy computed cell by cell against the Gaussian at the truth (here in plain
    /// loops), ignores unknown points, and is smallest for the heatmap that is the target itself (its entropy).
    func testHeatmapLossIsTheCrossEntropyAgainstAGaussianAtTheTruth() throws {
        Torch.manualSeed(9)
        let cells = [3, 5, 4], size = [6, 10, 8], sigma = 1.2
        let heat = try Tensor.randn([2, 2] + cells)
        let truth: [Float] = [1.3, 4.0, 6.2, .nan, .nan, .nan, 0.0, 9.0, 3.5, 4.4, 2.2, 0.7]
        let loss = try HeatmapLoss(sigma: sigma)(heat, try Tensor(truth, shape: [2, 2, 3]), gridSize: size).item()
        let logits = try heat.toArray(Float.self).map(Double.init)
        let n = cells.reduce(1, *)
        func gaussian(_ point: Int) -> [Double] {
            var g = [Double](repeating: 0, count: n)
            for d in 0..<cells[0] { for h in 0..<cells[1] { for w in 0..<cells[2] {
                var e = 0.0
                for (a, i) in [d, h, w].enumerated() {
                    let c = (Double(truth[3 * point + a]) + 0.5) * Double(cells[a]) / Double(size[a]) - 0.5
                    e += pow(Double(i) - c, 2)
                }
                g[(d * cells[1] + h) * cells[2] + w] = exp(-e / (2 * sigma * sigma))
            } } }
            let sum = g.reduce(0, +)
            return g.map { $0 / sum }
        }
        var expected = 0.0, entropy = 0.0
        let known = [0, 2, 3]
        for point in known {
            let row = Array(logits[(point * n)..<(point * n + n)])
            let m = row.max()!, lse = m + log(row.map { exp($0 - m) }.reduce(0, +))
            let g = gaussian(point)
            expected -= zip(g, row).map { $0 * ($1 - lse) }.reduce(0, +)
            entropy -= g.filter { $0 > 0 }.map { $0 * log($0) }.reduce(0, +)
        }
        expected /= Double(known.count)
        entropy /= Double(known.count)
        XCTAssertEqual(loss, expected, accuracy: 1e-4 * expected)
        // The target itself as logits: the loss is the target's entropy, below the random heatmap's.
        var targetLogits = [Float](repeating: 0, count: 4 * n)
        for point in known { for (k, g) in gaussian(point).enumerated() { targetLogits[point * n + k] = Float(log(max(g, 1e-30))) } }
        let best = try HeatmapLoss(sigma: sigma)(try Tensor(targetLogits, shape: [2, 2] + cells), try Tensor(truth, shape: [2, 2, 3]), gridSize: size).item()
        XCTAssertEqual(best, entropy, accuracy: 1e-3)
        XCTAssertLessThan(best, loss)
    }

    /// Both losses mask absent keypoints with tensor ops: a NaN coordinate drops that coordinate from the absolute error
    /// and its whole point from the heatmap loss; a point far outside the grid puts all its target on the nearest cell.
    func testTheLossesMaskAbsentPointsAndTargetTheNearestCellOutsideTheGrid() throws {
        let points = try Tensor([Float(1), 2, 3, 4, 5, 6], shape: [1, 2, 3])
        // Known coordinates: |1 − 0| + |2 − 4| + |4 − 4| + |6 − 9| = 6 over 4.
        XCTAssertEqual(try LocalizationLoss()(points, try Tensor([Float(0), 4, .nan, 4, .nan, 9], shape: [1, 2, 3])).item(), 1.5)
        XCTAssertEqual(try LocalizationLoss()(points, try Tensor([Float](repeating: .nan, count: 6), shape: [1, 2, 3])).item(), 0)

        // Three points on a 1 × 1 × 4 grid of cells (one voxel each): w = 40 (beyond the last cell), w = −30 (before the
        // first), and one with a NaN coordinate. Each heatmap's logits are 0, 1, 2, 3 along w.
        let heat = try Tensor((0..<3).flatMap { _ in [Float(0), 1, 2, 3] }, shape: [3, 1, 1, 1, 4])
        let truth = try Tensor([Float(0), 0, 40, 0, 0, -30, 0, .nan, 1], shape: [3, 1, 3])
        let lse = Foundation.log([0.0, 1, 2, 3].map(Foundation.exp).reduce(0, +))
        let loss = try HeatmapLoss(sigma: 1)(heat, truth, gridSize: [1, 1, 4]).item()
        XCTAssertEqual(loss, ((lse - 3) + (lse - 0)) / 2, accuracy: 1e-6)
    }
}
