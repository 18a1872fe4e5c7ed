import CFusion
import Foundation
import Shards

/// Percentiles of a channel's covered voxels, and the mapping of that range to [0, 1].
///
/// Normalization runs after resampling, over covered voxels only, so that the zeros of uncovered voxels
/// and the background outside the grid do not shift the range.
enum RobustRange {
    /// The `low` and `high` percentiles (0–100) of `values`, interpolated linearly between order
    /// statistics as NumPy's default `np.percentile` does; (0, 0) for no values.
    static func percentiles(_ values: [Float], low: Double, high: Double) -> (low: Float, high: Float) {
        guard !values.isEmpty else { return (0, 0) }
        var work = values
        return work.withUnsafeMutableBufferPointer { twoPercentiles($0, low, high) }
    }

    /// Turns each sum into the mean over its count in place (0 where the count is 0: `ChannelResampler.finish`'s values,
    /// bit for bit) and returns the `low` and `high` percentiles of the means whose count is above 0, and how many those
    /// are; (0, 0) for none. One pass divides and gathers the covered means into a scratch buffer (branch-free), which
    /// the selection then reorders: no other grid-sized array is made (issue 20: the separate passes and copies of
    /// `finish`, the covered values and the percentiles' work array were 10 % of an ingest).
    static func percentiles(ofMeans sums: UnsafeMutableBufferPointer<Float>, counts: UnsafeBufferPointer<Float>,
                            low: Double, high: Double) -> (low: Float, high: Float, count: Int) {
        let n = min(sums.count, counts.count)
        guard n > 0 else { return (0, 0, 0) }
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { scratch in
            let s = sums.baseAddress!, c = counts.baseAddress!, out = scratch.baseAddress!
            // Eight at a time with AVX2 (CFusion's compact.c, the same bits); otherwise the loop.
            var kept = Int(cf_means(s, c, Int64(n), out))
            if kept < 0 {
                kept = 0
                for i in 0..<n {
                    let count = c[i], q = s[i] / count
                    let x = count > 0 ? q : 0
                    s[i] = x
                    out[kept] = x
                    kept &+= count > 0 ? 1 : 0
                }
            }
            guard kept > 0 else { return (0, 0, 0) }
            let covered = UnsafeMutableBufferPointer(start: out, count: kept)
            let (a, b) = twoPercentiles(covered, low, high)
            return (a, b, kept)
        }
    }

    /// Maps `value` from [low, high] to [0, 1], clamped; a channel with high ≤ low maps to 0.
    @inline(__always)
    static func normalize(_ value: Float, low: Float, high: Float) -> Float {
        guard high > low else { return 0 }
        return min(max((value - low) / (high - low), 0), 1)
    }

    /// Writes `Float16(normalize(values[i]))` of every covered voxel (count above 0) into `volume[offset + i]` and 0 of every other
    /// one (the bits a voxel-by-voxel loop over the covered voxels of a zeroed volume leaves): normalised in blocks
    /// in Float, then converted eight at a time (`HalfConversion`; issue 20's profile: the scalar conversion was a
    /// software call per voxel).
    static func normalizeToHalf(_ values: UnsafeBufferPointer<Float>, counts: UnsafeBufferPointer<Float>, low: Float, high: Float,
                                into volume: inout [Float16], at offset: Int) {
        let n = min(values.count, counts.count)
        precondition(offset >= 0 && offset + n <= volume.count)
        let block = 4096
        let v = values, c = counts
        volume.withUnsafeMutableBufferPointer { out in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { scratch in
                var start = 0
                while start < n {
                    let m = min(block, n - start)
                    // normalize(_:low:high:)'s expression, taken for every voxel and selected, without
                    // checked index arithmetic: LLVM vectorizes it (a branch per voxel kept it scalar).
                    let vp = v.baseAddress! + start, cp = c.baseAddress! + start, sp = scratch.baseAddress!
                    if high > low {
                        let range = high - low
                        for j in 0..<m {
                            let x = min(max((vp[j] - low) / range, 0), 1)
                            sp[j] = cp[j] > 0 ? x : 0
                        }
                    } else {
                        for j in 0..<m { sp[j] = 0 }
                    }
                    HalfConversion.convert(UnsafeBufferPointer(rebasing: scratch[0..<m]),
                                           into: UnsafeMutableBufferPointer(rebasing: out[(offset + start)...]))
                    start += m
                }
            }
        }
    }

    /// The `low` and `high` percentiles of `buf` (which it reorders). A large buffer is read once: a sorted random
    /// sample of it gives two pivots around each rank wanted, the values between them are gathered (about 1/16 of
    /// the buffer per percentile) and the ranks selected there; the order statistics are the same as selecting in
    /// the whole buffer, which is what happens when a band misses its rank or overflows (many equal values).
    /// Two quickselects over the whole buffer were half of the percentiles' time (issue 20).
    static func twoPercentiles(_ buf: UnsafeMutableBufferPointer<Float>, _ low: Double, _ high: Double) -> (Float, Float) {
        let m = buf.count
        guard m >= 65536 else { return (percentile(buf, low), percentile(buf, high)) }
        let sampleSize = 4096, margin = 128  // the rank of a sample quantile strays about 32 sample places at most: 4σ
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let sample = (0..<sampleSize).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return buf[Int((state >> 11) % UInt64(m))]
        }.sorted()
        let capacity = m / 8
        func position(_ q: Double) -> (k: Int, fraction: Float, next: Bool) {
            let p = q / 100 * Double(m - 1), k = Int(p.rounded(.down))
            return (k, Float(p - Double(k)), k + 1 < m && p > Double(k))
        }
        func pivots(_ k: Int) -> (Float, Float) {
            let j = Int(Double(k) / Double(m) * Double(sampleSize))
            return (j - margin < 0 ? -.infinity : sample[j - margin], j + 1 + margin >= sampleSize ? .infinity : sample[j + 1 + margin])
        }
        let wanted = [position(low), position(high)]
        let bounds = wanted.map { pivots($0.k) }
        let result: (Float, Float)? = withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * capacity) { bands in
            let band = [bands.baseAddress!, bands.baseAddress! + capacity]
            let (a0, b0) = bounds[0], (a1, b1) = bounds[1]
            let p0 = band[0], p1 = band[1]
            // Eight values at a time with AVX2 (CFusion's compact.c: the same bands, in the same order); otherwise the loop.
            var sizes: [Int64] = [0, 0], under: [Int64] = [0, 0]
            let vectors = [a0, b0, a1, b1].withUnsafeBufferPointer { edges in
                sizes.withUnsafeMutableBufferPointer { sizesP in
                    under.withUnsafeMutableBufferPointer { underP in
                        cf_bands(buf.baseAddress!, Int64(m), edges.baseAddress!, p0, p1, Int64(capacity), sizesP.baseAddress!, underP.baseAddress!)
                    }
                }
            }
            if vectors == 0 { return nil }
            var below = under.map { Int($0) }, size = sizes.map { Int($0) }
            if vectors < 0 {
                var n0 = 0, n1 = 0, below0 = 0, below1 = 0
                for i in 0..<m {
                    let x = buf[i]
                    below0 &+= x < a0 ? 1 : 0
                    below1 &+= x < a1 ? 1 : 0
                    if x >= a0 && x <= b0 {
                        if n0 == capacity { return nil }
                        p0[n0] = x; n0 &+= 1
                    }
                    if x >= a1 && x <= b1 {
                        if n1 == capacity { return nil }
                        p1[n1] = x; n1 &+= 1
                    }
                }
                below = [below0, below1]; size = [n0, n1]
            }
            var out: [Float] = []
            for (j, w) in wanted.enumerated() {
                let r = w.k - below[j]
                guard r >= 0, r + (w.next ? 1 : 0) < size[j] else { return nil }
                let part = UnsafeMutableBufferPointer(start: band[j], count: size[j])
                let value = select(part, r)
                guard w.next else { out.append(value); continue }
                let above = part[(r + 1)...].min()!
                out.append(value + (above - value) * w.fraction)
            }
            return (out[0], out[1])
        }
        return result ?? (percentile(buf, low), percentile(buf, high))
    }

    private static func percentile(_ buf: UnsafeMutableBufferPointer<Float>, _ q: Double) -> Float {
        let position = q / 100 * Double(buf.count - 1)
        let k = Int(position.rounded(.down))
        let below = select(buf, k)
        guard k + 1 < buf.count, position > Double(k) else { return below }
        // After selecting k, everything right of k is ≥ it, so the next order statistic is their minimum.
        let above = buf[(k + 1)...].min()!
        return below + (above - below) * Float(position - Double(k))
    }

    /// Quickselect: reorders `buf` so that `buf[k]` holds the k-th smallest value; returns it.
    private static func select(_ buf: UnsafeMutableBufferPointer<Float>, _ k: Int) -> Float {
        var lo = 0, hi = buf.count - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            // Median of three as the pivot keeps sorted or constant runs from going quadratic.
            let pivot = max(min(buf[lo], buf[mid]), min(max(buf[lo], buf[mid]), buf[hi]))
            var i = lo, j = hi
            while i <= j {
                while buf[i] < pivot { i += 1 }
                while buf[j] > pivot { j -= 1 }
                if i <= j { buf.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { return buf[k] }
        }
        return buf[k]
    }
}
