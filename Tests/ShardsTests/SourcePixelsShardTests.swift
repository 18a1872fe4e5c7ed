import Core
import Foundation
import Shards
import TestSupport
import XCTest

/// schema_version 2's source pixels: written, read back bit for bit, read by h5py, and refused when their tables lie.
final class SourcePixelsShardTests: XCTestCase {
    /// Seed 0: two small slices (channels 0 and 2); seed 1: none; seed 2: three slices, one of 300 × 250 = 75 000
    /// values, more than a 65 536-value chunk.
    static let shapes: [Int: [(channel: Int, rows: Int, columns: Int)]] = [
        0: [(0, 3, 4), (2, 5, 2)],
        1: [],
        2: [(0, 7, 9), (1, 300, 250), (1, 2, 2)],
    ]

    /// A folder of one shard with seeds 0, 1 and 2 and their source pixels.
    private func writeShard(zstdLevel: Int = ShardSchema.defaultZstdLevel) throws -> URL {
        let dir = try Fixtures.scratch()
        let writer = try ShardWriter(directory: dir, options: .init(zstdLevel: zstdLevel))
        for seed in 0..<2 {
            let sources = SampleFactory.sources(seed, shapes: Self.shapes[seed]!)
            try writer.append(try EncodedSample(encoding: SampleFactory.sample(seed), sources: sources, zstdLevel: zstdLevel))
        }
        // Seed 2 carries its sources in the FusedSample, as the fuser hands them over.
        var last = SampleFactory.sample(2)
        last.sources = SampleFactory.sources(2, shapes: Self.shapes[2]!)
        try writer.append(last)
        try writer.finish()
        return dir
    }

    func testSourcePixelsRoundTripBitForBit() throws {
        let dir = try writeShard()
        let reader = try ShardReader(url: dir.appendingPathComponent("shard-00000.h5"))
        XCTAssertEqual(reader.schemaVersion, 2)
        XCTAssertTrue(reader.hasSourcePixels)
        for seed in 0..<3 {
            let expected = SampleFactory.sources(seed, shapes: Self.shapes[seed]!)
            XCTAssertEqual(reader.sourceSlices(seed), expected.slices, "sample \(seed)")
            let read = try reader.readSourcePixels(seed)
            XCTAssertEqual(read.slices, expected.slices, "sample \(seed)")
            XCTAssertEqual(read.pixels.map(\.bitPattern), expected.pixels.map(\.bitPattern), "sample \(seed)")
            XCTAssertEqual(try reader.read(seed).volume, SampleFactory.sample(seed).volume)
        }
        XCTAssertEqual(reader.sourceSlices(1), [])
        XCTAssertEqual(try reader.readSourcePixels(1).pixels, [])
        // Seed 2's big slice is its second: pixel 70 000 of it is ((2 + 3 + 70 000) mod 2048) / 2048 = 373 / 2048.
        let big = try reader.readSourcePixels(2)
        XCTAssertEqual(big.pixels[63 + 70_000], Float16(373.0 / 2048))
        XCTAssertEqual(big.slices[1].geometry, [2, 1, -4.5, 0, 0.7, 0, 0, 0, -0.8, 1, 0, 0])

        XCTAssertTrue(ShardVerifier(directory: dir).run().ok, "\(ShardVerifier(directory: dir).run().problems)")
        let summary = try ShardSummary.compute(directory: dir, voxelStatistics: false)
        XCTAssertEqual(summary.schemaVersion, 2)
        XCTAssertEqual(summary.sourceSlices, 5)
        XCTAssertGreaterThan(summary.compressedSourceBytes, 0)
    }

    func testSamplesWithoutSourcePixelsMakeEmptyDatasets() throws {
        let dir = try Fixtures.scratch()
        let writer = try ShardWriter(directory: dir)
        for seed in 0..<2 { try writer.append(SampleFactory.sample(seed)) }
        try writer.finish()
        let reader = try ShardReader(url: dir.appendingPathComponent("shard-00000.h5"))
        XCTAssertEqual(reader.schemaVersion, 2)
        XCTAssertFalse(reader.hasSourcePixels)
        XCTAssertEqual(reader.sourceSlices(1), [])
        XCTAssertEqual(try reader.readSourcePixels(0).slices, [])
        XCTAssertTrue(ShardVerifier(directory: dir).run().ok)
        let result = try Fixtures.python("""
        import h5py, hdf5plugin, sys
        f = h5py.File(sys.argv[1], "r")
        print(f["source_pixels"].shape, f["source_pixels"].chunks, f["source_slices"].shape, f["source_geometry"].shape)
        """, [dir.appendingPathComponent("shard-00000.h5").path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "(0,) (65536,) (0, 5) (0, 12)")
    }

    func testSourceBlocksStartAtChunkBoundariesAndEnterTheFingerprint() throws {
        let dir = try writeShard()
        let reader = try ShardReader(url: dir.appendingPathComponent("shard-00000.h5"))
        XCTAssertEqual(try reader.sourceLayout()?.chunk, [ShardSchema.sourceChunkElements])
        XCTAssertEqual(try reader.sourceLayout()?.filters.map(\.id), [2, 32015])

        // A writer that keeps unchanged shards must see a change of the source pixels alone (the fingerprint covers them):
        // the same grids with other source values replace the shard.
        func write(_ sourceSeed: Int) throws {
            var options = ShardWriterOptions()
            options.keepUnchangedShards = true
            let writer = try ShardWriter(directory: dir, options: options)
            for seed in 0..<3 {
                let sources = SampleFactory.sources(seed + sourceSeed, shapes: Self.shapes[seed]!)
                try writer.append(try EncodedSample(encoding: SampleFactory.sample(seed), sources: sources, zstdLevel: 1))
            }
            try writer.finish()
        }
        try write(0)
        try write(100)
        let rewritten = try ShardReader(url: dir.appendingPathComponent("shard-00000.h5"))
        let expected = SampleFactory.sources(102, shapes: Self.shapes[2]!)
        XCTAssertEqual(try rewritten.readSourcePixels(2).pixels.map(\.bitPattern), expected.pixels.map(\.bitPattern))
    }

    func testH5pyReadsTheSourceTablesAndPixels() throws {
        let dir = try writeShard(zstdLevel: 3)
        let result = try Fixtures.python("""
        import json, sys
        import h5py, hdf5plugin, numpy as np
        f = h5py.File(sys.argv[1], "r")
        p = f["source_pixels"]
        plist = p.id.get_create_plist()
        filters = [[int(plist.get_filter(i)[0]), [int(x) for x in plist.get_filter(i)[2]]] for i in range(plist.get_nfilters())]
        rows = f["source_slices"][:]
        pixels = [p[int(o):int(o) + int(r) * int(c)].view(np.uint16).tolist() for (_, _, r, c, o) in rows]
        print(json.dumps({"dtype": str(p.dtype), "length": p.shape[0], "chunks": list(p.chunks), "filters": filters,
                          "slices": rows.tolist(), "slices_dtype": str(rows.dtype),
                          "geometry": f["source_geometry"][:].tolist(), "pixels": pixels}))
        """, [dir.appendingPathComponent("shard-00000.h5").path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["dtype"] as? String, "float16")
        XCTAssertEqual(json["slices_dtype"] as? String, "int64")
        XCTAssertEqual(json["chunks"] as? [Int], [65536])
        XCTAssertEqual((json["filters"] as? [[Any]])?.map { $0[0] as? Int }, [2, 32015])
        XCTAssertEqual((json["filters"] as? [[Any]])?[1][1] as? [Int], [3])
        // Sample 0 takes chunk 0 (22 values, padded); sample 2 starts at chunk 1: 63, then 75 000 values.
        XCTAssertEqual(json["slices"] as? [[Int]], [[0, 0, 3, 4, 0], [0, 2, 5, 2, 12],
                                                    [2, 0, 7, 9, 65536], [2, 1, 300, 250, 65599], [2, 1, 2, 2, 140_599]])
        XCTAssertEqual(json["length"] as? Int, 3 * 65536, "one chunk for sample 0, two for sample 2's 75 067 values")
        var expectedGeometry: [[Double]] = [], expectedPixels: [[Int]] = []
        for seed in [0, 2] {
            let sources = SampleFactory.sources(seed, shapes: Self.shapes[seed]!)
            expectedGeometry += sources.slices.map(\.geometry)
            var start = 0
            for slice in sources.slices {
                expectedPixels.append(sources.pixels[start..<(start + slice.pixelCount)].map { Int($0.bitPattern) })
                start += slice.pixelCount
            }
        }
        XCTAssertEqual(json["geometry"] as? [[Double]], expectedGeometry)
        XCTAssertEqual(json["pixels"] as? [[Int]], expectedPixels)
    }

    func testHostileSourceTablesAreRefusedAtOpen() throws {
        let cases: [(edit: String, dataset: String, why: String)] = [
            ("f['source_slices'][1, 4] = 10**12", "source_slices row 1", "leave source_pixels's"),
            ("f['source_slices'][3, 4] = 65599 - 10", "source_slices row 3", "overlap the previous row's"),
            ("f['source_slices'][0, 2] = 0", "source_slices row 0", "matrix 0 × 4"),
            ("f['source_slices'][2, 1] = 3", "source_slices row 2", "channel 3"),
            ("f['source_slices'][2, 0] = 1; f['source_slices'][3, 0] = 0", "source_slices row 3", "sample 0"),
            ("f['source_slices'][4, 0] = 7", "source_slices row 4", "sample 7"),
            ("f['source_geometry'][4, 7] = float('nan')", "source_geometry row 4", "not finite"),
            ("f['source_geometry'][1, 3:6] = 0", "source_geometry row 1", "zero length"),
            ("f['source_geometry'][0, 9] = 2", "source_geometry row 0", "normal's length 2"),
        ]
        for (k, hostile) in cases.enumerated() {
            let url = try editedShard(hostile.edit)
            XCTAssertThrowsError(try ShardReader(url: url), "case \(k)") { error in
                guard case .schema(let path, let message)? = error as? ShardError else { return XCTFail("case \(k): \(error)") }
                XCTAssertEqual(path, url.path)
                XCTAssertTrue(message.hasPrefix("dataset \(hostile.dataset): "), "case \(k): \(message)")
                XCTAssertTrue(message.contains(hostile.why), "case \(k): \(message)")
            }
        }
    }

    /// A fresh shard (`writeShard`) with `edit` (Python, the file open as `f`, numpy as `np`) applied by h5py.
    private func editedShard(_ edit: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let url = try writeShard().appendingPathComponent("shard-00000.h5")
        let result = try Fixtures.python("""
        import sys, h5py, hdf5plugin, numpy as np
        f = h5py.File(sys.argv[1], "r+")
        \(edit)
        f.close()
        """, [url.path])
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        return url
    }

    func testSourceDatasetsOfTheWrongShapeOrTypeAreRefused() throws {
        let cases: [(edit: String, expected: String)] = [
            ("del f['source_geometry']", "dataset source_geometry is missing"),
            ("del f['source_slices']; f['source_slices'] = np.zeros((5, 4), np.int64)", "dataset source_slices must be int64 with dims [M, 5]"),
            ("g = f['source_geometry'][:]; del f['source_geometry']; f['source_geometry'] = g.astype(np.float32)",
             "dataset source_geometry must be float"),
            ("del f['source_pixels']; f.create_dataset('source_pixels', data=np.zeros(4 * 65536, np.float16), chunks=(1024,))",
             "dataset source_pixels must be chunked [65536], found [1024]"),
        ]
        for (k, hostile) in cases.enumerated() {
            let url = try editedShard(hostile.edit)
            XCTAssertThrowsError(try ShardReader(url: url), "case \(k)") { error in
                XCTAssertTrue("\(error)".hasPrefix("\(url.path): \(hostile.expected)"), "case \(k): \(error)")
            }
        }
    }

    func testSourcePixelsStoredWithOtherFiltersReadThroughHDF5() throws {
        // An h5py writer following the schema but compressing with gzip: the reader falls back to HDF5's pipeline.
        let url = try writeShard().appendingPathComponent("shard-00000.h5")
        let result = try Fixtures.python("""
        import sys, h5py, hdf5plugin, numpy as np
        f = h5py.File(sys.argv[1], "r+")
        p = f["source_pixels"][:]
        del f["source_pixels"]
        f.create_dataset("source_pixels", data=p, chunks=(65536,), maxshape=(None,), compression="gzip")
        f.close()
        """, [url.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let reader = try ShardReader(url: url)
        let expected = SampleFactory.sources(2, shapes: Self.shapes[2]!)
        XCTAssertEqual(try reader.readSourcePixels(2).pixels.map(\.bitPattern), expected.pixels.map(\.bitPattern))
    }

    func testACorruptSourceChunkIsAnErrorNamingShardSampleAndStudy() throws {
        let dir = try writeShard()
        let url = dir.appendingPathComponent("shard-00000.h5")
        // Flip bytes in the middle of sample 2's second chunk (the big slice), found through h5py's chunk index.
        let result = try Fixtures.python("""
        import sys, h5py, hdf5plugin
        f = h5py.File(sys.argv[1], "r")
        info = f["source_pixels"].id.get_chunk_info_by_coord((2 * 65536,))
        f.close()
        with open(sys.argv[1], "r+b") as raw:
            raw.seek(info.byte_offset + info.size // 2)
            b = raw.read(16)
            raw.seek(info.byte_offset + info.size // 2)
            raw.write(bytes(x ^ 0xFF for x in b))
        """, [url.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let reader = try ShardReader(url: url)
        XCTAssertNoThrow(try reader.readSourcePixels(0))
        XCTAssertThrowsError(try reader.readSourcePixels(2)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(url.path): source_pixels chunk at element 131072 (sample 2, study 1000000002) does not decode"),
                          "\(error)")
        }
        let problems = ShardVerifier(directory: dir, checkHashes: false).run().problems.map(\.description)
        XCTAssertEqual(problems.count, 1, "\(problems)")
        XCTAssertTrue(problems.first?.hasPrefix("shard-00000.h5: sample 2 (study 1000000002) does not decode") ?? false, "\(problems)")
    }
}
