import Foundation
import Shards
import TestSupport
import XCTest
@testable import Train

/// A tiny model on a tiny cohort: EfficientNet-3D at width 0.25 on 16³ grids.
func tinyConfig(epochs: Int, folds: Int = 2) -> TrainingConfig {
    var c = TrainingConfig()
    c.width = 0.25
    c.epochs = epochs
    c.folds = folds
    c.batchSize = 2
    c.threads = 1
    c.loaderThreads = 1
    c.learningRate = 3e-3
    c.warmupEpochs = 0.5
    // Source crops small enough for 16³ grids of 1 mm voxels: 3 slices of 8 × 8 pixels of 1.5 mm.
    c.twoStage?.sourceSlices = 3
    c.twoStage?.sourceCropSize = 8
    c.twoStage?.sourceCropMm = 1.5
    return c
}

final class TrainerTests: XCTestCase {
    func testAFoldTrainsValidatesAndWritesItsFiles() throws {
        let shards = try TrainerCohort.make(studies: 12, keypoints: true)
        let run = try Fixtures.scratch()
        let trainer = try Trainer(config: tinyConfig(epochs: 3), dataset: try ShardDataset(directory: shards), run: run)
        var lines = 0
        trainer.onProgress = { p in
            lines += 1
            XCTAssertTrue(p.runningLoss.isFinite && p.runningLoss > 0)
            XCTAssertEqual(p.batches, 3)
        }
        let summary = try trainer.train(folds: [1])
        XCTAssertEqual(lines, 9)
        XCTAssertEqual(summary.folds.map(\.fold), [1])
        let fold = summary.folds[0]
        XCTAssertEqual(fold.valStudies, 6)
        XCTAssertEqual(fold.trainStudies, 6)
        XCTAssertTrue((1...3).contains(fold.bestEpoch))
        XCTAssertEqual(summary.meanValRsnaScore, fold.valRsnaScore)
        XCTAssertEqual(fold.valRsnaScore, (fold.spinal + fold.foraminal + fold.subarticular + fold.anySevereSpinal) / 4, accuracy: 1e-12)
        XCTAssertTrue(fold.priorRsnaScore.isFinite && fold.priorRsnaScore > 0.3)
        XCTAssertEqual(summary.priorProbabilities.count, 75)

        let dir = run.appendingPathComponent("fold-1")
        let csv = try String(contentsOf: dir.appendingPathComponent("metrics.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.first.map(String.init), EpochRecord.csvHeader)
        XCTAssertEqual(csv.count, 4)
        let scores = csv.dropFirst().map { Double($0.split(separator: ",")[4])! }
        XCTAssertEqual(scores.min()!, fold.valRsnaScore, accuracy: 1e-5)
        XCTAssertEqual(scores.firstIndex(of: scores.min()!)! + 1, fold.bestEpoch)
        // Beside the best epoch's score, the last epoch's (the EMA's weights, as validated) and the trained weights' own at
        // that epoch (a pass of its own: the EMA of 0.95 over 9 steps is far from the weights, so the scores differ).
        let last = try XCTUnwrap(fold.last), raw = try XCTUnwrap(fold.lastWithoutEma)
        XCTAssertEqual(last.epoch, 3)
        XCTAssertEqual(last.valRsnaScore, scores[2], accuracy: 1e-5)
        XCTAssertEqual(raw.epoch, 3)
        XCTAssertEqual(raw.valRsnaScore, (raw.spinal + raw.foraminal + raw.subarticular + raw.anySevereSpinal) / 4, accuracy: 1e-12)
        XCTAssertGreaterThan(Swift.abs(raw.valRsnaScore - last.valRsnaScore), 1e-4)
        XCTAssertEqual(try XCTUnwrap(summary.meanLastValRsnaScore), last.valRsnaScore, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(summary.meanLastWithoutEmaValRsnaScore), raw.valRsnaScore, accuracy: 1e-12)
        // A finished fold resumed keeps them as they are.
        XCTAssertEqual(try trainer.train(folds: [1], resume: true).folds[0], fold)
        // Each epoch's seconds include the time spent waiting for the loader, which is recorded beside them.
        for row in csv.dropFirst() {
            let cells = row.split(separator: ",").map { Double($0)! }
            let (seconds, wait) = (cells[10], cells[11])
            XCTAssertTrue(wait >= 0 && wait <= seconds + 0.05, "loader wait \(wait) s of a \(seconds) s epoch")
        }

        // best.safetensors holds PyTorch names only and loads into a fresh model.
        let (tensors, _) = try SafeTensors.read(dir.appendingPathComponent("best.safetensors"))
        // The default model is the two-stage one: localizer, shared crop network, the condition crops' head, ordinal links.
        for name in ["backbone.localizer.heat.weight", "backbone.inner.stem_conv.weight", "backbone.offsets", "head.kind.weight", "link.cutpoints"] {
            XCTAssertTrue(tensors.keys.contains(name), "\(name) not in \(tensors.keys.sorted().prefix(5))")
        }
        XCTAssertFalse(tensors.keys.contains { $0.contains("/") })
        let model = try tinyConfig(epochs: 1).modelSpec(gridSize: [16, 16, 16]).make()
        try Checkpoint.loadWeights(dir.appendingPathComponent("best.safetensors"), into: model)
        // summary.json carries the fields the issue lists, in snake_case.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as! [String: Any]
        XCTAssertNotNil(json["mean_val_rsna_score"] as? Double)
        XCTAssertNotNil(json["prior_rsna_score"] as? Double)
        let entry = (json["folds"] as! [[String: Any]])[0]
        for key in ["fold", "val_rsna_score", "prior_rsna_score", "best_epoch", "spinal", "foraminal", "subarticular", "any_severe_spinal"] {
            XCTAssertNotNil(entry[key], key)
        }
        let config = try TrainingConfig.load(run.appendingPathComponent("config.yaml"))
        XCTAssertEqual(config, tinyConfig(epochs: 3))
    }

    func testValidationImprovesAsTheModelLearns() throws {
        let shards = try TrainerCohort.make(studies: 24, keypoints: true)
        var config = tinyConfig(epochs: 10)
        config.batchSize = 4
        config.learningRate = 1e-2
        let run = try Fixtures.scratch()
        try Trainer(config: config, dataset: try ShardDataset(directory: shards), run: run).train(folds: [0])
        let rows = try String(contentsOf: run.appendingPathComponent("fold-0/metrics.csv"), encoding: .utf8)
            .split(separator: "\n").dropFirst().map { $0.split(separator: ",").map { Double($0)! } }
        let train = rows.map { $0[2] }, val = rows.map { $0[4] }
        // Batch losses are noisy on 12 studies; the means of the first and last three epochs are not.
        XCTAssertLessThan(train.suffix(3).reduce(0, +), train.prefix(3).reduce(0, +) * 0.9, "\(train)")
        // The held-out RSNA score falls below the first epoch's; at this learning rate on 12 studies it may rise again in the
        // last epochs (overfitting, which the best-epoch checkpoint is for), so the best epoch is what must improve.
        XCTAssertLessThan(val.min()!, val.first! - 0.01, "\(val)")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as! [String: Any]
        let best = try XCTUnwrap((summary["folds"] as? [[String: Any]])?.first?["best_epoch"] as? Int)
        XCTAssertEqual(val[best - 1], val.min()!, accuracy: 1e-6, "the best epoch is the one with the lowest held-out loss: \(val)")
    }
}
