import Core
import Foundation
import Shards
import TestSupport
import XCTest

final class VerifierTests: XCTestCase {
    /// Three samples in two shards, level 3.
    private func dataset() throws -> URL {
        let dir = try Fixtures.scratch()
        let writer = try ShardWriter(directory: dir, options: .init(samplesPerShard: 2))
        for seed in 0..<3 { try writer.append(SampleFactory.sample(seed, shape: [8, 16, 16])) }
        try writer.finish()
        return dir
    }

    /// Flips one byte in the middle of the stored chunk (sample, channel) of `shard`, located with h5py.
    private func flipByteInChunk(_ shard: URL, sample: Int, channel: Int) throws {
        let code = """
        import sys, h5py, hdf5plugin
        with h5py.File(sys.argv[1], "r") as f:
            info = f["volumes"].id.get_chunk_info_by_coord((int(sys.argv[2]), int(sys.argv[3]), 0, 0, 0))
        print(info.byte_offset + info.size // 2)
        """
        let result = try Fixtures.python(code, [shard.path, "\(sample)", "\(channel)"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let offset = try XCTUnwrap(UInt64(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let handle = try FileHandle(forUpdating: shard)
        try handle.seek(toOffset: offset)
        let byte = try XCTUnwrap(handle.read(upToCount: 1))
        try handle.seek(toOffset: offset)
        handle.write(Data([byte[0] ^ 0x10]))
        try handle.close()
    }

    func testSoundFolderPasses() throws {
        let report = ShardVerifier(directory: try dataset()).run()
        XCTAssertEqual(report.problems, [])
        XCTAssertEqual(report.shardsChecked, 2)
        XCTAssertEqual(report.samplesDecoded, 3)
    }

    func testFlippedChunkByteIsCaughtAndNamesTheShard() throws {
        let dir = try dataset()
        try flipByteInChunk(dir.appendingPathComponent("shard-00001.h5"), sample: 0, channel: 1)
        let report = ShardVerifier(directory: dir).run()
        XCTAssertFalse(report.ok)
        XCTAssertEqual(Set(report.problems.map(\.file)), ["shard-00001.h5"])
        XCTAssertTrue(report.problems.contains { $0.message.hasPrefix("sha256 ") }, "\(report.problems)")
        // The zstd frame's checksum makes the chunk itself refuse to decode, even without the manifest
        // (this flip changes the decoded content; a flip in a frame's slack bits would only fail sha256).
        let decodeOnly = ShardVerifier(directory: dir, checkHashes: false).run()
        XCTAssertEqual(decodeOnly.problems.count, 1, "\(decodeOnly.problems)")
        XCTAssertTrue(decodeOnly.problems[0].message.hasPrefix("sample 0 (study 1000000002) does not decode"),
                      decodeOnly.problems[0].message)
        XCTAssertEqual(decodeOnly.samplesDecoded, 2)
    }

    func testMissingAndUnlistedShardsAreProblems() throws {
        let dir = try dataset()
        try FileManager.default.moveItem(at: dir.appendingPathComponent("shard-00001.h5"),
                                         to: dir.appendingPathComponent("shard-00009.h5"))
        let problems = ShardVerifier(directory: dir).run().problems.map(\.description)
        XCTAssertEqual(problems, ["shard-00009.h5: shard file is not listed in manifest.json",
                                  "shard-00001.h5: listed in manifest.json but missing"])
    }

    func testNeverWrittenChunkIsAProblem() throws {
        let dir = try Fixtures.scratch()
        let url = dir.appendingPathComponent("shard-00000.h5")
        let result = try Fixtures.python(PythonPeer.writeShard, [url.path, "1", "zstd-sparse"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let bytes = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
        let shard = Manifest.Shard(file: "shard-00000.h5", bytes: bytes, sha256: try SHA256.hex(ofFile: url), samples: 3,
                                   studies: [1_000_000_010, 1_000_000_011, 1_000_000_012])
        try Manifest(shape: [4, 6, 5], zstdLevel: 5, parameters: ["writer": "h5py"], shards: [shard]).write(to: dir)
        XCTAssertEqual(ShardVerifier(directory: dir).run().problems.map(\.description),
                       ["shard-00000.h5: volumes chunk (sample 2, channel 2) was never written"])
    }

    func testVerifyCommandExitsNonZeroNamingTheShard() throws {
        let dir = try dataset()
        let ok = try Fixtures.run(Fixtures.fuse3d, ["verify", dir.path])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(ok.stdout, "\(dir.path): 2 shard(s), 3 sample(s) decoded, ok\n")
        let json = try Fixtures.run(Fixtures.fuse3d, ["verify", "--json", "--no-hash", dir.path])
        let report = try JSONDecoder().decode(VerificationReport.self, from: Data(json.stdout.utf8))
        XCTAssertEqual([report.shardsChecked, report.samplesDecoded, report.problems.count], [2, 3, 0])
        XCTAssertEqual(report.directory, dir.path)

        try flipByteInChunk(dir.appendingPathComponent("shard-00000.h5"), sample: 1, channel: 2)
        let bad = try Fixtures.run(Fixtures.fuse3d, ["verify", dir.path])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("\(dir.path)/shard-00000.h5: sha256 "), bad.stderr)
        XCTAssertTrue(bad.stdout.hasSuffix("problem(s)\n"), bad.stdout)
    }
}
