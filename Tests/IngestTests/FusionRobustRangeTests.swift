import CFusion
import Core
@testable import Ingest
import XCTest

final class FusionRobustRangeTests: XCTestCase {
    func testPercentilesMatchNumPyLinearInterpolation() {
        // A permutation of 0…1000: np.percentile(.., [0.5, 99.5]) = [5, 995].
        let values = (0...1000).map { Float(($0 * 389) % 1001) }
        let r = RobustRange.percentiles(values, low: 0.5, high: 99.5)
        XCTAssertEqual(r.low, 5)
        XCTAssertEqual(r.high, 995)
        // np.percentile([4, 1, 3, 2], [10, 50]) = [1.3, 2.5].
        let small = RobustRange.percentiles([4, 1, 3, 2], low: 10, high: 50)
        XCTAssertEqual(small.low, 1.3, accuracy: 1e-6)
        XCTAssertEqual(small.high, 2.5, accuracy: 1e-6)
        XCTAssertEqual(RobustRange.percentiles([7, 7, 7, 7, 7], low: 0.5, high: 99.5).high, 7)
        XCTAssertTrue(RobustRange.percentiles([], low: 1, high: 2) == (0, 0))
    }

    func testNormalizeClampsToTheUnitInterval() {
        XCTAssertEqual(RobustRange.normalize(150, low: 100, high: 300), 0.25)
        XCTAssertEqual(RobustRange.normalize(50, low: 100, high: 300), 0)
        XCTAssertEqual(RobustRange.normalize(400, low: 100, high: 300), 1)
        XCTAssertEqual(RobustRange.normalize(5, low: 7, high: 7), 0)
    }

    /// The one-pass form the fuser uses: sums become the means `ChannelResampler.finish` gives (0 where nothing covers a
    /// voxel), and the percentiles and count are those of the covered means alone.
    func testPercentilesOfMeansDivideInPlaceAndSkipUncoveredVoxels() {
        // Seeded (issue 31): a failure names its seed and reruns the same inputs.
        var rng = SplitMix64(seed: 0x525201)
        let n = 5000
        let counts: [Float] = (0..<n).map { (i: Int) -> Float in
            let uncovered = i % 7 == 0 || (1000..<1400).contains(i)
            return uncovered ? 0 : Float(1 + i % 3)
        }
        var sums: [Float] = (0..<n).map { (i: Int) -> Float in counts[i] == 0 ? 0 : Float.random(in: -50...900, using: &rng) * counts[i] }
        let means: [Float] = (0..<n).map { (i: Int) -> Float in counts[i] > 0 ? sums[i] / counts[i] : 0 }
        let covered: [Float] = (0..<n).filter { counts[$0] > 0 }.map { means[$0] }
        let expected = RobustRange.percentiles(covered, low: 0.5, high: 99.5)
        // The loop's pass (no AVX2) gives the same sums, bit for bit, and the same percentiles as the vector pass.
        var loopSums = sums
        let loop = ChannelResampler.withoutVectors {
            loopSums.withUnsafeMutableBufferPointer { s in
                counts.withUnsafeBufferPointer { c in RobustRange.percentiles(ofMeans: s, counts: c, low: 0.5, high: 99.5) }
            }
        }
        let r = sums.withUnsafeMutableBufferPointer { s in
            counts.withUnsafeBufferPointer { c in RobustRange.percentiles(ofMeans: s, counts: c, low: 0.5, high: 99.5) }
        }
        XCTAssertTrue(r == loop)
        XCTAssertEqual(sums.map(\.bitPattern), loopSums.map(\.bitPattern))
        XCTAssertEqual(r.count, covered.count)
        XCTAssertEqual(r.low, expected.low)
        XCTAssertEqual(r.high, expected.high)
        XCTAssertEqual(sums, means)
        // The sorted-array definition, independently of the selection.
        let sorted = covered.sorted()
        let position = 0.995 * Double(sorted.count - 1), k = Int(position)
        let below: Float = sorted[k], above: Float = sorted[k + 1], fraction = Float(position - Double(k))
        XCTAssertEqual(r.high, below + (above - below) * fraction)
        var none: [Float] = [1, 2, 3]
        let nothing = none.withUnsafeMutableBufferPointer { s in
            [Float](repeating: 0, count: 3).withUnsafeBufferPointer { RobustRange.percentiles(ofMeans: s, counts: $0, low: 1, high: 99) }
        }
        XCTAssertTrue(nothing == (0, 0, 0))
        XCTAssertEqual(none, [0, 0, 0])
    }

    /// Large buffers take the sampled bands; the percentiles must be the sorted array's, for a spread of values, for
    /// values with a heavy run of ties at the low end (a band overflows and the whole buffer is selected) and for
    /// a constant buffer.
    func testTwoPercentilesOfLargeBuffersEqualTheSortedDefinition() {
        // Seeded (issue 31): a failure names its seed and reruns the same inputs.
        var rng = SplitMix64(seed: 0x525202)
        func reference(_ v: [Float], _ q: Double) -> Float {
            let sorted = v.sorted(), p = q / 100 * Double(v.count - 1), k = Int(p)
            guard k + 1 < v.count, p > Double(k) else { return sorted[k] }
            let below: Float = sorted[k], above: Float = sorted[k + 1], fraction = Float(p - Double(k))
            return below + (above - below) * fraction
        }
        let spread: [Float] = (0..<200_003).map { _ in Float.random(in: -300...4000, using: &rng) }
        let ties: [Float] = (0..<150_000).map { (i: Int) -> Float in i % 3 == 0 ? Float.random(in: 1...900, using: &rng) : 0 }
        let constant = [Float](repeating: 42, count: 70_000)
        for (name, values) in [("spread", spread), ("ties", ties), ("constant", constant)] {
            for (low, high) in [(0.5, 99.5), (2.0, 98.0), (0.0, 100.0)] {
                // The bands eight values at a time (AVX2) and one at a time (the loop).
                for vectors in [true, false] {
                    var work = values
                    let take = { work.withUnsafeMutableBufferPointer { RobustRange.twoPercentiles($0, low, high) } }
                    let r = vectors ? take() : ChannelResampler.withoutVectors(take)
                    XCTAssertEqual(r.0, reference(values, low), "\(name) \(low), vectors \(vectors)")
                    XCTAssertEqual(r.1, reference(values, high), "\(name) \(high), vectors \(vectors)")
                }
            }
        }
    }

    /// The comparisons above are of the vector passes (AVX2 and BMI2: compact.c) with the loops only where those passes
    /// run; on a CPU with AVX2 but no BMI2 they would compare the loops with themselves and pass by not testing. So
    /// where the CPU has both, the passes must run (they return what they kept, not −1); a CPU without is absent
    /// hardware, and this test says which instruction set is missing.
    func testTheVectorPassesRunWhereTheCPUHasAVX2AndBMI2() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
        try XCTSkipUnless(flags.contains("avx2") && flags.contains("bmi2"),
                          "this CPU lacks \(["avx2", "bmi2"].filter { !flags.contains($0) }): only the loops run, so the vector-versus-loop comparisons are not made")
        XCTAssertTrue(ChannelResampler.vectorsAvailable)
        var sums: [Float] = [2, 4, 0, 9, 1, 1, 1, 1, 5], out = [Float](repeating: -1, count: 9)
        let counts: [Float] = [1, 2, 0, 3, 1, 0, 1, 1, 5]
        XCTAssertEqual(cf_means(&sums, counts, 9, &out), 7, "the vector pass of the means did not run")
        XCTAssertEqual(Array(out.prefix(7)), [2, 2, 3, 1, 1, 1, 1])
        let values: [Float] = (0..<20).map(Float.init), bounds: [Float] = [2, 5, 10, 30]
        var band0 = [Float](repeating: 0, count: 20), band1 = [Float](repeating: 0, count: 20), sizes: [Int64] = [0, 0], below: [Int64] = [0, 0]
        XCTAssertEqual(cf_bands(values, 20, bounds, &band0, &band1, 20, &sizes, &below), 1, "the vector pass of the bands did not run")
        XCTAssertEqual(sizes, [4, 10])
        XCTAssertEqual(below, [2, 10])
        // Turned off, they do nothing: the loops' reference path above is the other one.
        ChannelResampler.withoutVectors { XCTAssertEqual(cf_means(&sums, counts, 9, &out), -1) }
    }
}
