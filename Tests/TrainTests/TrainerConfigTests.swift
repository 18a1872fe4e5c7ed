import Config
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

    func testTheHelpNamesEveryKeyTheResolvedYAMLWrites() throws {
        // Both come from one key table: every key written back (two_stage's mapping included) is described.
        var section = "", written: [String] = []
        for line in TrainingConfig().yaml.split(separator: "\n") where !line.hasPrefix("#") {
            let key = String(line.split(separator: ":")[0])
            if key.hasPrefix("  ") { written.append(section + "." + key.trimmingCharacters(in: .whitespaces)) } else { section = key; written.append(key) }
        }
        let described = TrainingConfig.keyHelp.map { String($0.trimmingCharacters(in: .whitespaces).split(separator: ":")[0]) }
        // The defaults leave out only the keys without a value (variant, width, the other model inputs).
        XCTAssertEqual(described.filter { !written.contains($0) }, ["variant", "width", "input_crop", "level_crops"])
        XCTAssertEqual(written.filter { !described.contains($0) }, [])
        XCTAssertEqual(described.count, 56)
        XCTAssertTrue(written.contains("two_stage.condition_points"), "\(written)")
        XCTAssertEqual(try TrainingConfig.parse("two_stage:\n  condition_points: false\n", path: "t.yaml").twoStage?.conditionPoints, false)
        XCTAssertEqual(try TrainingConfig.parse("epochs: 3\n", path: "t.yaml").twoStage?.conditionPoints, true)
        XCTAssertThrowsError(try TrainingConfig.parse("two_stage:\n  condition_points: 3\n", path: "t.yaml")) { error in
            XCTAssertTrue("\(error)".contains("t.yaml") && "\(error)".contains("condition_points"), "\(error)")
        }
        // Source crops: on by default (5 slices of 24² pixels of 1 mm, the recesses' from the slices), read strictly.
        let sourceDefaults = try XCTUnwrap(try TrainingConfig.parse("epochs: 3\n", path: "t.yaml").twoStage?.layout().sourceCrops)
        XCTAssertEqual([sourceDefaults.slices, sourceDefaults.size], [5, 24])
        XCTAssertEqual(sourceDefaults.millimetres, 1)
        let smaller = try TrainingConfig.parse("two_stage:\n  source_slices: 3\n  source_crop_size: 16\n  source_crop_mm: 0.7\n", path: "t.yaml")
        XCTAssertEqual(try smaller.twoStage?.layout().sourceCrops, try SourceCrops(slices: 3, size: 16, millimetres: 0.7, groups: [2]))
        XCTAssertNil(try TrainingConfig.parse("two_stage:\n  source_crops: false\n", path: "t.yaml").twoStage?.layout().sourceCrops)
        XCTAssertEqual(try TrainingConfig.parse("two_stage:\n  source_crop_groups: [subarticular, spinal]\n", path: "t.yaml").twoStage?.layout().sourceCrops?.groups, [0, 2])
        XCTAssertEqual(sourceDefaults.groups, [2], "the recesses alone from the slices")
        XCTAssertEqual(try TrainingConfig.parse("epochs: 3\n", path: "t.yaml").sourceChannels, [2], "the axial T2's slices alone")
        XCTAssertEqual(try TrainingConfig.parse("two_stage:\n  source_crop_groups: [spinal, foraminal]\n", path: "t.yaml").sourceChannels, [0, 1])
        XCTAssertFalse(try TrainingConfig.parse("two_stage:\n  source_crops: false\n", path: "t.yaml").readsSourcePixels)
        for bad in ["source_crop_mm: 0", "source_crop_mm: 12", "source_slices: 0", "source_slices: 4", "source_crop_size: 2", "source_crops: 1.5",
                    "source_crop_groups: [lumbar]", "source_crop_groups: [spinal, spinal]", "source_crop_groups: spinal"] {
            XCTAssertThrowsError(try TrainingConfig.parse("two_stage:\n  \(bad)\n", path: "t.yaml"), bad) { error in
                XCTAssertTrue("\(error)".contains("t.yaml") && "\(error)".contains(String(bad.split(separator: ":")[0])), "\(error)")
            }
        }
        XCTAssertEqual(try TrainingConfig.parse("bucket_mb: 0.5\n", path: "t.yaml").bucketMegabytes, 0.5)
        XCTAssertThrowsError(try TrainingConfig.parse("bucket_mb: 0\n", path: "t.yaml"))
        XCTAssertTrue(TrainingConfig.keyHelp.contains("  optimizer.lr: peak learning rate [number > 0]"), "\(TrainingConfig.keyHelp)")
    }

    func testTheDeviceIsParsedOnceAndPlainCUDAStaysEachRanksOwnGPU() throws {
        let plain = try TrainingConfig.parse("device: cuda\n", path: "t.yaml")
        XCTAssertEqual(plain.device.device, .cuda(0))
        XCTAssertEqual(plain.device.onLocalRank(3).device, .cuda(3))
        XCTAssertTrue(plain.yaml.contains("device: cuda\n"), plain.yaml)
        XCTAssertEqual(try TrainingConfig.parse(plain.yaml, path: "resolved.yaml").device, plain.device)
        let pinned = try TrainingConfig.parse("device: cuda:1\n", path: "t.yaml")
        XCTAssertEqual(pinned.device.onLocalRank(3), pinned.device)
        XCTAssertTrue(pinned.yaml.contains("device: cuda:1\n"), pinned.yaml)
        XCTAssertEqual(TrainingConfig().device, DeviceSetting(.cpu))
        XCTAssertThrowsError(try DeviceSetting.parse("tpu")) { error in
            XCTAssertEqual(error as? TrainError, TrainError(.configuration, "--device must be cpu, cuda or cuda:N, not tpu"))
        }
    }

    func testUnknownKeysAndBadValuesNameTheFileAndKey() {
        let cases = [
            ("epochs: 3\nepoch: 4\n", "a.yaml:2: epoch: unknown key"),
            ("optimizer:\n  lr: 0.1\n  momentum: 0.9\n", "a.yaml:3: optimizer.momentum: unknown key; allowed keys under optimizer: lr, weight_decay"),
            ("optimizer:\n  lr: fast\n", "a.yaml:2: optimizer.lr: expected a number > 0, got \"fast\""),
            ("folds: 1\n", "a.yaml:1: folds: expected a whole number ≥ 2, got 1"),
            ("model: resnet\n", "a.yaml:1: model: expected one of efficientnet3d, vit3d, got \"resnet\""),
            ("augmentation:\n  flip: 2\n", "a.yaml:2: augmentation.flip: expected a number ≥ 0 and ≤ 1, got 2"),
            ("bf16: maybe\n", "a.yaml:1: bf16: expected true or false, got \"maybe\""),
            ("class_weights: [1, 2]\n", "a.yaml:1: class_weights: expected three positive numbers"),
            ("- 1\n- 2\n", "a.yaml:1: expected a mapping of keys, got a list"),
            ("input_crop: [32, 40]\n", "a.yaml:1: input_crop: expected three whole numbers"),
            ("input_crop: [32, 40, 0.5]\n", "a.yaml:1: input_crop: expected three whole numbers"),
            ("epochs: 3\nepochs: 4\n", "a.yaml:2: epochs: given twice (first on line 1)"),
            ("device: tpu\n", "a.yaml:1: device: expected cpu, cuda or cuda:N, got \"tpu\""),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try TrainingConfig.parse(text, path: "a.yaml"), text) {
                XCTAssertTrue("\($0)".hasPrefix(expected), "\($0) does not start with \(expected)")
            }
        }
    }

    /// A file read from disk: an unknown nested key and a bad nested value each name the file, the line and the dotted key.
    func testErrorsInAFileNameItsLineAndKeyPath() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trainer-config-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("train.yaml")
        func error(_ text: String) throws -> ConfigError {
            try text.write(to: url, atomically: true, encoding: .utf8)
            do { _ = try TrainingConfig.load(url) } catch let e as ConfigError { return e }
            throw NSError(domain: "accepted:\n\(text)", code: 1)
        }
        let head = "# a run\nmodel: efficientnet3d\nepochs: 3\n\noptimizer:\n  weight_decay: 0.05\n"
        let unknown = try error(head + "  betas: [0.9, 0.99]\n")
        XCTAssertEqual([unknown.path, unknown.key], [url.path, "optimizer.betas"])
        XCTAssertEqual(unknown.line, 7)
        XCTAssertEqual("\(unknown)", "\(url.path):7: optimizer.betas: unknown key; allowed keys under optimizer: lr, weight_decay, beta1, beta2, eps")
        let bad = try error(head + "  lr: abc\n")
        XCTAssertEqual([bad.path, bad.key], [url.path, "optimizer.lr"])
        XCTAssertEqual(bad.line, 7)
        XCTAssertEqual("\(bad)", "\(url.path):7: optimizer.lr: expected a number > 0, got \"abc\"")
        let nested = try error("two_stage:\n  crop: [12, 10, 8]\n\n  jitter: lots\n")
        XCTAssertEqual("\(nested)", "\(url.path):4: two_stage.jitter: expected a number ≥ 0, got \"lots\"")
        let item = try error("augmentation:\n  flip: 0.5\nclass_weights:\n  - 1\n  - two\n  - 4\n")
        XCTAssertEqual("\(item)", "\(url.path):5: class_weights: expected a list of numbers, got \"two\" in it")
        let missing = URL(fileURLWithPath: dir.appendingPathComponent("absent.yaml").path)
        XCTAssertThrowsError(try TrainingConfig.load(missing)) { XCTAssertTrue("\($0)".hasPrefix("\(missing.path): cannot read"), "\($0)") }
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
        for (text, message) in [("two_stage:\n  crops: [1, 2, 3]\n", "x.yaml:2: two_stage.crops: unknown key"),
                                ("level_crops: [16, 12, 12]\ntwo_stage:\n  jitter: 1\n", "x.yaml:2: two_stage: takes the stored grid as it is"),
                                ("two_stage:\n  jitter: -1\n", "x.yaml:2: two_stage.jitter: expected a number ≥ 0, got -1")] {
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
