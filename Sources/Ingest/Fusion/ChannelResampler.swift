import CFusion
import Core
import Foundation

/// Resamples the stacks of one channel onto a grid and combines them by coverage.
///
/// Each voxel of a stack's reach takes the bilinear in-plane samples of the two slices around it (each
/// slice with its own geometry) and interpolates linearly between them by its distance to each plane.
/// Across a gap wider than `gapFactor` × the stack's spacing, and beyond the first and last slice, a
/// slice reaches only half a spacing; nothing is interpolated between two different stacks. Where
/// several stacks cover a voxel, their values are averaged.
struct ChannelResampler {
    let grid: Grid
    let gapFactor: Double
    /// Whether slices are box-filtered to about the voxel size first (see `FusionParameters.antialias`).
    let antialias: Bool
    /// The planes (d) and rows (h) the accumulators hold, every column (w) of each: the region the channel's stacks
    /// can reach (`region(of:in:)`), or the whole grid. Voxels outside it are uncovered.
    let region: (d: Range<Int>, h: Range<Int>)
    /// Sum of the values of the stacks covering each voxel of `region`, indexed ((d − d₀)·rows + h − h₀)·W + w.
    private(set) var sum: [Float]
    /// How many stacks cover each voxel of `region`.
    private(set) var count: [Float]

    /// A resampler whose accumulators cover `region` (default: the whole grid). A sagittal slab or an axial stack
    /// reaches a fraction of a grid over the sagittal field of view: accumulators over that fraction are that much
    /// less memory to zero and to read back (issue 20's profile: zeroing the whole grid's was 4 % of an ingest).
    init(grid: Grid, gapFactor: Double, antialias: Bool, region: (d: Range<Int>, h: Range<Int>)? = nil) {
        self.grid = grid
        self.gapFactor = gapFactor
        self.antialias = antialias
        self.region = region ?? (0..<grid.shape[0], 0..<grid.shape[1])
        let n = self.region.d.count * self.region.h.count * grid.shape[2]
        sum = Array(repeating: 0, count: n)
        count = Array(repeating: 0, count: n)
    }

    /// The planes and rows of `grid` that `stacks` can reach (the union of `add`'s voxel ranges), or empty ranges.
    static func region(of stacks: [Stack], in grid: Grid) -> (d: Range<Int>, h: Range<Int>) {
        var d: Range<Int>? = nil, h: Range<Int>? = nil
        for stack in stacks where !stack.slices.isEmpty {
            guard let box = PatientBox.covering(stack), let r = voxelRange(of: box, in: grid) else { continue }
            d = d.map { min($0.lowerBound, r.d.lowerBound)..<max($0.upperBound, r.d.upperBound) } ?? r.d
            h = h.map { min($0.lowerBound, r.h.lowerBound)..<max($0.upperBound, r.h.upperBound) } ?? r.h
        }
        return (d ?? 0..<0, h ?? 0..<0)
    }

    /// Whether this CPU resamples four voxels at a time (AVX2); the values are the same bits either way.
    static var vectorsAvailable: Bool { cf_vectors_available() == 1 }

    /// Takes every voxel one at a time, even with AVX2, while `body` runs (tests compare both ways). Process-wide.
    static func withoutVectors<R>(_ body: () throws -> R) rethrows -> R {
        cf_use_vectors(0)
        defer { cf_use_vectors(1) }
        return try body()
    }

    /// Resamples one stack into the accumulators; returns how many voxels it covered.
    @discardableResult
    mutating func add(_ stack: Stack) throws -> Int {
        guard !stack.slices.isEmpty, let box = PatientBox.covering(stack) else { return 0 }
        let layout = try StackLayout(stack: stack, grid: grid, antialias: antialias)
        guard let range = Self.voxelRange(of: box, in: grid) else { return 0 }
        precondition(region.d.contains(range.d.lowerBound) && range.d.upperBound <= region.d.upperBound &&
                     region.h.contains(range.h.lowerBound) && range.h.upperBound <= region.h.upperBound,
                     "a stack reaches beyond the resampler's region")
        let planes = range.d.count
        var coveredPerPlane = [Int](repeating: 0, count: planes)
        let slices = layout.offsets.count
        let d0 = range.d.lowerBound
        sum.withUnsafeMutableBufferPointer { sumBuf in
        count.withUnsafeMutableBufferPointer { countBuf in
        coveredPerPlane.withUnsafeMutableBufferPointer { coveredBuf in
        layout.pixels.withUnsafeBufferPointer { pxBuf in
        layout.projections.withUnsafeBufferPointer { projBuf in
        layout.offsets.withUnsafeBufferPointer { offsBuf in
        layout.offsetProjection.withUnsafeBufferPointer { tBuf in
        layout.starts.withUnsafeBufferPointer { startsBuf in
        layout.rows.withUnsafeBufferPointer { rowsBuf in
        layout.columns.withUnsafeBufferPointer { colsBuf in
            // Shared with the planes' threads: the layout (and `plan`, pointers into it) is only read; plane i writes only
            // its own plane of sum and count, and coveredP[i].
            nonisolated(unsafe) let plan = cf_stack(
                pixels: pxBuf.baseAddress, projections: projBuf.baseAddress, offsets: offsBuf.baseAddress,
                offset_projection: tBuf.baseAddress,
                starts: UnsafeRawPointer(startsBuf.baseAddress!).assumingMemoryBound(to: Int64.self),
                rows: UnsafeRawPointer(rowsBuf.baseAddress!).assumingMemoryBound(to: Int64.self),
                columns: UnsafeRawPointer(colsBuf.baseAddress!).assumingMemoryBound(to: Int64.self),
                slices: Int64(slices), lowest: layout.offsets.first! - layout.reach, highest: layout.offsets.last! + layout.reach,
                max_gap: gapFactor * layout.spacing, reach: layout.reach,
                d_origin: Int64(region.d.lowerBound), h_origin: Int64(region.h.lowerBound),
                grid_h: Int64(region.h.count), grid_w: Int64(grid.shape[2]),
                h_begin: Int64(range.h.lowerBound), h_end: Int64(range.h.upperBound),
                w_begin: Int64(range.w.lowerBound), w_end: Int64(range.w.upperBound))
            nonisolated(unsafe) let sumP = sumBuf.baseAddress!, countP = countBuf.baseAddress!, coveredP = coveredBuf.baseAddress!
            StudyParallelism.forEach(planes) { i in
                withUnsafePointer(to: plan) { s in
                    withUnsafeTemporaryAllocation(of: Double.self, capacity: 3 * slices) { terms in
                        coveredP[i] = Int(cf_resample_plane(s, Int64(d0 + i), sumP, countP, terms.baseAddress!))
                    }
                }
            }
        }}}}}}}}}}
        return coveredPerPlane.reduce(0, +)
    }

    /// Hands the accumulators to `body`, which may turn the sums into means in place (`RobustRange.percentiles(ofMeans:)`):
    /// no grid-sized array is allocated or copied.
    mutating func withAccumulators<R>(_ body: (_ sums: UnsafeMutableBufferPointer<Float>, _ counts: UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try sum.withUnsafeMutableBufferPointer { s in try count.withUnsafeBufferPointer { c in try body(s, c) } }
    }

    /// The resampled channel: the coverage-weighted mean where any stack covers a voxel, 0 elsewhere,
    /// and which voxels are covered.
    /// Over the whole grid (voxels outside `region` uncovered).
    func finish() -> (values: [Float], covered: [Bool]) {
        var values = [Float](repeating: 0, count: grid.voxelCount), covered = [Bool](repeating: false, count: grid.voxelCount)
        let (H, W) = (grid.shape[1], grid.shape[2])
        var j = 0
        for d in region.d {
            for h in region.h {
                for w in 0..<W {
                    let i = (d * H + h) * W + w
                    covered[i] = count[j] > 0
                    values[i] = count[j] > 0 ? sum[j] / count[j] : 0
                    j += 1
                }
            }
        }
        return (values, covered)
    }

    /// The voxel index ranges (d, h, w) holding every voxel whose centre may lie in `box`; nil when none does.
    private static func voxelRange(of box: PatientBox, in grid: Grid) -> (d: Range<Int>, h: Range<Int>, w: Range<Int>)? {
        let lo = box.lower, hi = box.upper
        let corners = [lo.x, hi.x].flatMap { x in [lo.y, hi.y].flatMap { y in [lo.z, hi.z].map { z in grid.voxelIndex(of: Vec3(x, y, z)) } } }
        func axis(_ values: [Double], _ n: Int) -> Range<Int>? {
            // Clamped as doubles, then converted: a box no header check let through cannot trap here (issue 32).
            guard let low = values.min(), let high = values.max(), low.isFinite, high.isFinite else { return nil }
            let a = max((low - 1).rounded(.up), 0), b = min((high + 1).rounded(.down), Double(n - 1))
            guard a <= b, let first = a.checkedInt, let last = b.checkedInt else { return nil }
            return first..<(last + 1)
        }
        guard let d = axis(corners.map(\.x), grid.shape[0]), let h = axis(corners.map(\.y), grid.shape[1]),
              let w = axis(corners.map(\.z), grid.shape[2]) else { return nil }
        return (d, h, w)
    }
}
