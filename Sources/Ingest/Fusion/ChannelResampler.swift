import CFusion
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
    /// Sum of the values of the stacks covering each voxel.
    private(set) var sum: [Float]
    /// How many stacks cover each voxel.
    private(set) var count: [Float]

    init(grid: Grid, gapFactor: Double, antialias: Bool) {
        self.grid = grid
        self.gapFactor = gapFactor
        self.antialias = antialias
        sum = Array(repeating: 0, count: grid.voxelCount)
        count = Array(repeating: 0, count: grid.voxelCount)
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
        guard let range = voxelRange(of: box) else { return 0 }
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
                grid_h: Int64(grid.shape[1]), grid_w: Int64(grid.shape[2]),
                h_begin: Int64(range.h.lowerBound), h_end: Int64(range.h.upperBound),
                w_begin: Int64(range.w.lowerBound), w_end: Int64(range.w.upperBound))
            nonisolated(unsafe) let sumP = sumBuf.baseAddress!, countP = countBuf.baseAddress!, coveredP = coveredBuf.baseAddress!
            DispatchQueue.concurrentPerform(iterations: planes) { i in
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
    func finish() -> (values: [Float], covered: [Bool]) {
        let n = sum.count
        let covered = [Bool](unsafeUninitializedCapacity: n) { buffer, initialized in
            count.withUnsafeBufferPointer { c in for i in 0..<n { buffer[i] = c[i] > 0 } }
            initialized = n
        }
        let values = [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
            sum.withUnsafeBufferPointer { s in
                count.withUnsafeBufferPointer { c in
                    // The quotient taken for every voxel and selected (not divided under a branch): LLVM vectorizes it;
                    // covered voxels get the same bits.
                    for i in 0..<n {
                        let q = s[i] / c[i]
                        buffer[i] = c[i] > 0 ? q : 0
                    }
                }
            }
            initialized = n
        }
        return (values, covered)
    }

    /// The voxel index ranges (d, h, w) holding every voxel whose centre may lie in `box`; nil when none does.
    private func voxelRange(of box: PatientBox) -> (d: Range<Int>, h: Range<Int>, w: Range<Int>)? {
        let lo = box.lower, hi = box.upper
        let corners = [lo.x, hi.x].flatMap { x in [lo.y, hi.y].flatMap { y in [lo.z, hi.z].map { z in grid.voxelIndex(of: Vec3(x, y, z)) } } }
        func axis(_ values: [Double], _ n: Int) -> Range<Int>? {
            let a = max(Int((values.min()! - 1).rounded(.up)), 0), b = min(Int((values.max()! + 1).rounded(.down)), n - 1)
            return a <= b ? a..<(b + 1) : nil
        }
        guard let d = axis(corners.map(\.x), grid.shape[0]), let h = axis(corners.map(\.y), grid.shape[1]),
              let w = axis(corners.map(\.z), grid.shape[2]) else { return nil }
        return (d, h, w)
    }
}
