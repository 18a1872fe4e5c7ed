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
        XCTAssertEqual(c.modelSpec(gridSize: [64, 64, 64]).inputSize, [32, 32, 32])
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
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try TrainingConfig.parse(text, path: "a.yaml"), text) {
                XCTAssertTrue("\($0)".hasPrefix(expected), "\($0) does not start with \(expected)")
            }
        }
    }
}
