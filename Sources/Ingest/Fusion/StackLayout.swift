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
        var pixels: [Float] = [], starts: [Int] = [], rows: [Int] = [], columns: [Int] = [], projections: [Double] = []
        pixels.reserveCapacity(ordered.reduce(0) { $0 + $1.pixels.count })
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
        var filtered = [[Float]](repeating: [], count: ordered.count)
        if antialias {
            filtered.withUnsafeMutableBufferPointer { out in
                DispatchQueue.concurrentPerform(iterations: ordered.count) { i in out[i] = StackLayout.smoothed(ordered[i], toward: voxel) }
            }
        }
        for (i, s) in ordered.enumerated() {
            let g = s.geometry
            let side = g.normal.dot(normal) < 0 ? -g.normal : g.normal
            projections += affine(g.columnDirection, g.position, g.rowSpacing)
            projections += affine(g.rowDirection, g.position, g.columnSpacing)
            projections += affine(side, g.position, 1)
            starts.append(pixels.count)
            rows.append(g.rows)
            columns.append(g.columns)
            pixels += antialias ? filtered[i] : s.pixels
        }
        self.pixels = pixels
        self.starts = starts
        self.rows = rows
        self.columns = columns
        self.projections = projections
    }

    /// The slice's pixels under a centred box filter about one voxel wide (2⌊f/2⌋ + 1 pixels, f = voxel /
    /// pixel spacing, per axis; averaged over the pixels present at the edges), on the slice's own pixel grid,
    /// so its geometry and coverage are unchanged. The pixels as they are where they are coarser than half a voxel.
    static func smoothed(_ slice: Slice, toward voxel: Double) -> [Float] {
        let g = slice.geometry
        let radiusR = Int(voxel / g.rowSpacing + 1e-6) / 2, radiusC = Int(voxel / g.columnSpacing + 1e-6) / 2
        guard radiusR + radiusC > 0 else { return slice.pixels }
        let rows = g.rows, cols = g.columns
        var across = [Float](repeating: 0, count: rows * cols), out = across
        // Separable running sums: along each row, then down each column; O(pixels) whatever the radius.
        slice.pixels.withUnsafeBufferPointer { px in
            for r in 0..<rows {
                var total: Float = 0
                for c in 0..<min(radiusC, cols) { total += px[r * cols + c] }
                for c in 0..<cols {
                    if c + radiusC < cols { total += px[r * cols + c + radiusC] }
                    if c - radiusC - 1 >= 0 { total -= px[r * cols + c - radiusC - 1] }
                    across[r * cols + c] = total / Float(min(c + radiusC, cols - 1) - max(c - radiusC, 0) + 1)
                }
            }
        }
        // Down the columns a whole row at a time, so memory is read in order.
        var totals = [Float](repeating: 0, count: cols)
        for r in 0..<min(radiusR, rows) { for c in 0..<cols { totals[c] += across[r * cols + c] } }
        for r in 0..<rows {
            if r + radiusR < rows { for c in 0..<cols { totals[c] += across[(r + radiusR) * cols + c] } }
            if r - radiusR - 1 >= 0 { for c in 0..<cols { totals[c] -= across[(r - radiusR - 1) * cols + c] } }
            let scale = 1 / Float(min(r + radiusR, rows - 1) - max(r - radiusR, 0) + 1)
            for c in 0..<cols { out[r * cols + c] = totals[c] * scale }
        }
        return out
    }
}
