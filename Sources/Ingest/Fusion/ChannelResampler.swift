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

    /// Resamples one stack into the accumulators; returns how many voxels it covered.
    @discardableResult
    mutating func add(_ stack: Stack) throws -> Int {
        guard !stack.slices.isEmpty, let box = PatientBox.covering(stack) else { return 0 }
        let layout = try StackLayout(stack: stack, grid: grid, antialias: antialias)
        guard let range = voxelRange(of: box) else { return 0 }
        let (H, W) = (grid.shape[1], grid.shape[2])
        let planes = range.d.count
        var coveredPerPlane = [Int](repeating: 0, count: planes)
        let maxGap = gapFactor * layout.spacing
        let reach = layout.reach
        let lowest = layout.offsets.first! - reach, highest = layout.offsets.last! + reach
        let last = layout.offsets.count - 1
        let hRange = range.h, wRange = range.w, d0 = range.d.lowerBound
        let slices = layout.offsets.count
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
            // Shared with the planes' threads: the layout is only read; plane i writes only its own plane of sum and count, and coveredP[i].
            nonisolated(unsafe) let sumP = sumBuf.baseAddress!, countP = countBuf.baseAddress!, coveredP = coveredBuf.baseAddress!
            nonisolated(unsafe) let px = pxBuf.baseAddress!, proj = projBuf.baseAddress!, offs = offsBuf.baseAddress!, t = tBuf.baseAddress!
            nonisolated(unsafe) let starts = startsBuf.baseAddress!, rows = rowsBuf.baseAddress!, cols = colsBuf.baseAddress!
            DispatchQueue.concurrentPerform(iterations: planes) { i in
                let di = d0 + i, d = Double(di)
                var covered = 0
                // Per row, each affine function's d and h terms (a·d + b·h) are computed once per slice; a voxel
                // adds its w term and the constant in the same order as the whole expression ((a·d + b·h) + c·w) + e,
                // so every value is bit for bit what evaluating it per voxel gives.
                withUnsafeTemporaryAllocation(of: Double.self, capacity: 3 * slices) { rowTerms in
                    let terms = rowTerms.baseAddress!
                    // Bilinear sample of slice k at column w; NaN outside the slice's pixel-centre hull.
                    @inline(__always) func sample(_ k: Int, _ w: Double) -> Float {
                        let p = 12 * k
                        let r = (terms[3 * k] + proj[p + 2] * w) + proj[p + 3]
                        let c = (terms[3 * k + 1] + proj[p + 6] * w) + proj[p + 7]
                        let nr = rows[k], nc = cols[k]
                        guard r >= 0, c >= 0, r <= Double(nr - 1), c <= Double(nc - 1) else { return .nan }
                        // Indices within the slice (r, c checked above), so unchecked arithmetic is safe.
                        let r0 = min(Int(r), max(nr &- 2, 0)), c0 = min(Int(c), max(nc &- 2, 0))
                        let r1 = min(r0 &+ 1, nr &- 1), c1 = min(c0 &+ 1, nc &- 1)
                        let fr = Float(r - Double(r0)), fc = Float(c - Double(c0))
                        let base = px + starts[k]
                        let top = base + r0 &* nc, bottom = base + r1 &* nc
                        let a = top[c0], b = top[c1], e = bottom[c0], f = bottom[c1]
                        return (a + (b - a) * fc) + ((e + (f - e) * fc) - (a + (b - a) * fc)) * fr
                    }
                    @inline(__always) func distance(_ k: Int, _ w: Double) -> Double {
                        (terms[3 * k + 2] + proj[12 * k + 10] * w) + proj[12 * k + 11]
                    }
                    for hi in hRange {
                        let h = Double(hi)
                        let row = (di * H + hi) * W
                        for k in 0..<slices {
                            let p = 12 * k
                            terms[3 * k] = proj[p] * d + proj[p + 1] * h
                            terms[3 * k + 1] = proj[p + 4] * d + proj[p + 5] * h
                            terms[3 * k + 2] = proj[p + 8] * d + proj[p + 9] * h
                        }
                        let tRow = t[0] * d + t[1] * h
                        // k: the last slice at or below tv (−1 before the first). tv is affine in w, so k moves by
                        // a step or two between neighbouring voxels: walked from the previous voxel's, not searched.
                        var k = -1
                        for wi in wRange {
                            let w = Double(wi)
                            let tv = (tRow + t[2] * w) + t[3]
                            guard tv >= lowest && tv <= highest else { continue }
                            while k < last && offs[k + 1] <= tv { k += 1 }
                            while k >= 0 && offs[k] > tv { k -= 1 }
                            var v = Float.nan
                            if k < 0 {
                                v = sample(0, w)
                            } else if k == last {
                                v = sample(last, w)
                            } else if offs[k + 1] - offs[k] <= maxGap {
                                let a = sample(k, w), b = sample(k + 1, w)
                                let da = distance(k, w), db = distance(k + 1, w)
                                if a.isFinite && b.isFinite {
                                    let span = da - db
                                    let f = span > 1e-9 ? Float(min(max(da / span, 0), 1)) : 0.5
                                    v = a + (b - a) * f
                                } else if a.isFinite && abs(da) <= reach {
                                    v = a
                                } else if b.isFinite && abs(db) <= reach {
                                    v = b
                                }
                            } else if tv - offs[k] <= reach {
                                v = sample(k, w)
                            } else if offs[k + 1] - tv <= reach {
                                v = sample(k + 1, w)
                            }
                            if v.isFinite {
                                sumP[row + wi] += v
                                countP[row + wi] += 1
                                covered += 1
                            }
                        }
                    }
                }
                coveredP[i] = covered
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
