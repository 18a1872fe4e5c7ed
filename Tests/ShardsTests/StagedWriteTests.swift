import Foundation
import Shards
import TestSupport
import XCTest

/// `stageUntilPublished`: the folder's finished dataset is replaced only by a finished one.
final class StagedWriteTests: XCTestCase {
    func names(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".") }.sorted()
    }

    func staged(_ dir: URL) throws -> ShardWriter {
        var options = ShardWriterOptions(samplesPerShard: 1)
        options.stageUntilPublished = true
        return try ShardWriter(directory: dir, options: options)
    }

    /// Until `publish()` the folder holds the earlier dataset; after it, the new one, and no shard it does not list.
    func testPublishReplacesTheDatasetWhole() throws {
        let dir = try Fixtures.scratch()
        let first = try staged(dir)
        for seed in 0..<3 { try first.append(SampleFactory.sample(seed)) }
        try first.finish()
        XCTAssertEqual(try names(dir), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent(ShardWriter.stagingName + "/manifest.json").path),
                       "a staged manifest before publish() would mark a dataset whose report is not written yet as complete")
        try first.publish()
        XCTAssertEqual(try names(dir), ["manifest.json", "shard-00000.h5", "shard-00001.h5", "shard-00002.h5"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent(ShardWriter.stagingName).path))
        let earlier = try Data(contentsOf: dir.appendingPathComponent("manifest.json"))

        let second = try staged(dir)
        try second.append(SampleFactory.sample(7))
        try second.finish()
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("manifest.json")), earlier)
        XCTAssertEqual(try ShardDataset(directory: dir).count, 3)
        try second.publish()
        XCTAssertEqual(try names(dir), ["manifest.json", "shard-00000.h5"])
        XCTAssertEqual(try ShardDataset(directory: dir).read(0).studyID, 1_000_000_007)
    }

    /// A writer dropped before its manifest (a failed or killed run) leaves the earlier dataset; the next
    /// writer removes its staging folder. One killed after its staged manifest was complete (during the
    /// publish's renames) is rolled forward by the next writer.
    func testUnfinishedStagingIsDiscardedAndAFinishedOneRolledForward() throws {
        let dir = try Fixtures.scratch()
        let first = try staged(dir)
        try first.append(SampleFactory.sample(0))
        try first.finish()
        try first.publish()

        var dropped: ShardWriter? = try staged(dir)
        try dropped?.append(SampleFactory.sample(1))
        try dropped?.append(SampleFactory.sample(2))
        dropped = nil
        XCTAssertEqual(try Manifest.load(from: dir).shards.map(\.studies), [[1_000_000_000]])
        _ = try staged(dir)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent(ShardWriter.stagingName).path), [])

        let finished = try staged(dir)
        try finished.append(SampleFactory.sample(3))
        try finished.append(SampleFactory.sample(4))
        let manifestStaged = try finished.finish()
        // Killed midway through the publish: the staged manifest written, the first shard moved, the manifest not yet.
        let staging = dir.appendingPathComponent(ShardWriter.stagingName)
        try manifestStaged.write(to: staging)
        XCTAssertEqual(rename(staging.appendingPathComponent("shard-00000.h5").path, dir.appendingPathComponent("shard-00000.h5").path), 0)
        _ = try staged(dir)
        let manifest = try Manifest.load(from: dir)
        XCTAssertEqual(manifest.shards.map(\.studies), [[1_000_000_003], [1_000_000_004]])
        XCTAssertTrue(ShardVerifier(directory: dir).run().ok)
    }
}
