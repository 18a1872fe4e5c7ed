import Foundation
import Shards
import TestSupport
import XCTest
@testable import Train

final class SplitTests: XCTestCase {
    func testFoldsPartitionTheStudiesAndSpreadEveryStratum() throws {
        // 40 studies: worst spinal grades 0 ×20, 1 ×12, 2 ×6, unlabelled ×2.
        var labels: [Int64: [Int8]] = [:]
        for s in 0..<40 {
            let grade: Int8 = s < 20 ? 0 : (s < 32 ? 1 : (s < 38 ? 2 : -1))
            labels[Int64(s)] = [Int8](repeating: grade, count: 5) + [Int8](repeating: 0, count: 20)
        }
        let split = try FoldSplit(labels: labels, k: 4, seed: 3)
        XCTAssertEqual(split.folds.count, 4)
        XCTAssertEqual(Set(split.folds.joined()), Set(labels.keys))
        XCTAssertEqual(split.folds.joined().count, 40)
        XCTAssertEqual(split.folds.map(\.count), [10, 10, 10, 10])
        for fold in 0..<4 {
            let grades = split.folds[fold].map { FoldSplit.worstSpinalGrade(labels[$0]!) }
            XCTAssertEqual(grades.filter { $0 == 0 }.count, 5, "fold \(fold)")
            XCTAssertEqual(grades.filter { $0 == 1 }.count, 3, "fold \(fold)")
            XCTAssertTrue((1...2).contains(grades.filter { $0 == 2 }.count), "fold \(fold)")
            XCTAssertTrue(split.training(fold).isDisjoint(with: split.validation(fold)))
        }
        XCTAssertEqual(try FoldSplit(labels: labels, k: 4, seed: 3), split)
        XCTAssertNotEqual(try FoldSplit(labels: labels, k: 4, seed: 4), split)
    }

    func testTheSplitIsSavedAndReusedAndRefusedForOtherShards() throws {
        let shards = try TrainerCohort.make(studies: 12)
        let run = try Fixtures.scratch()
        var config = TrainingConfig()
        config.folds = 3
        let trainer = try Trainer(config: config, dataset: try ShardDataset(directory: shards), run: run)
        let first = try trainer.split()
        let text = try String(contentsOf: run.appendingPathComponent("splits.json"), encoding: .utf8)
        XCTAssertTrue(text.contains("\"stratified_on\" : \"worst_spinal_grade\""), text)
        // Reused as stored, even when the seed changes afterwards.
        config.seed = 99
        XCTAssertEqual(try Trainer(config: config, dataset: try ShardDataset(directory: shards), run: run).split(), first)
        // Other shards: refused with the file named.
        let other = try TrainerCohort.make(studies: 9, seed: 2)
        XCTAssertThrowsError(try Trainer(config: config, dataset: try ShardDataset(directory: other), run: run).split()) {
            XCTAssertTrue("\($0)".contains("splits.json"), "\($0)")
        }
    }
}
