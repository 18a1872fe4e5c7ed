import Foundation
import XCTest
@testable import Train

final class LevelCropTests: XCTestCase {
    private func model(_ crop: [Int]) throws -> OrdinalClassifier {
        Torch.manualSeed(3)
        var spec = ModelSpec(name: "efficientnet3d", inputSize: [20, 20, 20], width: 0.25)
        spec.levelCrop = crop
        return try spec.make()
    }

    /// A backbone whose one feature is the mean of its input: the level features are then the crops' means.
    private final class MeanBackbone: Module, Backbone {
        var featureCount: Int { 1 }
        func features(_ x: Tensor) throws -> Tensor { try x.mean([1, 2, 3, 4]).reshape([x.shape[0], 1]) }
    }

    /// The five crops are cut at the atlas (centres rounded half up, kept inside the grid), level by level, per sample.
    func testCropsAreCutAtTheAtlasLevelByLevel() throws {
        let levels = try LevelCropBackbone(inner: MeanBackbone(), crop: [2, 4, 2])
        let atlas: [Float] = [5, 2.6, 5, 5, 6, 5, 5, 10.5, 5, 5, 14, 5, 1, 19.7, 8.9]
        try levels.atlas.copy_(try Tensor(atlas, shape: [5, 3]))
        let starts = try levels.cropStarts(grid: [10, 20, 10])
        XCTAssertEqual(starts, [[4, 1, 4], [4, 4, 4], [4, 9, 4], [4, 12, 4], [0, 16, 8]])
        // Two samples, one channel, voxel value = its flat index (+ 10 000 for the second sample).
        let values = (0..<2).flatMap { b in (0..<2000).map { Float($0 + 10_000 * b) } }
        let f = try levels.features(try Tensor(values, shape: [2, 1, 10, 20, 10])).toArray(Float.self)
        func cropMean(_ b: Int, _ s: [Int]) -> Float {
            var sum = 0.0
            for d in s[0]..<(s[0] + 2) { for h in s[1]..<(s[1] + 4) { for w in s[2]..<(s[2] + 2) { sum += Double(values[b * 2000 + (d * 20 + h) * 10 + w]) } } }
            return Float(sum / 16)
        }
        XCTAssertEqual(f, (0..<2).flatMap { b in starts.map { cropMean(b, $0) } })
    }

    /// A classifier with level crops has the shared head: 25 logits in condition-major order.
    func testLevelCropClassifierHasTheSharedHead() throws {
        let m = try model([4, 4, 4])
        XCTAssertTrue(m.head is LevelHead)
        XCTAssertEqual(m.parameterCount - (try model([4, 4, 4])).backbone.parameterCount, 5 * (m.backbone as! LevelCropBackbone).inner.featureCount + 5 + 25 + 50)
        let head = try XCTUnwrap(m.head as? LevelHead)
        // Level features (B = 1, 5 levels × C): level l's features all equal l; condition c's weights pick feature 0.
        let c = (m.backbone as! LevelCropBackbone).inner.featureCount
        try Torch.noGrad {
            try head.condition.weight.copy_(try Tensor((0..<5).flatMap { k in (0..<c).map { $0 == 0 ? Float(k + 1) : 0 } }, shape: [5, c]))
            try head.condition.bias!.copy_(try Tensor.zeros([5]))
        }
        let x = try Tensor((0..<5).flatMap { l in [Float](repeating: Float(l), count: c) }, shape: [1, 5 * c])
        let z = try Torch.noGrad { try head(x) }.toArray(Float.self)
        XCTAssertEqual(z, (0..<5).flatMap { k in (0..<5).map { l in Float((k + 1) * l) } }, "column condition·5 + level")
    }

    /// The atlas is the mean of the studies' spinal keypoints, ignoring absent ones, and names the levels none has.
    func testAtlasIsTheMeanOfPresentSpinalKeypoints() throws {
        let nan = Float.nan
        var a = [Float](repeating: nan, count: 75), b = a
        for l in 0..<5 { a[3 * l] = 1; a[3 * l + 1] = Float(l); a[3 * l + 2] = 2 }
        for l in 0..<4 { b[3 * l] = 3; b[3 * l + 1] = Float(l) + 2; b[3 * l + 2] = 2 }
        let atlas = try LevelAtlas.mean(keypoints: [a, b])
        XCTAssertEqual(Array(atlas[0..<3]), [2, 1, 2])
        XCTAssertEqual(Array(atlas[12..<15]), [1, 4, 2], "L5/S1 only in the first study")
        b[1] = nan
        XCTAssertThrowsError(try LevelAtlas.mean(keypoints: [b])) { XCTAssertTrue("\($0)".contains("L5/S1"), "\($0)") }
    }

    /// level_crops reads back from YAML, and refuses input_crop or input_pool beside it, and grids it does not fit.
    func testConfigurationKeyAndItsChecks() throws {
        let c = try TrainingConfig.parse("level_crops: [16, 12, 12]\n", path: "a.yaml")
        XCTAssertEqual(c.levelCrops, [16, 12, 12])
        XCTAssertEqual(try TrainingConfig.parse(c.yaml, path: "b.yaml"), c)
        XCTAssertEqual(try c.modelSpec(gridSize: [64, 64, 64]).levelCrop, [16, 12, 12])
        XCTAssertThrowsError(try c.modelSpec(gridSize: [64, 10, 64])) { XCTAssertTrue("\($0)".contains("do not fit"), "\($0)") }
        var pooled = c
        pooled.inputPool = 2
        XCTAssertThrowsError(try pooled.modelSpec(gridSize: [64, 64, 64])) { XCTAssertTrue("\($0)".contains("remove input_crop and input_pool"), "\($0)") }
        XCTAssertThrowsError(try TrainingConfig.parse("level_crops: [16, 12]\n", path: "a.yaml")) {
            XCTAssertTrue("\($0)".hasPrefix("a.yaml:1: level_crops: expected three whole numbers"), "\($0)")
        }
    }
}
