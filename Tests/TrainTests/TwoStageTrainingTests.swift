import Foundation
import Shards
import TestSupport
import XCTest
@testable import Train

/// The default two-stage model trained in-process on a cohort with real keypoints (`TrainerCohort.labelled`): what
/// its training path must do, asserted on values. The localizer learns the levels, the crops of a training step sit at
/// the labels' points moved by the jitter, each parameter group is clipped on its own norm, and the conditions' offsets
/// are the training studies' mean.
final class TwoStageTrainingTests: XCTestCase {
    /// The first batch of `studies` studies of a labelled cohort, in study order.
    private func firstBatch(_ folder: URL, size: Int) throws -> Batch {
        var options = LoaderOptions(batchSize: size, shuffle: false, dropLast: false, threads: 1)
        options.sourcePixels = true
        let loader = try ShardLoader(dataset: try ShardDataset(directory: folder), options: options)
        return try XCTUnwrap(try loader.batches(from: LoaderPosition(epoch: 0)).next())
    }

    private func maxAbsDifference(_ a: Tensor, _ b: Tensor) throws -> Double {
        try (a - b).abs().max().item()
    }

    /// A fold of the default model: the localizer's held-out error falls well below the first epoch's (it learns the
    /// levels from the labels, which only a cohort with keypoints can show), and the saved `backbone.offsets` are each
    /// label column's mean offset from its level's canal point over the fold's training studies, computed here.
    func testAFoldLearnsTheLevelsAndKeepsTheTrainingStudiesMeanOffsets() throws {
        let (folder, keypoints) = try TrainerCohort.labelled(studies: 24)
        var config = tinyConfig(epochs: 8)
        config.batchSize = 4
        config.learningRate = 1e-2
        let run = try Fixtures.scratch()
        let trainer = try Trainer(config: config, dataset: try ShardDataset(directory: folder), run: run)
        var errors: [Double] = []
        trainer.onEpoch = { _, record in errors.append(record.localization?.medianMm ?? .nan) }
        try trainer.train(folds: [0])
        XCTAssertEqual(errors.count, 8)
        XCTAssertTrue(errors.allSatisfy(\.isFinite), "\(errors)")
        let late = errors.suffix(2).reduce(0, +) / 2
        XCTAssertLessThan(late, 0.7 * errors[0], "held-out median error by epoch (voxels = mm here): \(errors)")

        // The offsets: the mean over the training studies of each column's point minus its level's canal point,
        // counting only studies where both are known.
        let training = try trainer.split().training(0)
        XCTAssertEqual(training.count, 12)
        var expected = [Double](repeating: 0, count: 75)
        for column in 0..<25 {
            let level = column % 5
            var sum = [0.0, 0.0, 0.0], n = 0
            for id in training.sorted() {
                let k = try XCTUnwrap(keypoints[id])
                let d = (0..<3).map { Double(k[3 * column + $0]) - Double(k[3 * level + $0]) }
                guard d.allSatisfy(\.isFinite) else { continue }
                for a in 0..<3 { sum[a] += d[a] }
                n += 1
            }
            XCTAssertGreaterThan(n, 6, "column \(column)")
            for a in 0..<3 { expected[3 * column + a] = sum[a] / Double(n) }
        }
        let saved = try XCTUnwrap(try SafeTensors.read(run.appendingPathComponent("fold-0/best.safetensors")).tensors["backbone.offsets"])
        XCTAssertEqual(saved.shape, [25, 3])
        let offsets = try saved.toArray(Float.self)
        let worst = (0..<75).max { Swift.abs(Double(offsets[$0]) - expected[$0]) < Swift.abs(Double(offsets[$1]) - expected[$1]) }!
        XCTAssertEqual(Double(offsets[worst]), expected[worst], accuracy: 1e-5, "column \(worst / 3), axis \(worst % 3), of \(offsets)")
        // Not the trivial answer: the foraminal columns sit ~3 voxels to each side of the canal.
        XCTAssertEqual(Double(offsets[3 * 5]), 3, accuracy: 0.5)
        XCTAssertEqual(Double(offsets[3 * 10]), -3, accuracy: 0.5)
    }

    /// A training step's crops sit at the labels' points moved by the jitter (drawn first from libtorch's generator), the
    /// localizer's prediction only where a label has no point; without keypoints (validation, predict) they sit at the
    /// prediction. The localizer's loss averages the labelled points: every label column's with condition points (the
    /// default), the canal's alone without.
    func testATrainingStepCutsTheCropsAtTheJitteredLabels() throws {
        try checkTrainingCrops(conditionPoints: true, terms: 148)
    }

    func testATrainingStepCutsTheCropsAtTheJitteredLevelLabelsWithoutConditionPoints() throws {
        try checkTrainingCrops(conditionPoints: false, terms: 29)
    }

    private func checkTrainingCrops(conditionPoints: Bool, terms expectedTerms: Double) throws {
        let (folder, _) = try TrainerCohort.labelled(studies: 6)
        let batch = try firstBatch(folder, size: 6)
        let x = try batch.volumes.to(.float32, device: .cpu)
        Torch.manualSeed(11)
        var config = tinyConfig(epochs: 1)
        config.twoStage?.conditionPoints = conditionPoints
        let model = try config.modelSpec(gridSize: [16, 16, 16]).make()
        let backbone = try XCTUnwrap(model.backbone as? TwoStageBackbone)
        XCTAssertEqual(backbone.layout.jitter, 2)
        XCTAssertEqual(backbone.layout.conditionPoints, conditionPoints)
        let count = conditionPoints ? 25 : 5
        // Training mode (an untrained network under its initial running statistics reads every crop alike): BatchNorm
        // normalises each batch, and dropout and stochastic depth draw from the generator, so every forward here starts
        // from one seed and draws what the step draws before its crops (the jitter) first.
        model.train()
        let seed: UInt64 = 3
        try Torch.noGrad {
            let labelled = try batch.keypoints.narrow(1, start: 0, length: count).contiguous()
            let labelledValues = try labelled.toArray(Float.self)
            XCTAssertEqual(labelledValues.filter(\.isNaN).count, conditionPoints ? 6 : 3,
                           "study 5 has no L3/L4 canal point (and study 3 no left L3/L4 foraminal one)")
            let predicted = try backbone.locateWithHeatmaps(x).points
            XCTAssertEqual(predicted.shape, [6, count, 3])
            let predictedValues = try predicted.toArray(Float.self)
            Torch.manualSeed(seed)
            let trained = try backbone.forward(ModelInput(x, keypoints: batch.keypoints, sources: batch.sources))
            Torch.manualSeed(seed)
            let shift = try Tensor.rand([6, count, 3]).toArray(Float.self)
            func featuresAfterTheJitterDraw(at points: [Float]) throws -> Tensor {
                Torch.manualSeed(seed)
                _ = try Tensor.rand([6, count, 3])
                return try backbone.cropFeatures(x, points: try Tensor(points, shape: [6, count, 3]), sources: batch.sources).0
            }
            let guide = (0..<(18 * count)).map { i in labelledValues[i].isNaN ? predictedValues[i] : labelledValues[i] + (shift[i] * 2 - 1) * 2 }
            XCTAssertGreaterThan(zip(guide, labelledValues).map { $1.isNaN ? 0 : Swift.abs($0 - $1) }.max()!, 1, "the jitter moves the crops")
            XCTAssertLessThan(try maxAbsDifference(trained.features, try featuresAfterTheJitterDraw(at: guide)), 1e-5)
            XCTAssertGreaterThan(try maxAbsDifference(trained.features, try featuresAfterTheJitterDraw(at: predictedValues)), 1e-3,
                                 "the crops sit at the localizer's points")
            let unjittered = zip(labelledValues, predictedValues).map { $0.isNaN ? $1 : $0 }
            XCTAssertGreaterThan(try maxAbsDifference(trained.features, try featuresAfterTheJitterDraw(at: unjittered)), 1e-3,
                                 "the crops sit at the labels unmoved")
            let terms = try XCTUnwrap(trained.extraLosses.first { $0.name == TwoStageBackbone.localizationLoss }).terms
            XCTAssertEqual(try terms.item(), expectedTerms, "the labelled points")
            // Every label column's located point: the localizer's own with condition points, else its level's plus the offset.
            let columns = try XCTUnwrap(trained.located).columns
            XCTAssertEqual(columns.shape, [6, 25, 3])
            if conditionPoints { XCTAssertLessThan(try maxAbsDifference(columns, predicted), 1e-6) }

            Torch.manualSeed(seed)
            let evaluated = try backbone.forward(ModelInput(x, sources: batch.sources))
            XCTAssertTrue(evaluated.extraLosses.isEmpty)
            // The cohort's slices are every other plane of the grid: every recess crop is read from them (none falls back);
            // the canal's and the foramina's are the grid's (the default groups).
            let fromSlices = try XCTUnwrap(evaluated.located?.fromSlices).to(.float32).toArray(Float.self)
            let perStudy = [Float](repeating: 0, count: 15) + [Float](repeating: 1, count: 10)
            XCTAssertEqual(fromSlices, Array((0..<6).map { _ in perStudy }.joined()))
            Torch.manualSeed(seed)
            let atPrediction = try backbone.cropFeatures(x, points: predicted, sources: batch.sources).0
            XCTAssertLessThan(try maxAbsDifference(evaluated.features, atPrediction), 1e-5)
        }
    }

    /// Gradient norms of `model`'s parameter groups (the localizer, then the rest), from the gradients left by a step.
    private func groupNorms(_ model: OrdinalClassifier) throws -> [String: Double] {
        var norms: [String: Double] = [:]
        for (group, members) in model.parameterGroups.partition(model.namedParameters()) {
            norms[group.name] = try members.compactMap(\.1.grad).map { try $0.square().sum().item() }.reduce(0, +).squareRoot()
        }
        return norms
    }

    /// Clipping is per stage: each parameter group's gradient is clipped to the limit on its own norm (so the
    /// localizer's large early gradients do not shrink the classifier's step, nor the reverse).
    func testEachStageIsClippedOnItsOwnNorm() throws {
        let (folder, _) = try TrainerCohort.labelled(studies: 4)
        let batch = try firstBatch(folder, size: 4)
        Torch.manualSeed(5)
        let model = try tinyConfig(epochs: 1).modelSpec(gridSize: [16, 16, 16]).make()
        XCTAssertEqual(model.parameterGroups.map(\.name), ["localizer", "model"])
        model.train()
        func step(clip: Double?) throws -> [String: Double] {
            // Rate 0: the weights stay, so both steps see the same model; the same seed: the same jitter.
            let optimizer = try AdamW(model.namedParameters(), learningRate: 0, weightDecay: 0)
            let step = TrainingStep(model: model, optimizer: optimizer, clipNorm: clip)
            Torch.manualSeed(8)
            try step(batch.volumes, labels: batch.labels, keypoints: batch.keypoints, sources: batch.sources)
            return try groupNorms(model)
        }
        let raw = try step(clip: nil)
        let limit = 1e-3
        XCTAssertEqual(raw.count, 2)
        for (name, norm) in raw { XCTAssertGreaterThan(norm, 20 * limit, name) }
        // Not equal to each other: one norm over both would leave them in their raw ratio, below the limit.
        XCTAssertGreaterThan(max(raw["localizer"]!, raw["model"]!) / min(raw["localizer"]!, raw["model"]!), 1.5, "\(raw)")
        let clipped = try step(clip: limit)
        for (name, norm) in clipped { XCTAssertEqual(norm, limit, accuracy: 1e-3 * limit, "\(name): raw \(raw[name]!)") }
    }
}
