import Foundation
import XCTest
@testable import Train

final class TrainerConfigTests: XCTestCase {
    func testYAMLIsReadAndWrittenBackEqual() throws {
        let c = try TrainingConfig.parse("""
        model: efficientnet3d
        width: 0.25
        input_pool: 2
        epochs: 3
        batch_size: 2
        folds: 3
        ema_decay: 0.99
        optimizer:
          lr: 0.003
        schedule:
          warmup_epochs: 0.5
        augmentation:
          flip: 0.5
          affine: 0
        """, path: "a.yaml")
        XCTAssertEqual(c.width, 0.25)
        XCTAssertEqual(c.inputPool, 2)
        XCTAssertEqual(try c.modelSpec(gridSize: [64, 64, 64]).inputSize, [32, 32, 32])
        XCTAssertEqual(c.epochs, 3)
        XCTAssertEqual(c.learningRate, 0.003)
        XCTAssertEqual(c.warmupEpochs, 0.5)
        XCTAssertEqual(c.emaDecay, 0.99)
        XCTAssertEqual(c.augmentation.flip, 0.5)
        XCTAssertEqual(c.augmentation.affine, 0)
        XCTAssertEqual(c.augmentation.rotateDegrees, AugmentationOptions.none.rotateDegrees)
        XCTAssertEqual(try TrainingConfig.parse(c.yaml, path: "b.yaml"), c)
    }

    func testUnknownKeysAndBadValuesNameTheFileAndKey() {
        let cases = [
            ("epochs: 3\nepoch: 4\n", "a.yaml: epoch: unknown key"),
            ("optimizer:\n  lr: 0.1\n  momentum: 0.9\n", "a.yaml: optimizer.momentum: unknown key"),
            ("optimizer:\n  lr: fast\n", "a.yaml: optimizer.lr: must be a number, not fast"),
            ("folds: 1\n", "a.yaml: folds: must be at least 2"),
            ("model: resnet\n", "a.yaml: model: must be one of efficientnet3d, vit3d, not resnet"),
            ("augmentation:\n  flip: 2\n", "a.yaml: augmentation.flip: must be at most 1.0"),
            ("bf16: maybe\n", "a.yaml: bf16: must be true or false"),
            ("class_weights: [1, 2]\n", "a.yaml: class_weights: three positive numbers"),
            ("- 1\n- 2\n", "a.yaml: the top level must be a mapping"),
            ("input_crop: [32, 40]\n", "a.yaml: input_crop: must be three whole numbers"),
            ("input_crop: [32, 40, 0.5]\n", "a.yaml: input_crop: must be three whole numbers"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try TrainingConfig.parse(text, path: "a.yaml"), text) {
                XCTAssertTrue("\($0)".hasPrefix(expected), "\($0) does not start with \(expected)")
            }
        }
    }

    /// The crop is centred, taken before the pool, round-trips through YAML, and refuses grids it does not fit.
    /// Two stages are the default; their settings are read strictly, written back, and refused beside another model input.
    func testTwoStageIsTheDefaultAndReadStrictly() throws {
        XCTAssertEqual(try TrainingConfig.parse("", path: "e.yaml").twoStage, TwoStageConfig())
        let c = try TrainingConfig.parse("two_stage:\n  crop: [12, 10, 8]\n  jitter: 3\n  localizer_pool: [2, 2, 2]\n", path: "t.yaml")
        XCTAssertEqual(c.twoStage?.crop, [12, 10, 8])
        XCTAssertEqual(c.twoStage?.jitter, 3)
        XCTAssertEqual(try c.modelSpec(gridSize: [32, 32, 32]).twoStage?.pool, [2, 2, 2])
        XCTAssertEqual(try TrainingConfig.parse(c.yaml, path: "again.yaml"), c)
        XCTAssertNil(try TrainingConfig.parse("two_stage: false", path: "f.yaml").twoStage)
        XCTAssertNil(try TrainingConfig.parse("level_crops: [16, 12, 12]", path: "l.yaml").twoStage, "another model input turns it off")
        XCTAssertEqual(try TrainingConfig.parse("two_stage: false", path: "f.yaml").yaml.contains("two_stage: false"), true)
        for (text, message) in [("two_stage:\n  crops: [1, 2, 3]\n", "x.yaml: two_stage.crops: unknown key"),
                                ("level_crops: [16, 12, 12]\ntwo_stage:\n  jitter: 1\n", "x.yaml: two_stage: takes the stored grid as it is"),
                                ("two_stage:\n  jitter: -1\n", "x.yaml: two_stage.jitter: must be at least")] {
            XCTAssertThrowsError(try TrainingConfig.parse(text, path: "x.yaml")) { XCTAssertTrue("\($0)".hasPrefix(message), "\($0)") }
        }
    }

    func testInputCropIsCentredThenPooled() throws {
        let c = try TrainingConfig.parse("input_crop: [2, 4, 2]\ninput_pool: 2\n", path: "a.yaml")
        XCTAssertEqual(c.inputCrop, [2, 4, 2])
        XCTAssertEqual(try TrainingConfig.parse(c.yaml, path: "b.yaml"), c)
        XCTAssertEqual(try c.inputSize(gridSize: [4, 6, 4]), [1, 2, 1])
        XCTAssertThrowsError(try c.inputSize(gridSize: [4, 3, 4])) { XCTAssertTrue("\($0)".contains("does not fit"), "\($0)") }
        // One sample, one channel, a 4×6×4 grid holding its own flat index: the centre 2×4×2 is d 1–2, h 1–4, w 1–2.
        let grid = try Tensor((0..<96).map(Float.init), shape: [1, 1, 4, 6, 4])
        let x = try c.modelInput(grid, device: .cpu)
        XCTAssertEqual(x.shape, [1, 1, 1, 2, 1])
        func v(_ d: Int, _ h: Int, _ w: Int) -> Float { Float(d * 24 + h * 4 + w) }
        let expected = [1...2, 3...4].map { hs in
            (1...2).flatMap { d in hs.flatMap { h in (1...2).map { w in v(d, h, w) } } }.reduce(0, +) / 8
        }
        XCTAssertEqual(try x.toArray(Float.self), expected)
        var noPool = c
        noPool.inputPool = 1
        let y = try noPool.modelInput(grid, device: .cpu)
        XCTAssertEqual(y.shape, [1, 1, 2, 4, 2])
        XCTAssertEqual(try y.toArray(Float.self).first, v(1, 1, 1))
        XCTAssertEqual(try y.toArray(Float.self).last, v(2, 4, 2))
    }
}
