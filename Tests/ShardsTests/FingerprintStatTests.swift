import Core
import Foundation
@testable import Shards
import TestSupport
import XCTest

final class FingerprintStatTests: XCTestCase {
    /// The shard writer records each shard's `FileIdentity` exactly as a fresh stat gives it (it rounded the mtime
    /// through a Date before issue 28, and so disagreed with the ingest's other records of the same kind).
    func testTheWriterRecordsEachShardsIdentityExactly() throws {
        let dir = try Fixtures.scratch()
        var options = ShardWriterOptions(samplesPerShard: 1)
        options.keepUnchangedShards = true
        let writer = try ShardWriter(directory: dir, options: options)
        for seed in 0..<2 { try writer.append(SampleFactory.sample(seed)) }
        try writer.finish()
        let recorded = try JSONDecoder().decode([String: Fingerprint].self,
                                                from: Data(contentsOf: dir.appendingPathComponent(ShardWriter.fingerprintsName)))
        XCTAssertEqual(recorded.keys.sorted(), ["shard-00000.h5", "shard-00001.h5"])
        for (name, fingerprint) in recorded {
            let now = try XCTUnwrap(FileIdentity(dir.appendingPathComponent(name)))
            XCTAssertEqual(fingerprint.stat, now, name)
            XCTAssertEqual(fingerprint.shard.bytes, Int(now.size))
        }
        XCTAssertNotNil(ShardWriter.untouchedDataset(in: dir, options: options), "an untouched dataset is recognised by its identities")
    }
}
