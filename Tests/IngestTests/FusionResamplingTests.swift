import Core
import Foundation
@testable import Ingest
import XCTest

/// The resampler on hand-checkable stacks: axial slices whose pixels are `base + x`, onto a 1 mm grid
/// whose h axis runs down z from 7.5 mm (h = 0) to −3.5 mm (h = 11).
final class FusionResamplingTests: XCTestCase {
    let grid = Grid(shape: [4, 12, 4], affine: [1, 0, 0, -1.5,
                                                0, 0, 1, -1.5,
                                                0, -1, 0, 7.5,
                                                0, 0, 0, 1])

    /// An axial slice at height z, 11 × 11 pixels of 1 mm over x, y ∈ [−5, 5], valued `base + x`.
    func axial(z: Double, base: Float) -> Slice {
        let g = SliceGeometry(position: Vec3(-5, -5, z), rowDirection: Vec3(1, 0, 0), columnDirection: Vec3(0, 1, 0),
                              rowSpacing: 1, columnSpacing: 1, rows: 11, columns: 11, thickness: 4)
        let pixels = (0..<121).map { base + Float($0 % 11) - 5 }
        return Slice(geometry: g, pixels: pixels, instanceNumber: Int(z), sopInstanceUID: "", source: "z\(z)")
    }

    /// Values down the h column at d = 2 (x = 0.5), w = 1, or nil where uncovered.
    func column(_ stacks: [Stack]) throws -> [Float?] {
        var r = ChannelResampler(grid: grid, gapFactor: 1.5, antialias: true)
        for s in stacks { try r.add(s) }
        let (values, covered) = r.finish()
        return (0..<12).map { h in let i = 2 * 48 + h * 4 + 1; return covered[i] ? values[i] : nil }
    }

    func testInterpolatesBetweenSlicesAndReachesHalfASpacingBeyond() throws {
        let got = try column([Stack(slices: [axial(z: 4, base: 200), axial(z: 0, base: 100)])])
        // z = 7.5, 6.5 beyond reach; 5.5, 4.5 take the top slice; 3.5…0.5 interpolate; −0.5, −1.5 the bottom one.
        let expected: [Float?] = [nil, nil, 200.5, 200.5, 188, 163, 138, 113, 100.5, 100.5, nil, nil]
        XCTAssertEqual(got.count, expected.count)
        for (g, e) in zip(got, expected) {
            if let e { XCTAssertEqual(g ?? -1, e, accuracy: 1e-4) } else { XCTAssertNil(g) }
        }
    }

    func testLeavesAWideGapInsideAStackEmpty() throws {
        // Slices at z = −4, 0, 4 and 16: median spacing 4 mm, so the 12 mm gap is not bridged.
        let tall = Grid(shape: [4, 30, 4], affine: [1, 0, 0, -1.5, 0, 0, 1, -1.5, 0, -1, 0, 19.5, 0, 0, 0, 1])
        var r = ChannelResampler(grid: tall, gapFactor: 1.5, antialias: true)
        try r.add(Stack(slices: [axial(z: -4, base: 0), axial(z: 0, base: 0), axial(z: 4, base: 0), axial(z: 16, base: 0)]))
        let covered = r.finish().covered
        // h → z = 19.5 − h; covered within 2 mm of the slice at 16, and from 6 down to −6; nothing in (6, 14).
        let coveredZ = (0..<30).filter { covered[2 * 120 + $0 * 4 + 1] }.map { 19.5 - Double($0) }
        XCTAssertEqual(coveredZ, [17.5, 16.5, 15.5, 14.5, 5.5, 4.5, 3.5, 2.5, 1.5, 0.5, -0.5, -1.5, -2.5, -3.5, -4.5, -5.5])
    }

    /// Accumulators over the region the stacks reach (what the fuser uses) hold the same voxels as over the whole grid,
    /// and the region is smaller than the grid.
    func testARegionsAccumulatorsGiveTheWholeGridsValues() throws {
        let tall = Grid(shape: [4, 30, 4], affine: [1, 0, 0, -1.5, 0, 0, 1, -1.5, 0, -1, 0, 19.5, 0, 0, 0, 1])
        let stacks = [Stack(slices: [axial(z: -4, base: 10), axial(z: 0, base: 50), axial(z: 4, base: 90)]),
                      Stack(slices: [axial(z: 3, base: 300), axial(z: 7, base: 200)])]
        let region = ChannelResampler.region(of: stacks, in: tall)
        XCTAssertLessThan(region.h.count, 30)
        var whole = ChannelResampler(grid: tall, gapFactor: 1.5, antialias: true)
        var part = ChannelResampler(grid: tall, gapFactor: 1.5, antialias: true, region: region)
        for s in stacks { XCTAssertEqual(try whole.add(s), try part.add(s)) }
        XCTAssertEqual(part.sum.count, region.d.count * region.h.count * 4)
        let (a, b) = (whole.finish(), part.finish())
        XCTAssertEqual(a.values, b.values)
        XCTAssertEqual(a.covered, b.covered)
        XCTAssertTrue(a.covered.contains(true))
    }

    func testOverlappingStacksAreAveragedAndNeverBridged() throws {
        let low = Stack(slices: [axial(z: 1, base: 100)])
        let high = Stack(slices: [axial(z: 5, base: 300)])
        // One-slice stacks reach half their 4 mm thickness: [−1, 3] and [3, 7]; no interpolation between them.
        let got = try column([low, high])
        let expected: [Float?] = [nil, 300.5, 300.5, 300.5, 300.5, 100.5, 100.5, 100.5, 100.5, nil, nil, nil]
        for (g, e) in zip(got, expected) {
            if let e { XCTAssertEqual(g ?? -1, e, accuracy: 1e-4) } else { XCTAssertNil(g) }
        }
        let twice = try column([low, Stack(slices: [axial(z: 1, base: 200)])])
        XCTAssertEqual(twice[6] ?? -1, 150.5, accuracy: 1e-4, "two stacks over one voxel are averaged")
    }

    func testTiltedSliceIsSampledWithItsOwnGeometry() throws {
        // One slice tilted 30° about x through (0, 0, 2): its plane holds z = 2 + y·tan 30°.
        let angle = Double.pi / 6
        let cd = Vec3(0, cos(angle), sin(angle))
        let g = SliceGeometry(position: Vec3(-5, 0, 2) - 5 * cd, rowDirection: Vec3(1, 0, 0), columnDirection: cd,
                              rowSpacing: 1, columnSpacing: 1, rows: 11, columns: 11, thickness: 2)
        let pixels = (0..<121).map { Float($0 / 11) * 10 + Float($0 % 11) }
        var r = ChannelResampler(grid: grid, gapFactor: 1.5, antialias: true)
        try r.add(Stack(slices: [Slice(geometry: g, pixels: pixels, instanceNumber: 1, sopInstanceUID: "", source: "tilted")]))
        let (values, covered) = r.finish()
        // Voxel (d 2, h 6, w 1) = (0.5, −0.5, 1.5) lies 0.18 mm from the plane (within its 1 mm reach); it
        // projects onto column 5.5 and row 5 + (−0.5 cos 30° + (1.5 − 2) sin 30°) = 4.317.
        let i = 2 * 48 + 6 * 4 + 1
        XCTAssertTrue(covered[i])
        let row = 5 + (-0.5 * cos(angle) + (1.5 - 2) * sin(angle))
        XCTAssertEqual(Double(values[i]), row * 10 + 5.5, accuracy: 1e-3)
    }

    /// The slice's pixels as the stack layout uses them: box-filtered by `StackLayout.smooth`, or as they are.
    private func boxFiltered(_ slice: Slice, toward voxel: Double) -> [Float] {
        var out = [Float](repeating: .nan, count: slice.pixels.count)
        let filtered = out.withUnsafeMutableBufferPointer { StackLayout.smooth(slice, toward: voxel, into: $0.baseAddress!) }
        return filtered ? out : slice.pixels
    }

    /// The AVX2 box filter (CFusion's box.c: eight rows in the lanes of a register, a ring of rows for the column pass)
    /// gives the Swift loops' bits: images narrower and wider than a tile of eight, fewer rows than eight and rows left
    /// over from the blocks, radii from 0 to wider than the image, and values of mixed sign and magnitude (so that a sum
    /// taken in another order rounds differently).
    func testVectorisedBoxFilterEqualsTheLoops() throws {
        try XCTSkipUnless(ChannelResampler.vectorsAvailable, "this CPU has no AVX2: only the loops run")
        var rng = SplitMix64(seed: 20)  // the same values every run
        func next() -> UInt64 { rng.next() }
        var checked = 0
        for (rows, columns) in [(1, 1), (3, 40), (7, 9), (8, 8), (9, 17), (16, 5), (24, 64), (29, 67), (70, 33)] {
            let pixels = (0..<rows * columns).map { _ in
                (Float(next() % 2_000_001) / 1e6 - 1) * [1, 1000, 3e5][Int(next() % 3)]
            }
            for (radiusRows, radiusColumns) in [(0, 1), (1, 0), (1, 1), (2, 3), (3, 2), (5, 5), (40, 1), (1, 40)] {
                // smooth takes radius ⌊⌊voxel / spacing⌋ / 2⌋ per axis: spacing 1 / (2r + 0.5) at a 1 mm voxel gives r.
                let g = SliceGeometry(position: Vec3(0, 0, 0), rowDirection: Vec3(1, 0, 0), columnDirection: Vec3(0, 1, 0),
                                      rowSpacing: 1 / (2 * Double(radiusRows) + 0.5), columnSpacing: 1 / (2 * Double(radiusColumns) + 0.5),
                                      rows: rows, columns: columns, thickness: 1)
                let slice = Slice(geometry: g, pixels: pixels, instanceNumber: 1, sopInstanceUID: "", source: "random")
                let fast = boxFiltered(slice, toward: 1)
                let loops = ChannelResampler.withoutVectors { boxFiltered(slice, toward: 1) }
                if rows > 2 && columns > 2 { XCTAssertNotEqual(loops, pixels, "\(rows)×\(columns), radii \(radiusRows), \(radiusColumns): filtered") }
                XCTAssertTrue(fast.map(\.bitPattern) == loops.map(\.bitPattern),
                              "\(rows)×\(columns), radii \(radiusRows), \(radiusColumns)")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 72)
    }

    func testAntialiasingAveragesAVoxelWideBoxOfPixels() throws {
        // A 900 spike at pixel (5, 5) = (0, 0, 0) of a 0 slice; rows 0.5 mm, columns 1 mm apart.
        var spike = axial(z: 0, base: 0)
        spike.pixels = [Float](repeating: 0, count: 121)
        spike.pixels[5 * 11 + 5] = 900
        spike.geometry.rowSpacing = 0.5
        spike.geometry.position = Vec3(-5, -2.5, 0)
        // Voxels of 2 mm: a box of 2·⌊4/2⌋+1 = 5 rows by 2·⌊2/2⌋+1 = 3 columns, 900 / 15 = 60 around the spike.
        let smoothed = boxFiltered(spike, toward: 2)
        XCTAssertEqual(smoothed[5 * 11 + 5], 60)
        XCTAssertEqual(smoothed[7 * 11 + 6], 60)
        XCTAssertEqual(smoothed[8 * 11 + 5], 0)
        XCTAssertEqual(smoothed[5 * 11 + 7], 0)
        // At the edges the box averages the pixels present: a constant image stays constant.
        var flat = spike
        flat.pixels = [Float](repeating: 50, count: 121)
        XCTAssertTrue(boxFiltered(flat, toward: 2).allSatisfy { $0 == 50 })
        // Pixels coarser than half a voxel are left as they are.
        XCTAssertEqual(boxFiltered(spike, toward: 0.9), spike.pixels)

        // Through the resampler on a 2 mm grid with a voxel centred on the spike: 60 with antialiasing, 900 without.
        let coarse = Grid(shape: [5, 1, 5], affine: [2, 0, 0, -4, 0, 0, 2, -4, 0, -2, 0, 0, 0, 0, 0, 1])
        for (antialias, expected) in [(true, Float(60)), (false, Float(900))] {
            var r = ChannelResampler(grid: coarse, gapFactor: 1.5, antialias: antialias)
            try r.add(Stack(slices: [spike]))
            XCTAssertEqual(r.finish().values[2 * 5 + 2], expected, accuracy: 1e-3)
        }
    }
}
