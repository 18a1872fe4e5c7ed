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
}
