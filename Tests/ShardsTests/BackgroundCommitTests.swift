import Foundation
import Shards
import TestSupport
import XCTest

/// Closed shards are committed (fsync, SHA-256, rename) on threads of their own while the next shard is written.
final class BackgroundCommitTests: XCTestCase {
    /// Many shards in flight give the bytes, manifest and hashes of shards committed one at a time.
    func testManyShardsCommitInOrderAndVerify() throws {
        let dir = try Fixtures.scratch()
        let writer = try ShardWriter(directory: dir, options: ShardWriterOptions(samplesPerShard: 1))
        for seed in 0..<7 { try writer.append(SampleFactory.sample(seed)) }
        XCTAssertLessThanOrEqual(7 - writer.shards.count, ShardWriter.commitsInFlight, "no more than commitsInFlight wait")
        let manifest = try writer.finish()
        XCTAssertEqual(manifest.shards.map(\.file), (0..<7).map { String(format: "shard-%05d.h5", $0) })
        XCTAssertEqual(manifest.shards.map(\.studies), (0..<7).map { [1_000_000_000 + Int64($0)] })
        XCTAssertTrue(ShardVerifier(directory: dir).run().ok, "every listed hash is its file's")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertFalse(names.contains { $0.hasSuffix(".partial") })
    }

    /// A commit that fails on its thread fails the writer at the next close (or at `finish()`): the error names the
    /// shard, its partial file is gone, the shards before it are in place, and every later call throws.
    func testAFailedCommitFailsTheWriterAndLeavesNoPartialFile() throws {
        let dir = try Fixtures.scratch()
        // shard-00001.h5 is a folder with a file in it: renaming the finished shard over it fails.
        let blocker = dir.appendingPathComponent("shard-00001.h5")
        try FileManager.default.createDirectory(at: blocker, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: blocker.appendingPathComponent("keep"))
        let writer = try ShardWriter(directory: dir, options: ShardWriterOptions(samplesPerShard: 1))
        var failure: Error?
        for seed in 0..<6 where failure == nil {
            do { try writer.append(SampleFactory.sample(seed)) } catch { failure = error }
        }
        if failure == nil { XCTAssertThrowsError(try writer.finish()) { failure = $0 } }
        let message = "\(failure.map { "\($0)" } ?? "none")"
        XCTAssertTrue(message.contains("shard-00001.h5") && message.contains("cannot rename"), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("shard-00001.h5.partial").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("shard-00000.h5").path))
        XCTAssertEqual(writer.shards.map(\.file), ["shard-00000.h5"])
        XCTAssertThrowsError(try writer.append(SampleFactory.sample(9)))
        XCTAssertThrowsError(try writer.finish())
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("manifest.json").path))
    }
}
