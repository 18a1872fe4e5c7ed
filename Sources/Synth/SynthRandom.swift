import Core
import Foundation
import Ingest

/// The cohort's draws on Shards' SplitMix64, so a cohort is the same on every machine and every run, with
/// the phantom's own helpers (uniform ranges, weighted picks, DICOM UIDs) and per-part seeding.
struct SynthRandom: RandomNumberGenerator {
    private var generator: SplitMix64

    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    /// A generator for one named part of the cohort (`seed`, then the path of keys), independent of
    /// the order in which parts are made, so studies can be rendered in parallel.
    init(seed: UInt64, _ keys: UInt64...) {
        var s = SynthRandom.mix(seed ^ 0x5EED_F05E_3D00_0000)
        for k in keys { s = SynthRandom.mix(s ^ SynthRandom.mix(k &+ 0x9E37_79B9_7F4A_7C15)) }
        generator = SplitMix64(seed: s)
    }

    mutating func next() -> UInt64 { generator.next() }

    /// The SplitMix64 finaliser: a bijective 64-bit hash.
    static func mix(_ x: UInt64) -> UInt64 { SplitMix64.mix(x) }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in `range`.
    mutating func uniform(_ range: ClosedRange<Double>) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * unit()
    }

    /// Uniform integer in `range`.
    mutating func integer(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    /// An index drawn with the given (not necessarily normalised) weights.
    mutating func pick(weights: [Double]) -> Int {
        let total = weights.reduce(0, +)
        var u = unit() * total
        for (i, w) in weights.enumerated() {
            if u < w { return i }
            u -= w
        }
        return weights.count - 1
    }

    /// A DICOM UID under the UUID root `2.25` (PS3.5 B.2): 122 random bits as a decimal number.
    mutating func uid() -> String {
        var hi = next(), lo = next()
        // Version 4 and RFC 4122 variant bits, so the number is a well-formed UUID.
        hi = (hi & ~0xF000) | 0x4000
        lo = (lo & ~(UInt64(3) << 62)) | (UInt64(2) << 62)
        var digits: [UInt8] = []
        while hi != 0 || lo != 0 {
            let (qh, rh) = hi.quotientAndRemainder(dividingBy: 10)
            let (ql, r) = UInt64(10).dividingFullWidth((high: rh, low: lo))
            digits.append(UInt8(r))
            hi = qh
            lo = ql
        }
        return "2.25." + String(digits.reversed().map { Character(String($0)) })
    }
}
