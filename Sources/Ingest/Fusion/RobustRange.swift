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
        return work.withUnsafeMutableBufferPointer { buf in
            (percentile(buf, low), percentile(buf, high))
        }
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
            var kept = 0
            for i in 0..<n {
                let count = c[i], q = s[i] / count
                let x = count > 0 ? q : 0
                s[i] = x
                out[kept] = x
                kept &+= count > 0 ? 1 : 0
            }
            guard kept > 0 else { return (0, 0, 0) }
            let covered = UnsafeMutableBufferPointer(start: out, count: kept)
            return (percentile(covered, low), percentile(covered, high), kept)
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
