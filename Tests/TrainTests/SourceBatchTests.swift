import Foundation
import Shards
import TestSupport
import XCTest
@testable import Train

/// The loader's source slices: each sample's slices in its grid's voxels, padded to the batch's largest, and moved by the
/// augmenter with the grid.
final class SourceBatchTests: XCTestCase {
    /// The fused grid's usual orientation at 2 mm: d → +x, h → −z, w → +y, voxel (0, 0, 0) at (−20, 30, 40) mm.
    static let affine: [Double] = [2, 0, 0, -20, 0, 0, 2, 30, 0, -2, 0, 40, 0, 0, 0, 1]

    func testSlicesArriveInTheGridsVoxelsPadded() throws {
        let dir = try Fixtures.scratch("source-batch")
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try ShardWriter(directory: dir, options: ShardWriterOptions(samplesPerShard: 2))
        // Sample 0: two sagittal slices of channel 1 (3 × 4 and 2 × 5 pixels of 0.5 mm; rows run down −z, columns along +y).
        let slices = [(x: -10.0, rows: 3, columns: 4), (x: -6.0, rows: 2, columns: 5)].map { s in
            SourceSlice(channel: 1, rows: s.rows, columns: s.columns, geometry: [s.x, 32, 36, 0, 0.5, 0, 0, 0, -0.5, 1, 0, 0])
        }
        let values = (0..<22).map { Float16(Float($0) / 32) }
        for (i, sources) in [SourcePixels(slices: slices, pixels: values), .empty].enumerated() {
            try writer.append(FusedSample(studyID: Int64(i + 1), shape: [4, 4, 4], volume: [Float16](repeating: 0, count: 192), present: [1, 1, 1],
                                          affine: Self.affine, keypoints: [Float](repeating: .nan, count: 75), norm: [0, 1, 0, 1, 0, 1],
                                          labels: [Int8](repeating: 0, count: 25), sources: sources))
        }
        _ = try writer.finish()
        var options = LoaderOptions(batchSize: 2, shuffle: false, dropLast: false, threads: 1)
        options.sourcePixels = true
        let batch = try XCTUnwrap(try ShardLoader(dataset: try ShardDataset(directory: dir), options: options).batches(from: LoaderPosition(epoch: 0)).next())
        let sources = try XCTUnwrap(batch.sources)
        XCTAssertEqual(try sources.voxelMm.toArray(Float.self), [2, 2])
        XCTAssertEqual(sources.pixels[1].shape, [2, 2, 3, 5])
        XCTAssertEqual(sources.pixels[0].shape, [2, 1, 1, 1])
        XCTAssertEqual(try sources.valid[1].toArray(Float.self), [1, 1, 0, 0])
        XCTAssertEqual(try sources.valid[0].toArray(Float.self), [0, 0])
        // Slice 0's pixels row by row, zero-padded to 5 columns; slice 1's 2 rows, then a zero row.
        let p = try sources.pixels[1].to(.float32).toArray(Float.self)
        XCTAssertEqual(Array(p[0..<5]), [0, 1, 2, 3, 0].map { $0 / 32 })
        XCTAssertEqual(Array(p[10..<15]), [8, 9, 10, 11, 0].map { $0 / 32 })
        XCTAssertEqual(Array(p[15..<20]), (12..<17).map { Float($0) / 32 })
        XCTAssertEqual(Array(p[25..<30]), [0, 0, 0, 0, 0])
        XCTAssertEqual(p[30...].max(), 0, "the second sample has no slices")
        // Geometry in voxels: x = 2d − 20 → d = (x + 20)/2; y = 2w + 30 → w = (y − 30)/2; z = −2h + 40 → h = (40 − z)/2.
        let g = try sources.geometry[1].toArray(Float.self)
        XCTAssertEqual(Array(g[0..<3]), [5, 2, 1])  // (−10, 32, 36) mm
        XCTAssertEqual(Array(g[3..<6]), [0, 0, 0.25])  // a column: 0.5 mm along +y
        XCTAssertEqual(Array(g[6..<9]), [0, 0.25, 0])  // a row: 0.5 mm down
        XCTAssertEqual(Array(g[9..<12]).map(abs), [1, 0, 0])  // the normal, unit in voxels
        XCTAssertEqual(Array(g[12..<15]), [7, 2, 1])
        XCTAssertEqual(g[24...].map(abs).max(), 0)

        // A loader for the axial slices alone leaves the sagittal ones out.
        options.sourceChannels = [2]
        let axialOnly = try XCTUnwrap(try ShardLoader(dataset: try ShardDataset(directory: dir), options: options).batches(from: LoaderPosition(epoch: 0)).next())
        XCTAssertEqual(try XCTUnwrap(axialOnly.sources).pixels[1].shape, [2, 1, 1, 1])
        XCTAssertEqual(try XCTUnwrap(axialOnly.sources).valid[1].toArray(Float.self), [0, 0])
    }

    func testTheAugmenterMovesTheSlicesAsTheKeypoints() throws {
        // One slice whose origin is keypoint 0 and whose steps end at keypoints 1 and 2 (from the origin): after any
        // flip and affine the augmenter draws, they must still be.
        let origin: [Float] = [5, 6, 7], column: [Float] = [0.5, 0, 0.25], row: [Float] = [0, 0.5, 0]
        var keypoints = [Float](repeating: .nan, count: 75)
        keypoints.replaceSubrange(0..<3, with: origin)
        keypoints.replaceSubrange(3..<6, with: zip(origin, column).map(+))
        keypoints.replaceSubrange(6..<9, with: zip(origin, row).map(+))
        let b = 6
        let normal: [Float] = [-0.4472136, 0, 0.8944272]  // column × row, unit
        let sources = SourceBatch(pixels: (0..<3).map { _ in try! Tensor.zeros([b, 1, 2, 2], dtype: .float16) },
                                  geometry: (0..<3).map { _ in try! Tensor((0..<b).flatMap { _ in origin + column + row + normal }, shape: [b, 1, 12]) },
                                  valid: (0..<3).map { _ in try! Tensor.ones([b, 1]) }, voxelMm: try Tensor.ones([b]))
        let batch = Batch(indices: Array(0..<b), studyIDs: (0..<b).map(Int64.init), volumes: try Tensor.zeros([b, 3, 12, 12, 12], dtype: .float16),
                          labels: try Tensor.zeros([b, 25], dtype: .int64), present: try Tensor.ones([b, 3]),
                          keypoints: try Tensor((0..<b).flatMap { _ in keypoints }, shape: [b, 25, 3]), sources: sources)
        let augmenter = Augmenter(options: AugmentationOptions(flip: 0.5, affine: 1, rotateDegrees: 20, scale: 0.2, translate: 0.1), seed: 4)
        let out = try augmenter(batch, step: 3)
        let k = try out.keypoints.toArray(Float.self), g = try XCTUnwrap(out.sources).geometry[2].toArray(Float.self)
        var flipped = 0
        for i in 0..<b {
            // A flip swaps the left and right columns: keypoints 0 … 2 (the canal's) stay where they were.
            let o = Array(k[(75 * i)..<(75 * i + 3)]), c = Array(k[(75 * i + 3)..<(75 * i + 6)]), r = Array(k[(75 * i + 6)..<(75 * i + 9)])
            let gi = Array(g[(12 * i)..<(12 * i + 12)])
            for a in 0..<3 {
                XCTAssertEqual(gi[a], o[a], accuracy: 1e-4)
                XCTAssertEqual(gi[3 + a], c[a] - o[a], accuracy: 1e-4)
                XCTAssertEqual(gi[6 + a], r[a] - o[a], accuracy: 1e-4)
            }
            let n = Array(gi[9..<12])
            XCTAssertEqual(n.map { $0 * $0 }.reduce(0, +), 1, accuracy: 1e-4)
            // Still perpendicular to both steps.
            XCTAssertEqual(zip(n, gi[3..<6]).map(*).reduce(0, +), 0, accuracy: 1e-4)
            XCTAssertEqual(zip(n, gi[6..<9]).map(*).reduce(0, +), 0, accuracy: 1e-4)
            if gi[3] < 0 { flipped += 1 }
        }
        XCTAssertGreaterThan(flipped, 0, "some samples drew a flip")
        XCTAssertLessThan(flipped, b, "some did not")
    }

    func testTheTallyCountsEachGroupAndNamesThoseReadFromTheGrid() {
        // Two studies: every recess crop of the first from the slices, two of the second's fell back.
        var flags = [Bool](repeating: false, count: 50)
        for c in 15..<25 { flags[c] = true }
        for c in 40..<48 { flags[c] = true }
        let tally = SourceCropTally(groups: [2]).adding(flags)
        XCTAssertEqual(tally.crops, [10, 20, 20])
        XCTAssertEqual(tally.fromSlices, [0, 0, 18])
        XCTAssertEqual(tally.description, "stage-two crops from the source slices: recesses 18/20 (the rest from the grid: their series "
                       + "missing, or no slice of it near the point); canal, foramina read from the grid (two_stage.source_crop_groups)")
        XCTAssertEqual(SourceCropTally(groups: [0, 1, 2]).adding([Bool](repeating: true, count: 25)).description,
                       "stage-two crops from the source slices: canal 5/5, foramina 10/10, recesses 10/10")
    }
}
