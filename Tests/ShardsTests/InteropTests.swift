import Core
import Foundation
import Shards
import TestSupport
import XCTest

/// fuse3d's shards and h5py + hdf5plugin's files are the same format, both ways.
final class InteropTests: XCTestCase {
    func testH5pyReadsOurShardWithTheSameNumbers() throws {
        let dir = try Fixtures.scratch()
        let writer = try ShardWriter(directory: dir, options: .init(zstdLevel: 7, parameters: ["grid": "4x6x5"]))
        for seed in [20, 21] { try writer.append(SampleFactory.sample(seed)) }
        try writer.finish()

        let result = try Fixtures.python(PythonPeer.readShard, [dir.appendingPathComponent("shard-00000.h5").path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["dtype"] as? String, "float16")
        XCTAssertEqual(json["shape"] as? [Int], [2, 3, 4, 6, 5])
        XCTAssertEqual(json["chunks"] as? [Int], [1, 1, 4, 6, 5])
        XCTAssertEqual((json["filters"] as? [[Any]])?.map { $0[0] as? Int }, [2, 32015])
        XCTAssertEqual((json["filters"] as? [[Any]])?[1][1] as? [Int], [7])
        XCTAssertEqual(json["schema_version"] as? Int, 2)
        XCTAssertEqual(json["channels"] as? [String], Channels.names)
        XCTAssertEqual(json["label_columns"] as? [String], RSNA.labelColumns)
        XCTAssertEqual(json["parameters"] as? [String: String], ["grid": "4x6x5"])
        XCTAssertEqual(json["study_id"] as? [Int], [1_000_000_020, 1_000_000_021])
        XCTAssertEqual(json["labels_dtype"] as? String, "int8")
        XCTAssertEqual(json["present"] as? [[Int]], [[1, 1, 1], [1, 0, 1]])
        XCTAssertEqual(json["affine_1"] as? [[Double]], [[0, 0, 1, -20], [1.5, 0, 0, 31], [0, -2, 0, 30], [0, 0, 0, 1]])
        XCTAssertEqual(json["norm_1"] as? [[Double]], [[0, 1000], [5, 800.5], [21, 2000]])
        XCTAssertEqual(json["keypoints_1_nan"] as? [Bool], [true, true, true])
        XCTAssertEqual(json["keypoints_1_last"] as? Double, 74 + 21.0 / 4)
        // v[1, 2, 3, 5, 4] for seed 21: (21 + 14 + 15 + 15 + 4) mod 1024 / 1024 = 69 / 1024.
        XCTAssertEqual(json["voxel_1_2_3_5_4"] as? Double, 69.0 / 1024)
    }

    func testWeReadAShardWrittenByH5py() throws {
        let url = try Fixtures.scratch().appendingPathComponent("shard-00000.h5")
        let result = try Fixtures.python(PythonPeer.writeShard, [url.path, "1", "zstd"])
        XCTAssertEqual(result.status, 0, result.stderr)

        let reader = try ShardReader(url: url)
        XCTAssertEqual(reader.sampleCount, 3)
        XCTAssertEqual(reader.shape, [4, 6, 5])
        XCTAssertEqual(reader.studyIDs, [1_000_000_010, 1_000_000_011, 1_000_000_012])
        XCTAssertEqual(reader.parameters, ["writer": "h5py"])
        XCTAssertEqual(reader.schemaVersion, 1)
        XCTAssertFalse(reader.hasSourcePixels, "a schema-1 shard has no source pixels")
        XCTAssertEqual(reader.sourceSlices(2), [])
        XCTAssertEqual(try reader.readSourcePixels(2).pixels, [])
        XCTAssertNil(try reader.sourceLayout())
        XCTAssertEqual(try reader.volumeLayout().filters.map(\.id), [2, 32015])
        let sample = try reader.read(2)
        XCTAssertEqual(sample.volume, SampleFactory.sample(12).volume)
        XCTAssertEqual(sample.volume[1 * 120 + 3 * 30 + 2 * 5 + 1], Float16(Float(12 + 7 + 15 + 6 + 1) / 1024))
        XCTAssertEqual(sample.labels, SampleFactory.sample(12).labels)
        XCTAssertEqual(sample.present, [1, 1, 0])
        XCTAssertEqual(sample.affine[0], 13)
        XCTAssertEqual(sample.affine[5], 13)
        XCTAssertEqual(sample.affine[1], 0)
        XCTAssertEqual(Array(sample.keypoints[0..<3]), [12, 24, 0.5])
        XCTAssertTrue(sample.keypoints[3].isNaN)
        XCTAssertEqual(sample.norm, [0, 1, 2, 3, 4, 5])
    }

    func testChunksStoredOtherwiseAreReadThroughHDF5() throws {
        for (variant, filters) in [("gzip", [Int32(2), 1]), ("zstd-sparse", [2, 32015])] {
            let url = try Fixtures.scratch().appendingPathComponent("shard-00000.h5")
            let result = try Fixtures.python(PythonPeer.writeShard, [url.path, "1", variant])
            XCTAssertEqual(result.status, 0, result.stderr)
            let reader = try ShardReader(url: url)
            XCTAssertEqual(try reader.volumeLayout().filters.map(\.id), filters)
            XCTAssertEqual(try reader.read(1).volume, SampleFactory.sample(11).volume, variant)
            // Sample 2's channel 2 was never written: HDF5's fill value (0) there, data elsewhere.
            let last = try reader.read(2).volume
            XCTAssertEqual(Array(last[..<240]), Array(SampleFactory.sample(12).volume[..<240]), variant)
            XCTAssertEqual(Array(last[240...]), [Float16](repeating: 0, count: 120), variant)
            XCTAssertEqual(try reader.readChannel(2, channel: 2), [Float16](repeating: 0, count: 120), variant)
            XCTAssertEqual(try reader.readChannel(2, channel: 1), Array(SampleFactory.sample(12).volume[120..<240]), variant)
        }
    }

    func testANonHDF5FileIsAnErrorNamingTheFileAndHDF5sReason() throws {
        let url = try Fixtures.scratch().appendingPathComponent("shard-00000.h5")
        try Data("not an HDF5 file".utf8).write(to: url)
        XCTAssertThrowsError(try ShardReader(url: url)) { error in
            let h5 = error as? HDF5Error
            XCTAssertEqual(h5?.path, url.path)
            XCTAssertEqual(h5?.operation, "open file")
            XCTAssertTrue(h5?.message.contains("H5Fopen") ?? false, "\(error)")
            XCTAssertTrue("\(error)".hasPrefix("\(url.path): open file failed: "), "\(error)")
        }
    }

    func testReaderRefusesAnUnknownSchemaVersion() throws {
        let url = try Fixtures.scratch().appendingPathComponent("shard-00007.h5")
        let result = try Fixtures.python(PythonPeer.writeShard, [url.path, "3", "zstd"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertThrowsError(try ShardReader(url: url)) { error in
            XCTAssertEqual(error as? ShardError,
                           .unsupportedSchemaVersion(path: url.path, found: 3, supported: [1, 2]))
            XCTAssertEqual("\(error)", "\(url.path): schema_version 3 is not supported; this fuse3d reads schema_version 1, 2")
        }
    }
}
