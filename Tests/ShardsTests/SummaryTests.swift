import Foundation
import Shards
import TestSupport
import XCTest

final class SummaryTests: XCTestCase {
    func testSummaryCountsLabelsMissingSeriesAndVoxelStatistics() throws {
        let dir = try Fixtures.scratch()
        let writer = try ShardWriter(directory: dir, options: .init(samplesPerShard: 2, parameters: ["k": "v"]))
        for seed in 0..<3 { try writer.append(SampleFactory.sample(seed)) }
        try writer.finish()

        let summary = try ShardSummary.compute(directory: dir)
        XCTAssertEqual(summary.samples, 3)
        XCTAssertEqual(summary.shards, 2)
        XCTAssertEqual(summary.shape, [4, 6, 5])
        XCTAssertEqual(summary.volumeBytes, 3 * 3 * 120 * 2)
        XCTAssertGreaterThan(summary.compressionRatio, 1)
        // Column 0 holds (0 + seed) % 4 − 1 for seeds 0, 1, 2: −1, 0, 1.
        XCTAssertEqual(summary.labels[0], .init(column: "spinal_canal_stenosis_l1_l2", counts: [1, 1, 0], missing: 1))
        // Seed 1 has no Sagittal T2/STIR.
        XCTAssertEqual(summary.channels[1].missingStudies, [1_000_000_001])
        XCTAssertEqual(summary.channels[1].present, 2)
        // Channel 0, seed 0: voxel (5d + 3h + w) / 1024 has min 0 and max (15 + 15 + 4) / 1024.
        XCTAssertEqual(summary.channels[0].voxels?.min, 0)
        XCTAssertEqual(summary.channels[0].voxels?.max, Double(Float16(Float(2 + 15 + 15 + 4) / 1024)))
        let decoded = try JSONDecoder().decode(ShardSummary.self, from: try summary.json())
        XCTAssertEqual(decoded, summary)
        XCTAssertTrue(summary.text.contains("3 samples in 2 shard(s), grid 4×6×5"), summary.text)
        XCTAssertTrue(summary.text.contains("sagittal_t2_stir   present 2, missing 1 (1000000001); min 0.007"), summary.text)

        let quick = try ShardSummary.compute(directory: dir, voxelStatistics: false)
        XCTAssertEqual(quick.labels, summary.labels)
        XCTAssertEqual(quick.channels.map(\.missingStudies), [[], [1_000_000_001], []])
        XCTAssertNil(quick.channels[0].voxels)
        XCTAssertEqual(quick.compressionRatio, summary.compressionRatio)
    }
}
