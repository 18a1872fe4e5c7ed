import Foundation
import Shards
import TestSupport
import XCTest

final class ShardRoundTripTests: XCTestCase {
    func testWriteReadRoundTripRollsOverBySampleCount() throws {
        let dir = try Fixtures.scratch()
        let writer = try ShardWriter(directory: dir, options: .init(samplesPerShard: 2, parameters: ["grid": "4x6x5", "spacing_mm": "1.0"]))
        for seed in 0..<5 { try writer.append(SampleFactory.sample(seed)) }
        let manifest = try writer.finish()

        XCTAssertEqual(manifest.shards.map(\.file), ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"])
        XCTAssertEqual(manifest.shards.map(\.samples), [2, 2, 1])
        XCTAssertEqual(manifest.shards[1].studies, [1_000_000_002, 1_000_000_003])
        XCTAssertEqual(manifest.samples, 5)
        XCTAssertEqual(manifest.shape, [4, 6, 5])
        XCTAssertEqual(try Manifest.load(from: dir), manifest)

        let dataset = try ShardDataset(directory: dir)
        XCTAssertEqual(dataset.count, 5)
        XCTAssertEqual(try dataset.read(4).studyID, 1_000_000_004)
        XCTAssertEqual(try dataset.read(2).volume, SampleFactory.sample(2).volume)

        let reader = try ShardReader(url: dir.appendingPathComponent("shard-00001.h5"))
        XCTAssertEqual(reader.sampleCount, 2)
        XCTAssertEqual(reader.shape, [4, 6, 5])
        XCTAssertEqual(reader.schemaVersion, 2)
        XCTAssertEqual(reader.channels, ["sagittal_t1", "sagittal_t2_stir", "axial_t2"])
        XCTAssertEqual(reader.parameters, ["grid": "4x6x5", "spacing_mm": "1.0"])
        let sample = try reader.read(1)
        let expected = SampleFactory.sample(3)
        XCTAssertEqual(sample.studyID, 1_000_000_003)
        XCTAssertEqual(sample.volume, expected.volume)
        // v[2, 3, 5, 4] = (3 + 14 + 15 + 15 + 4) / 1024 = 51 / 1024, at flat index 2·120 + 3·30 + 5·5 + 4.
        XCTAssertEqual(sample.volume[2 * 120 + 3 * 30 + 5 * 5 + 4], Float16(51.0 / 1024.0))
        XCTAssertEqual(try reader.readChannel(1, channel: 2), Array(expected.volume[240...]))
        XCTAssertEqual(sample.present, [1, 0, 1])
        XCTAssertEqual(sample.affine[7], 13)
        XCTAssertEqual(sample.labels, expected.labels)
        XCTAssertEqual(sample.norm, [0, 1000, 5, 800.5, 3, 2000])
        XCTAssertTrue(sample.keypoints[4].isNaN)
        XCTAssertEqual(sample.keypoints[74], 74.75)
    }

    func testConcurrentReadsFromOneReaderReturnEachSample() throws {
        let dir = try Fixtures.scratch()
        let writer = try ShardWriter(directory: dir)
        for seed in 0..<8 { try writer.append(SampleFactory.sample(seed, shape: [6, 16, 12])) }
        try writer.finish()
        let reader = try ShardReader(url: dir.appendingPathComponent("shard-00000.h5"))
        nonisolated(unsafe) let matches = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 32)  // each iteration writes its own slot
        defer { matches.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 32) { i in
            let sample = try? reader.read(i % 8)
            matches[i] = sample?.volume == SampleFactory.sample(i % 8, shape: [6, 16, 12]).volume
        }
        XCTAssertEqual(Array(matches), [Bool](repeating: true, count: 32))
    }

    func testEmptyDatasetHasAManifestAndNoShard() throws {
        let dir = try Fixtures.scratch()
        let manifest = try ShardWriter(directory: dir).finish()
        XCTAssertEqual(manifest.samples, 0)
        XCTAssertEqual(manifest.shape, [])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["manifest.json"])
        XCTAssertTrue(ShardVerifier(directory: dir).run().ok)
    }

    func testReadsARangeAndNamesTheNativeLibraries() throws {
        let dir = try Fixtures.scratch()
        let writer = try ShardWriter(directory: dir)
        for seed in 0..<4 { try writer.append(SampleFactory.sample(seed)) }
        try writer.finish()
        let samples = try ShardReader(url: dir.appendingPathComponent("shard-00000.h5")).read(1..<3)
        XCTAssertEqual(samples.map(\.studyID), [1_000_000_001, 1_000_000_002])
        // The form, not one distribution's versions: HDF5 1.x and zstd 1.x, each as three numbers.
        let named = ShardSchema.nativeLibraries
        XCTAssertNotNil(named.range(of: #"^HDF5 1\.[0-9]+\.[0-9]+, zstd 1\.[0-9]+\.[0-9]+$"#, options: .regularExpression), named)
    }

    func testAFailedWriteStopsTheWriter() throws {
        let dir = try Fixtures.scratch()
        let writer = try ShardWriter(directory: dir, options: .init(samplesPerShard: 2))
        try writer.append(SampleFactory.sample(0))
        try FileManager.default.removeItem(at: dir)
        // Closing the full shard (at the second sample) cannot fsync and rename a partial file whose folder is gone.
        // That commit runs on a thread of its own: its failure stops the writer at the next call after it ended, at
        // the latest at finish(), which waits for it.
        try? writer.append(SampleFactory.sample(1))
        XCTAssertThrowsError(try writer.finish()) { error in
            XCTAssertEqual("\(error)", "\(dir.path)/shard-00000.h5.partial: cannot open to fsync: No such file or directory")
        }
        XCTAssertThrowsError(try writer.append(SampleFactory.sample(2))) { XCTAssertTrue("\($0)".hasSuffix("cannot open to fsync: No such file or directory")) }
        XCTAssertThrowsError(try writer.finish())
    }

    func testRollsOverByCompressedBytes() throws {
        let dir = try Fixtures.scratch()
        let writer = try ShardWriter(directory: dir, options: .init(targetShardBytes: 1))
        for seed in 0..<3 { try writer.append(SampleFactory.sample(seed)) }
        XCTAssertEqual(try writer.finish().shards.map(\.samples), [1, 1, 1])
    }

    func testRefusesOtherShapeAndDuplicateStudy() throws {
        let writer = try ShardWriter(directory: try Fixtures.scratch())
        try writer.append(SampleFactory.sample(0))
        XCTAssertThrowsError(try writer.append(SampleFactory.sample(1, shape: [4, 6, 6]))) { error in
            XCTAssertEqual("\(error)", "study 1000000001: grid shape [4, 6, 6] differs from the dataset's [4, 6, 5]")
        }
        XCTAssertThrowsError(try writer.append(SampleFactory.sample(0))) { error in
            XCTAssertEqual("\(error)", "study 1000000000: already written to this dataset")
        }
    }

    func testSameInputGivesByteIdenticalFiles() throws {
        var outputs: [[String: Data]] = []
        for _ in 0..<2 {
            let dir = try Fixtures.scratch()
            // 25 samples (75 chunks) fill more than one B-tree node of the chunk index.
            let writer = try ShardWriter(directory: dir, options: .init(samplesPerShard: 25, zstdLevel: 5, parameters: ["a": "1"]))
            for seed in 0..<30 { try writer.append(SampleFactory.sample(seed)) }
            try writer.finish()
            var files: [String: Data] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) {
                files[name] = try Data(contentsOf: dir.appendingPathComponent(name))
            }
            outputs.append(files)
        }
        XCTAssertEqual(outputs[0].keys.sorted(), ["manifest.json", "shard-00000.h5", "shard-00001.h5"])
        XCTAssertEqual(outputs[0], outputs[1])
    }

    func testInterruptedWriteLeavesNoShard() throws {
        let dir = try Fixtures.scratch()
        var writer: ShardWriter? = try ShardWriter(directory: dir, options: .init(samplesPerShard: 2))
        for seed in 0..<3 { try writer?.append(SampleFactory.sample(seed)) }
        // Mid-write: the first shard is complete or still committing (under its partial name, on a thread of its own),
        // the second exists only under its partial name.
        let during = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertTrue([["shard-00000.h5", "shard-00001.h5.partial"], ["shard-00000.h5.partial", "shard-00001.h5.partial"]].contains(during), "\(during)")
        // A writer dropped without finish() lets its closed shards' commits end, and removes the open one.
        writer = nil
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["shard-00000.h5"])
        XCTAssertNil(writer)

        // A killed run's partial file is removed by the next writer into the folder.
        try Data("torn".utf8).write(to: dir.appendingPathComponent("shard-00001.h5.partial"))
        let rerun = try ShardWriter(directory: dir, options: .init(samplesPerShard: 2))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("shard-00001.h5.partial").path))
        try rerun.append(SampleFactory.sample(0))
        XCTAssertEqual(try rerun.finish().shards.map(\.studies), [[1_000_000_000]])
    }
}
