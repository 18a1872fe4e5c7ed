import CHDF5
import Foundation
@testable import Shards
import TestSupport
import XCTest

/// The in-process HDF5 zstd filter (id 32015) and the writer's direct chunk encoder agree byte for byte.
final class ZstdFilterTests: XCTestCase {
    func testFilterPipelineAndDirectChunkWritesStoreTheSameBytes() throws {
        let dir = try Fixtures.scratch()
        let sample = SampleFactory.sample(5, shape: [8, 16, 12])
        let writer = try ShardWriter(directory: dir, options: .init(zstdLevel: 4))
        try writer.append(sample)
        try writer.finish()

        // The same volume through HDF5's own pipeline: H5Dwrite runs shuffle, then our zstd filter.
        let pipelinePath = dir.appendingPathComponent("pipeline.h5").path
        let file = try H5File.create(pipelinePath)
        let float16 = H5Object.type(ch5_float16_le())
        let dataset = try file.createDataset("volumes", type: float16.id, dims: [1, 3, 8, 16, 12],
                                             chunk: [1, 1, 8, 16, 12], zstdLevel: 4)
        let status = sample.volume.withUnsafeBytes {
            H5Dwrite(dataset.id, float16.id, ch5_S_ALL(), ch5_S_ALL(), ch5_P_DEFAULT(), $0.baseAddress)
        }
        XCTAssertEqual(status, 0)
        try dataset.close()
        try file.close()

        func rawChunks(_ path: String) throws -> [[UInt8]] {
            let volumes = try H5File.open(path).openDataset("volumes")
            return try (0..<3).map { channel in
                let offset = [0, channel, 0, 0, 0]
                var raw = [UInt8](repeating: 0, count: try volumes.storedChunkSize(at: offset))
                let mask = try raw.withUnsafeMutableBytes { try volumes.readRawChunk(at: offset, into: $0.baseAddress!) }
                XCTAssertEqual(mask, 0)
                return raw
            }
        }
        let direct = try rawChunks(dir.appendingPathComponent("shard-00000.h5").path)
        let pipeline = try rawChunks(pipelinePath)
        XCTAssertEqual(direct, pipeline)
        // One zstd frame: magic number 0xFD2FB528 (little-endian), then a frame header declaring a checksum.
        XCTAssertEqual(Array(direct[0].prefix(4)), [0x28, 0xB5, 0x2F, 0xFD])
        XCTAssertEqual(direct[0][4] & 0x04, 0x04)
        XCTAssertEqual(try ShardReader(url: URL(fileURLWithPath: dir.appendingPathComponent("shard-00000.h5").path)).read(0).volume,
                       sample.volume)
    }
}
