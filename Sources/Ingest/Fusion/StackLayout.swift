import CFusion
import Core
import Foundation

/// A stack prepared for resampling onto one grid: its slices ordered along the stack normal, their
/// pixels in one buffer, and each slice's (row, column, distance) as affine functions of the voxel index.
///
/// Precomputing the projections makes a voxel's sample a few multiply-adds per slice instead of a
/// change of basis; each slice keeps its own geometry, so slightly tilted or shifted slices resample correctly.
struct StackLayout {
    /// Unit normal of the stack (its first slice's), along which the slices are ordered.
    let normal: Vec3
    /// Median distance between neighbouring slices along `normal` (mm).
    let spacing: Double
    /// How far the stack reaches beyond its first and last slice, and across a gap too wide to interpolate.
    let reach: Double
    /// Each slice's offset along `normal`, ascending.
    let offsets: [Double]
    /// All slices' pixels, slice after slice, row-major.
    let pixels: [Float]
    /// Where each slice's pixels start in `pixels`.
    let starts: [Int]
    let rows: [Int]
    let columns: [Int]
    /// Per slice 12 coefficients: row, column and signed distance (along `normal`'s side), each as
    /// (d, h, w, constant) of the voxel index.
    let projections: [Double]
    /// (d, h, w, constant) of the voxel's offset along `normal`.
    let offsetProjection: [Double]

    /// Lays out `stack` for `grid`; with `antialias`, each slice is first box-filtered to about the voxel size.
    init(stack: Stack, grid: Grid, antialias: Bool) throws {
        normal = stack.normal
        let ordered = stack.slices.sorted { $0.geometry.position.dot(stack.normal) < $1.geometry.position.dot(stack.normal) }
        spacing = stack.spacing
        reach = spacing / 2
        offsets = ordered.map { $0.geometry.position.dot(stack.normal) }
        let axes = grid.axes, origin = grid.origin
        func affine(_ dir: Vec3, _ base: Vec3, _ scale: Double) -> [Double] {
            [axes.d.dot(dir) / scale, axes.h.dot(dir) / scale, axes.w.dot(dir) / scale, (origin - base).dot(dir) / scale]
        }
        offsetProjection = affine(normal, .zero, 1)
        var starts: [Int] = [], rows: [Int] = [], columns: [Int] = [], projections: [Double] = []
        var offset = 0
        for s in ordered {
            let g = s.geometry
            guard g.rows > 0, g.columns > 0, s.pixels.count == g.rows * g.columns else {
                throw FusionError.malformedSlice(source: s.source, message: "\(s.pixels.count) pixels for a \(g.rows)×\(g.columns) image")
            }
            guard g.rowSpacing > 0, g.columnSpacing > 0, g.normal.length > 0.5 else {
                throw FusionError.malformedSlice(source: s.source, message: "pixel spacing \(g.rowSpacing)×\(g.columnSpacing) or orientation is degenerate")
            }
        }
        let voxel = grid.spacing.min()!
        for s in ordered {
            let g = s.geometry
            let side = g.normal.dot(normal) < 0 ? -g.normal : g.normal
            projections += affine(g.columnDirection, g.position, g.rowSpacing)
            projections += affine(g.rowDirection, g.position, g.columnSpacing)
            projections += affine(side, g.position, 1)
            starts.append(offset)
            offset += s.pixels.count
            rows.append(g.rows)
            columns.append(g.columns)
        }
        // Every slice's pixels (box-filtered with `antialias`) go straight to their place in the one buffer,
        // slice by slice on all cores: no per-slice array, no zero-filling of memory about to be written.
        let total = ordered.reduce(0) { $0 + $1.pixels.count }
        let sliceStarts = starts
        pixels = [Float](unsafeUninitializedCapacity: total) { buffer, initialized in
            nonisolated(unsafe) let out = buffer.baseAddress!  // each slice's thread initializes only its own range
            StudyParallelism.forEach(ordered.count) { i in
                let destination = out + sliceStarts[i]
                if !antialias || !StackLayout.smooth(ordered[i], toward: voxel, into: destination) {
                    ordered[i].pixels.withUnsafeBufferPointer { destination.initialize(from: $0.baseAddress!, count: $0.count) }
                }
            }
            initialized = total
        }
        self.starts = starts
        self.rows = rows
        self.columns = columns
        self.projections = projections
    }

    /// Writes the slice's pixels under a centred box filter about one voxel wide (2⌊f/2⌋ + 1 pixels, f = voxel /
    /// pixel spacing, per axis; averaged over the pixels present at the edges) to `out`, on the slice's own pixel
    /// grid, so its geometry and coverage are unchanged. Returns false, writing nothing, where the pixels are
    /// coarser than half a voxel (they are used as they are).
    static func smooth(_ slice: Slice, toward voxel: Double, into out: UnsafeMutablePointer<Float>) -> Bool {
        let g = slice.geometry
        // Bounded by the slice's own size (a wider box averages the same pixels); a ratio that is not a finite number
        // leaves the slice unsmoothed instead of trapping (issue 32).
        let radiusR = min((voxel / g.rowSpacing + 1e-6).checkedInt ?? 0, 2 * g.rows) / 2
        let radiusC = min((voxel / g.columnSpacing + 1e-6).checkedInt ?? 0, 2 * g.columns) / 2
        guard radiusR + radiusC > 0 else { return false }
        let rows = g.rows, cols = g.columns
        // With AVX2, CFusion's box.c: eight rows at a time, both passes through a ring of rows kept in the cache (the
        // same bits); otherwise the loops below.
        let done = slice.pixels.withUnsafeBufferPointer {
            cf_box_filter($0.baseAddress!, out, Int64(rows), Int64(cols), Int64(radiusR), Int64(radiusC)) != 0
        }
        if done { return true }
        // Separable running sums: along each row, then down each column; O(pixels) whatever the radius. Rows are
        // addressed through row pointers and the edges are loops of their own, so that the inner loops have no
        // checked index arithmetic or branches (the column pass vectorizes); every sum is taken in the same order.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: rows * cols + cols) { scratch in
            let across = scratch.baseAddress!, totals = across + rows * cols
            slice.pixels.withUnsafeBufferPointer { pxBuf in
                let px = pxBuf.baseAddress!
                // Columns lower..<upper have the whole box inside the row: add one, drop one, divide by its width.
                let lower = min(radiusC + 1, cols), upper = max(lower, cols - radiusC)
                let full = Float(2 * radiusC + 1)
                @inline(__always) func width(_ c: Int) -> Float { Float(min(c + radiusC, cols - 1) - max(c - radiusC, 0) + 1) }
                // Four rows at a time, each with its own running sum: a row's sums wait on each other (an add and a
                // subtract per pixel), four rows' do not. Every row's sums are taken in the same order as one at a time.
                var r = 0
                while r + 4 <= rows {
                    let l0 = px + r &* cols, l1 = l0 + cols, l2 = l1 + cols, l3 = l2 + cols
                    let s0 = across + r &* cols, s1 = s0 + cols, s2 = s1 + cols, s3 = s2 + cols
                    var t0: Float = 0, t1: Float = 0, t2: Float = 0, t3: Float = 0
                    for c in 0..<min(radiusC, cols) { t0 += l0[c]; t1 += l1[c]; t2 += l2[c]; t3 += l3[c] }
                    @inline(__always) func edge(_ c: Int) {
                        if c + radiusC < cols {
                            let j = c + radiusC
                            t0 += l0[j]; t1 += l1[j]; t2 += l2[j]; t3 += l3[j]
                        }
                        if c - radiusC - 1 >= 0 {
                            let j = c - radiusC - 1
                            t0 -= l0[j]; t1 -= l1[j]; t2 -= l2[j]; t3 -= l3[j]
                        }
                        let w = width(c)
                        s0[c] = t0 / w; s1[c] = t1 / w; s2[c] = t2 / w; s3[c] = t3 / w
                    }
                    for c in 0..<lower { edge(c) }
                    // The sums first, then each row's divisions in a loop of their own (LLVM vectorizes it; inline they were
                    // one scalar division a pixel, the pass's bottleneck).
                    for c in lower..<upper {
                        let a = c &+ radiusC, b = c &- radiusC &- 1
                        t0 += l0[a]; t0 -= l0[b]; s0[c] = t0
                        t1 += l1[a]; t1 -= l1[b]; s1[c] = t1
                        t2 += l2[a]; t2 -= l2[b]; s2[c] = t2
                        t3 += l3[a]; t3 -= l3[b]; s3[c] = t3
                    }
                    for c in upper..<cols { edge(c) }
                    @inline(__always) func divide(_ line: UnsafeMutablePointer<Float>) { for c in lower..<upper { line[c] = line[c] / full } }
                    divide(s0); divide(s1); divide(s2); divide(s3)
                    r += 4
                }
                for r in r..<rows {
                    let line = px + r &* cols, smoothed = across + r &* cols
                    var total: Float = 0
                    for c in 0..<min(radiusC, cols) { total += line[c] }
                    @inline(__always) func edge(_ c: Int) {
                        if c + radiusC < cols { total += line[c + radiusC] }
                        if c - radiusC - 1 >= 0 { total -= line[c - radiusC - 1] }
                        smoothed[c] = total / width(c)
                    }
                    for c in 0..<lower { edge(c) }
                    for c in lower..<upper {
                        total += line[c &+ radiusC]
                        total -= line[c &- radiusC &- 1]
                        smoothed[c] = total / full
                    }
                    for c in upper..<cols { edge(c) }
                }
            }
            // Down the columns a whole row at a time, so memory is read in order.
            totals.initialize(repeating: 0, count: cols)
            @inline(__always) func add(_ r: Int) { let row = across + r &* cols; for c in 0..<cols { totals[c] += row[c] } }
            for r in 0..<min(radiusR, rows) { add(r) }
            for r in 0..<rows {
                let scale = 1 / Float(min(r + radiusR, rows - 1) - max(r - radiusR, 0) + 1)
                let smoothed = out + r &* cols
                // Adding the row entering the box, dropping the one leaving it and scaling in one pass over the totals
                // (three passes before); each total takes the same operations in the same order.
                let entering = r + radiusR < rows ? across + (r + radiusR) &* cols : nil
                let leaving = r - radiusR - 1 >= 0 ? across + (r - radiusR - 1) &* cols : nil
                if let entering, let leaving {
                    for c in 0..<cols { let t = (totals[c] + entering[c]) - leaving[c]; totals[c] = t; smoothed[c] = t * scale }
                } else if let entering {
                    for c in 0..<cols { let t = totals[c] + entering[c]; totals[c] = t; smoothed[c] = t * scale }
                } else if let leaving {
                    for c in 0..<cols { let t = totals[c] - leaving[c]; totals[c] = t; smoothed[c] = t * scale }
                } else {
                    for c in 0..<cols { smoothed[c] = totals[c] * scale }
                }
            }
        }
        return true
    }
}
