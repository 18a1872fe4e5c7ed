import Foundation
import Train
import XCTest

/// Source crops against values written out by hand: grids and slices whose values are linear in their coordinates, which
/// bilinear and trilinear sampling reproduce exactly, so every crop value has a closed form.
final class SourceCropsTests: XCTestCase {
    static let grid = [32, 24, 24]
    /// Grid channel c at voxel (d, h, w).
    static func gridValue(_ c: Int, _ q: [Double]) -> Double { Double(c) + 0.01 * q[0] + 0.02 * q[1] + 0.03 * q[2] }
    /// Slice s's value at (row, column).
    static func sliceValue(_ s: Int, row: Double, column: Double) -> Double { 0.1 * Double(s) + 0.01 * row + 0.001 * column }

    /// One slice: its 12 geometry numbers in grid voxels.
    struct Slice { var origin: [Float], column: [Float], row: [Float], normal: [Float] }

    /// A (B = samples.count) batch whose channel `channel` holds each sample's slices (rows × columns each, values
    /// `sliceValue` by the slice's stored index), the other channels none; voxels of 2 mm.
    static func sources(channel: Int, samples: [[Slice]], rows: Int, columns: Int) throws -> SourceBatch {
        let b = samples.count
        var pixels: [Tensor] = [], geometry: [Tensor] = [], valid: [Tensor] = []
        for c in 0..<3 {
            let s = c == channel ? max(1, samples.map(\.count).max()!) : 1
            let (r, w) = c == channel ? (rows, columns) : (1, 1)
            var p = [Float](repeating: 0, count: b * s * r * w), g = [Float](repeating: 0, count: b * s * 12), v = [Float](repeating: 0, count: b * s)
            if c == channel {
                for (i, slices) in samples.enumerated() {
                    for (k, slice) in slices.enumerated() {
                        for y in 0..<r { for x in 0..<w { p[((i * s + k) * r + y) * w + x] = Float(sliceValue(k, row: Double(y), column: Double(x))) } }
                        g.replaceSubrange(((i * s + k) * 12)..<((i * s + k) * 12 + 12), with: slice.origin + slice.column + slice.row + slice.normal)
                        v[i * s + k] = 1
                    }
                }
            }
            pixels.append(try Tensor(p.map(Float16.init), shape: [b, s, r, w]))
            geometry.append(try Tensor(g, shape: [b, s, 12]))
            valid.append(try Tensor(v, shape: [b, s]))
        }
        return SourceBatch(pixels: pixels, geometry: geometry, valid: valid, voxelMm: try Tensor([Float](repeating: 2, count: b), shape: [b]))
    }

    static func volume(samples: Int) throws -> Tensor {
        var values: [Float] = []
        for _ in 0..<samples {
            for c in 0..<3 {
                for d in 0..<grid[0] { for h in 0..<grid[1] { for w in 0..<grid[2] { values.append(Float(gridValue(c, [Double(d), Double(h), Double(w)]))) } } }
            }
        }
        return try Tensor(values, shape: [samples, 3] + grid)
    }

    /// Sagittal slices at d = 10, 12, 14, 16: columns along w, rows along h, 0.5 voxel pixels, origin (d, 2, 3).
    static let sagittal = [10, 12, 14, 16].map { d in Slice(origin: [Float(d), 2, 3], column: [0, 0, 0.5], row: [0, 0.5, 0], normal: [1, 0, 0]) }

    /// Compares `crops` (1 · B, 3, k, P, P) of sample `sample` with `expected(channel, t, i, j)`.
    func assertCrops(_ crops: Tensor, sample: Int, samples: Int, k: Int, p: Int, tolerance: Double = 2e-3,
                     _ expected: (Int, Int, Int, Int) -> Double, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(crops.shape, [samples, 3, k, p, p], file: file, line: line)
        let got = try crops.toArray(Float.self)
        var worst = 0.0
        for c in 0..<3 { for t in 0..<k { for i in 0..<p { for j in 0..<p {
            let value = Double(got[((((sample * 3 + c) * k + t) * p + i) * p) + j])
            worst = max(worst, abs(value - expected(c, t, i, j)))
        } } } }
        XCTAssertLessThan(worst, tolerance, file: file, line: line)
    }

    func testSagittalCropsTakeTheNearestSlicesAtTheirPixelsAndTheGridElsewhere() throws {
        let crops = try SourceCrops(slices: 3, size: 4, millimetres: 1)
        let x = try Self.volume(samples: 1)
        let sources = try Self.sources(channel: 0, samples: [Self.sagittal], rows: 30, columns: 36)
        let point: [Double] = [12.4, 8, 10]
        let u = (0..<4).map { (Double($0) - 1.5) * 0.5 }  // 1 mm pixels of 2 mm voxels
        for mirrored in [false, true] {
            let out = try crops(x, sources: sources, points: try Tensor(point.map(Float.init), shape: [1, 1, 3]),
                                reading: SourceCrops.Reading(channel: 0, axial: false, mirrored: mirrored))
            XCTAssertEqual(try out.fromSlices.to(.float32).toArray(Float.self), [1])
            // The window is slices 0, 1, 2 (d = 10, 12, 14) around the nearest (d = 12), running to −d when mirrored.
            try assertCrops(out.crops, sample: 0, samples: 1, k: 3, p: 4) { c, t, i, j in
                let s = mirrored ? 2 - t : t
                let q = [Double(10 + 2 * s), point[1] + u[i], point[2] + u[j]]
                return c == 0 ? Self.sliceValue(s, row: (q[1] - 2) / 0.5, column: (q[2] - 3) / 0.5) : Self.gridValue(c, q)
            }
        }
    }

    func testAxialCropsRunDownwardsWhateverTheStoredOrderAndMirrorAcrossTheMidline() throws {
        let crops = try SourceCrops(slices: 3, size: 4, millimetres: 1)
        let x = try Self.volume(samples: 1)
        // Stored from the bottom up (h = 12, 10, 8, 6): columns along w, rows along d.
        let axial = [12, 10, 8, 6].map { h in Slice(origin: [4, Float(h), 3], column: [0, 0, 0.5], row: [0.5, 0, 0], normal: [0, 1, 0]) }
        let sources = try Self.sources(channel: 2, samples: [axial], rows: 40, columns: 36)
        let point: [Double] = [12, 8.6, 10]
        let u = (0..<4).map { (Double($0) - 1.5) * 0.5 }
        for mirrored in [false, true] {
            let out = try crops(x, sources: sources, points: try Tensor(point.map(Float.init), shape: [1, 1, 3]),
                                reading: SourceCrops.Reading(channel: 2, axial: true, mirrored: mirrored))
            // Nearest: stored slice 2 (h = 8); the window, downwards (+h): stored 3, 2, 1 (h = 6, 8, 10).
            try assertCrops(out.crops, sample: 0, samples: 1, k: 3, p: 4) { c, t, i, j in
                let s = 3 - t
                let q = [point[0] + (mirrored ? -u[i] : u[i]), Double(6 + 2 * t), point[2] + u[j]]
                return c == 2 ? Self.sliceValue(s, row: (q[0] - 4) / 0.5, column: (q[2] - 3) / 0.5) : Self.gridValue(c, q)
            }
        }
    }

    func testACropFarFromEverySliceOrWithoutSlicesIsTheGrids() throws {
        let crops = try SourceCrops(slices: 3, size: 4, millimetres: 1, reach: 8, fallbackSpacing: 4)
        let x = try Self.volume(samples: 2)
        // Sample 0 has the slices but its point lies 10 voxels (20 mm) beyond the last; sample 1 has none.
        let sources = try Self.sources(channel: 0, samples: [Self.sagittal, []], rows: 30, columns: 36)
        let points: [Double] = [26, 8, 10, 12.4, 8, 10]
        let out = try crops(x, sources: sources, points: try Tensor(points.map(Float.init), shape: [2, 1, 3]),
                            reading: SourceCrops.Reading(channel: 0, axial: false, mirrored: false))
        XCTAssertEqual(try out.fromSlices.to(.float32).toArray(Float.self), [0, 0])
        let u = (0..<4).map { (Double($0) - 1.5) * 0.5 }
        for sample in 0..<2 {
            // Planes 4 mm (2 voxels) apart along +d, the grid's values on all three channels.
            try assertCrops(out.crops, sample: sample, samples: 2, k: 3, p: 4) { c, t, i, j in
                Self.gridValue(c, [points[3 * sample] + Double(t - 1) * 2, points[3 * sample + 1] + u[i], points[3 * sample + 2] + u[j]])
            }
        }
    }

    func testMirroringTheStudyMirrorsTheCrops() throws {
        // A flip of the grid and of the slices' geometry (as the augmenter and flip TTA do), read mirrored at the mirrored
        // point, gives the original's crop: the right side's crops look like the left's.
        let crops = try SourceCrops(slices: 3, size: 5, millimetres: 0.8)
        let x = try Self.volume(samples: 1)
        let axial = [6, 8, 10, 12].map { h in Slice(origin: [4, Float(h), 3], column: [0, 0, 0.5], row: [0.5, 0.05, 0], normal: [0, 1, 0]) }
        for (channel, slices, axialReading) in [(0, Self.sagittal, false), (2, axial, true)] {
            let sources = try Self.sources(channel: channel, samples: [slices], rows: 40, columns: 36)
            let point: [Float] = [12.3, 8.4, 9.7]
            let original = try crops(x, sources: sources, points: try Tensor(point, shape: [1, 1, 3]),
                                     reading: SourceCrops.Reading(channel: channel, axial: axialReading, mirrored: false)).crops
            let flipped = try crops(try x.flip([2]), sources: try sources.mirrored(depth: Self.grid[0]),
                                    points: try Tensor([Float(Self.grid[0] - 1) - point[0], point[1], point[2]], shape: [1, 1, 3]),
                                    reading: SourceCrops.Reading(channel: channel, axial: axialReading, mirrored: true)).crops
            let a = try original.toArray(Float.self), b = try flipped.toArray(Float.self)
            XCTAssertEqual(a.count, b.count)
            XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max()!, 1e-4, "channel \(channel)")
            XCTAssertGreaterThan(a.map(abs).max()!, 0.1)
        }
    }

    func testACropDoesNotDependOnTheRestOfTheBatch() throws {
        // The point lies by the last of the sample's four slices, so its window runs past them; in a batch with a sample of
        // eight slices the first is padded to eight, and its crop must stay the same (the window's order included).
        let crops = try SourceCrops(slices: 5, size: 4, millimetres: 1)
        let eight = (0..<8).map { k in Slice(origin: [Float(4 + 2 * k), 2, 3], column: [0, 0, 0.5], row: [0, 0.5, 0], normal: [1, 0, 0]) }
        let point: [Float] = [16.2, 8, 10]
        let alone = try crops(try Self.volume(samples: 1), sources: try Self.sources(channel: 0, samples: [Self.sagittal], rows: 30, columns: 36),
                              points: try Tensor(point, shape: [1, 1, 3]), reading: SourceCrops.Reading(channel: 0, axial: false, mirrored: false))
        let together = try crops(try Self.volume(samples: 2), sources: try Self.sources(channel: 0, samples: [Self.sagittal, eight], rows: 30, columns: 36),
                                 points: try Tensor(point + point, shape: [2, 1, 3]), reading: SourceCrops.Reading(channel: 0, axial: false, mirrored: false))
        let a = try alone.crops.toArray(Float.self), b = try together.crops.narrow(0, start: 0, length: 1).contiguous().toArray(Float.self)
        // Equal but for float rounding of the slice index's normalisation (1e-7), which differs with the padded count.
        XCTAssertEqual(a.count, b.count)
        XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max()!, 1e-5)
        // The window: slices 1, 2, 3 (d = 12, 14, 16) then two positions past the last, zero on the slices' channel.
        let u = (0..<4).map { (Double($0) - 1.5) * 0.5 }
        try assertCrops(alone.crops, sample: 0, samples: 1, k: 5, p: 4) { c, t, i, j in
            let q = [Double(12 + 2 * min(t, 2)), Double(point[1]) + u[i], Double(point[2]) + u[j]]
            return c == 0 ? (t < 3 ? Self.sliceValue(t + 1, row: (q[1] - 2) / 0.5, column: (q[2] - 3) / 0.5) : 0) : Self.gridValue(c, q)
        }
    }

    func testAnEvenSliceCountIsRefused() {
        // An even window would sit between two slices: its values blended, its geometry one slice's.
        XCTAssertThrowsError(try SourceCrops(slices: 4)) { XCTAssertTrue("\($0)".contains("odd"), "\($0)") }
        XCTAssertNoThrow(try SourceCrops(slices: 1))
    }
}
