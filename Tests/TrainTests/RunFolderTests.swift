import Foundation
import Shards
import TestSupport
import XCTest
@testable import Train

/// A FileManager whose deletes fail, as on a read-only or busy file system (the tests run as root, where
/// permissions cannot make a delete fail).
// Sendable by hand as FileManager is (a subclass must say so again); it adds no state.
private final class UndeletableFiles: FileManager, @unchecked Sendable {
    override func removeItem(at url: URL) throws {
        throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: url.path])
    }
}

final class RunFolderTests: XCTestCase {
    /// Every regular file under `dir` with its bytes.
    private func snapshot(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let walker = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.isRegularFileKey])!
        for case let url as URL in walker where (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true {
            out[String(url.path.dropFirst(dir.path.count))] = try Data(contentsOf: url)
        }
        return out
    }

    func testAFolderWithResultsIsRefusedUntouchedThenOverwrittenWithoutStaleResults() throws {
        let dataset = try ShardDataset(directory: try TrainerCohort.make(studies: 8, keypoints: true))
        let config = tinyConfig(epochs: 1)
        let run = try Fixtures.scratch("run-folder")
        try Trainer(config: config, dataset: dataset, run: run).train(folds: [0])
        // A stale result (another run's fold 1) beside the fresh fold 0.
        let stale = RunFolder(run).fold(1)
        try FileManager.default.createDirectory(at: stale.url, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: RunFolder(run).fold(0).resultURL, to: stale.resultURL)
        let before = try snapshot(run)
        XCTAssertEqual(RunFolder(run).foldsWithResults(), [0, 1])

        XCTAssertThrowsError(try Trainer(config: config, dataset: dataset, run: run).train(folds: [0])) { error in
            let e = error as? TrainError
            XCTAssertEqual(e?.kind, .runFolder, "\(error)")
            XCTAssertEqual("\(error)", "\(run.path) already holds results of a training run (fold-0, fold-1, summary.json): "
                           + "continue it with --resume, replace it with --overwrite, or give another --out")
        }
        XCTAssertEqual(try snapshot(run), before, "a refused run wrote or deleted something")

        let summary = try Trainer(config: config, dataset: dataset, run: run).train(folds: [0], overwrite: true)
        XCTAssertEqual(summary.folds.map(\.fold), [0])
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.resultURL.path))
        XCTAssertEqual(try RunFolder(run).summary(), summary)
        // Trained again from the same seed, fold 0 ends on the same weights.
        XCTAssertEqual(try snapshot(run)["/fold-0/best.safetensors"], before["/fold-0/best.safetensors"])
    }

    func testAResultOfAnotherSplitNeverReachesTheSummary() throws {
        let dataset = try ShardDataset(directory: try TrainerCohort.make(studies: 8, keypoints: true))
        let run = try Fixtures.scratch("run-folder")
        let trainer = try Trainer(config: tinyConfig(epochs: 1), dataset: dataset, run: run)
        try trainer.train(folds: [0])
        var result = try RunFolder(run).fold(0).result()
        result.trainStudies += 1
        try RunFolder(run).fold(0).save(result)
        XCTAssertThrowsError(try trainer.train(folds: [1], resume: true)) { error in
            XCTAssertEqual((error as? TrainError)?.kind, .runFolder, "\(error)")
            XCTAssertTrue("\(error)".hasPrefix("\(RunFolder(run).fold(0).resultURL.path): belongs to another split"), "\(error)")
        }
    }

    func testAFoldOutOfRangeIsRefusedBeforeAnythingIsWritten() throws {
        let dataset = try ShardDataset(directory: try TrainerCohort.make(studies: 8, keypoints: true))
        let run = try Fixtures.scratch("run-folder").appendingPathComponent("new")
        XCTAssertThrowsError(try Trainer(config: tinyConfig(epochs: 1, folds: 4), dataset: dataset, run: run).train(folds: [7])) { error in
            XCTAssertEqual(error as? TrainError, TrainError(.configuration, "fold 7 does not exist: the run has folds 0..<4"))
            XCTAssertFalse("\(error)".contains("libtorch"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.path))
    }

    func testAFailedDeleteIsAnErrorAndTheFileStays() throws {
        let run = RunFolder(try Fixtures.scratch("run-folder"))
        try run.fold(2).create()
        try Data("{}".utf8).write(to: run.fold(2).lastURL)
        XCTAssertThrowsError(try run.clear(fileManager: UndeletableFiles())) { error in
            XCTAssertEqual((error as? TrainError)?.kind, .runFolder)
            XCTAssertTrue("\(error)".hasPrefix("\(run.fold(2).lastURL.path): cannot delete"), "\(error)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.fold(2).lastURL.path))
    }

    func testMetricsAreWrittenAtomicallyAndReadBackTyped() throws {
        let run = RunFolder(try Fixtures.scratch("run-folder"))
        let records = [EpochRecord(epoch: 1, lr: 0.001, trainLoss: 1.25, valLoss: 1.5, valScore: 0.75, spinal: 0.5, foraminal: 0.625,
                                   subarticular: 0.875, anySevereSpinal: 0.25, samplesPerSecond: 12.5, seconds: 3.5, loaderSeconds: 0.25)]
        try run.fold(0).save(metrics: records)
        XCTAssertEqual(try run.fold(0).metrics(), records)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.fold(0).url.path), [FoldFolder.metricsName], "no partial file is left")
        // A run made before loader_wait_s was recorded reads too.
        let old = "epoch,lr,train_loss,val_loss,val_score,spinal,foraminal,subarticular,any_severe_spinal,samples_per_s,seconds\n2,0.5,1,1,1,1,1,1,1,2,3\n"
        XCTAssertEqual(try EpochRecord.parse(csv: old).map(\.epoch), [2])
        XCTAssertNil(try EpochRecord.parse(csv: old).first?.loaderSeconds)
    }

    /// A two-stage epoch's localizer error, its per-group columns included, reads back as written (to the CSV's two
    /// decimals); a run made before the group columns existed reads with none.
    func testTheLocalizerErrorPerGroupRoundTripsThroughMetrics() throws {
        let run = RunFolder(try Fixtures.scratch("run-folder"))
        // 2 studies × 25 columns: canal 1 mm, foramina 2 mm, recesses 4 mm, one foraminal point missing.
        var distances = [[Double]](repeating: (0..<25).map { $0 < 5 ? 1 : $0 < 15 ? 2 : 4 }, count: 2)
        distances[1][7] = .nan
        let error = LocalizationError(distances: distances)
        XCTAssertEqual(error.points, 49)
        XCTAssertEqual(error.perGroupMedianMm, [1, 2, 4])
        XCTAssertEqual(error.perLevelMm, [2, 2, 2, 2, 2])
        XCTAssertEqual(error.medianMm, 2)
        var record = EpochRecord(epoch: 1, lr: 0.001, trainLoss: 1, valLoss: 1, valScore: 1, spinal: 1, foraminal: 1, subarticular: 1,
                                 anySevereSpinal: 1, samplesPerSecond: 1, seconds: 1, loaderSeconds: 0)
        record.localization = error
        try run.fold(0).save(metrics: [record])
        let back = try XCTUnwrap(try run.fold(0).metrics().first?.localization)
        XCTAssertEqual(back.perGroupMedianMm, [1, 2, 4])
        XCTAssertEqual(back.perGroupP90Mm, [1, 2, 4])
        XCTAssertEqual(back.p90Mm, 4)
        let old = "epoch,lr,train_loss,val_loss,val_score,spinal,foraminal,subarticular,any_severe_spinal,samples_per_s,seconds,loader_wait_s,"
            + "loc_median_mm,loc_p90_mm,loc_l1_l2_mm,loc_l2_l3_mm,loc_l3_l4_mm,loc_l4_l5_mm,loc_l5_s1_mm\n"
            + "2,0.5,1,1,1,1,1,1,1,2,3,0.1,2.5,5,2,2,3,3,2\n"
        let parsed = try XCTUnwrap(try EpochRecord.parse(csv: old).first?.localization)
        XCTAssertEqual(parsed.medianMm, 2.5)
        XCTAssertNil(parsed.perGroupMedianMm)
    }

    /// A run's config.yaml written before condition points existed (no `condition_points` key) is read as it was trained,
    /// with the canal points alone, so its checkpoints still load; one that has the key keeps it.
    func testARunFromBeforeConditionPointsIsReadWithoutThem() throws {
        let run = RunFolder(try Fixtures.scratch("run-folder"))
        try run.save(TrainingConfig())
        XCTAssertEqual(try run.config().twoStage?.conditionPoints, true)
        let text = try String(contentsOf: run.configURL, encoding: .utf8)
        XCTAssertTrue(text.contains("condition_points: true"), text)
        try text.split(separator: "\n").filter { !$0.contains("condition_points") }.joined(separator: "\n")
            .write(to: run.configURL, atomically: true, encoding: .utf8)
        XCTAssertEqual(try run.config().twoStage?.conditionPoints, false)
        // A configuration a user writes without the key gets the default.
        XCTAssertEqual(try TrainingConfig.load(run.configURL).twoStage?.conditionPoints, true)
    }
}
