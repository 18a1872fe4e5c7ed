import Foundation
import Shards
import TestSupport

/// A tiny learnable cohort written straight to shards: each study has one grade for all 25 columns and its
/// brightness grows with it, so a model can beat the prior within a few epochs; some labels are missing.
///
/// With `keypoints`, every study also has label keypoints the two-stage model can learn from: its five spinal-canal
/// points (columns 0 ..< 5) sit on a line along h that moves by up to ± 2 voxels in d and w and by 0 ... 2 in h between
/// studies, each marked by a bright blob (its own brightness per level); every other column is its level's canal point
/// plus a fixed offset per condition and a small per-study wobble. Some points are missing (NaN), as in RSNA's table.
enum TrainerCohort {
    /// Writes `studies` samples of `size`³ into a fresh folder (two shards) and returns it.
    static func make(studies: Int, size: Int = 16, seed: UInt64 = 1, keypoints: Bool = false) throws -> URL {
        try write(studies: studies, size: size, seed: seed, keypoints: keypoints).folder
    }

    /// Writes a cohort with keypoints and returns its folder and every study's keypoints (study id → 75 values).
    static func labelled(studies: Int, size: Int = 16, seed: UInt64 = 1) throws -> (folder: URL, keypoints: [Int64: [Float]]) {
        try write(studies: studies, size: size, seed: seed, keypoints: true)
    }

    /// Each condition's offset (d, h, w voxels) from its level's canal point, before the per-study wobble.
    static let conditionOffsets: [[Float]] = [[0, 0, 0], [3, 0.5, 2], [-3, 0.5, 2], [2.5, -0.5, -1.5], [-2.5, -0.5, -1.5]]

    /// Writes the cohort and returns its folder and every study's keypoints (study id → 75 values, voxels (d, h, w)).
    private static func write(studies: Int, size: Int, seed: UInt64, keypoints: Bool) throws -> (folder: URL, keypoints: [Int64: [Float]]) {
        let dir = try Fixtures.scratch("trainer-cohort")
        let writer = try ShardWriter(directory: dir, options: ShardWriterOptions(samplesPerShard: (studies + 1) / 2))
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func uniform() -> Float { Float(next() >> 11) * 0x1.0p-53 }
        let voxels = size * size * size
        var table: [Int64: [Float]] = [:]
        for s in 0..<studies {
            let grade = Int8(next() % 3)
            var labels = [Int8](repeating: grade, count: 25)
            if s % 5 == 4 { labels[3] = -1; labels[12] = -1 }
            let level = Float(grade) * 0.5
            var volume: [Float] = (0..<(3 * voxels)).map { i in
                level + Float(next() % 1000) / 4000 + (i % voxels < voxels / 2 ? 0.2 : 0)
            }
            var points = [Float](repeating: .nan, count: 75)
            if keypoints {
                let c = Float(size) / 2
                let origin = [c + 2 * (2 * uniform() - 1), Float(size) / 8 + 2 * uniform(), c + 2 * (2 * uniform() - 1)]
                let step = Float(size) * 0.6 / 4
                for condition in 0..<5 {
                    for l in 0..<5 {
                        let canal = [origin[0], origin[1] + step * Float(l), origin[2] + 0.3 * Float(l)]
                        let wobble: [Float] = condition == 0 ? [0, 0, 0] : (0..<3).map { _ in 0.5 * (2 * uniform() - 1) }
                        for a in 0..<3 { points[3 * (5 * condition + l) + a] = canal[a] + conditionOffsets[condition][a] + wobble[a] }
                    }
                }
                // A bright blob at each canal point (all three channels), its brightness the level's.
                for l in 0..<5 {
                    let p = (0..<3).map { points[3 * l + $0] }
                    for d in 0..<size { for h in 0..<size { for w in 0..<size {
                        let r2 = pow(Float(d) - p[0], 2) + pow(Float(h) - p[1], 2) + pow(Float(w) - p[2], 2)
                        guard r2 < 9 else { continue }
                        let v = (1.0 + 0.3 * Float(l)) * exp(-r2 / 2)
                        for ch in 0..<3 { volume[ch * voxels + (d * size + h) * size + w] += v }
                    } } }
                }
                // Missing points: a canal point of some studies (the localizer's terms differ between batches), and a
                // foraminal point of others (the offsets' means count only the known ones).
                if s % 6 == 5 { for a in 0..<3 { points[3 * 2 + a] = .nan } }
                if s % 4 == 3 { for a in 0..<3 { points[3 * 7 + a] = .nan } }
            }
            table[Int64(5000 + s)] = points
            try writer.append(FusedSample(studyID: Int64(5000 + s), shape: [size, size, size], volume: volume.map(Float16.init), present: [1, 1, 1],
                                          affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
                                          keypoints: points, norm: [0, 1, 0, 1, 0, 1], labels: labels,
                                          sources: keypoints ? gridPlanes(volume, size: size) : .empty))
        }
        _ = try writer.finish()
        return (dir, table)
    }

    /// Source slices that are planes of the grid (voxels of 1 mm, the identity affine), every other one: sagittal slices
    /// (rows along h, columns along w) of channels 0 and 1 at even d, axial ones (rows along d, columns along w) of channel
    /// 2 at even h, each channel's in the order of their position along their normal.
    static func gridPlanes(_ volume: [Float], size: Int) -> SourcePixels {
        var slices: [SourceSlice] = [], pixels: [Float16] = []
        let voxels = size * size * size
        for channel in 0..<3 {
            for plane in stride(from: size - 2, through: 0, by: -2) {
                let axial = channel == 2
                // Sagittal: normal (0, 0, 1) × (0, 1, 0) = −x, so the order along it runs from the largest d; axial:
                // (0, 0, 1) × (1, 0, 0) = +y, from the smallest h.
                let p = axial ? size - 2 - plane : plane
                let origin: [Double] = axial ? [0, Double(p), 0] : [Double(p), 0, 0]
                let row: [Double] = axial ? [1, 0, 0] : [0, 1, 0]
                let normal: [Double] = axial ? [0, 1, 0] : [-1, 0, 0]
                slices.append(SourceSlice(channel: channel, rows: size, columns: size, geometry: origin + [0, 0, 1] + row + normal))
                for r in 0..<size {
                    for c in 0..<size {
                        let (d, h) = axial ? (r, p) : (p, r)
                        pixels.append(Float16(volume[channel * voxels + (d * size + h) * size + c]))
                    }
                }
            }
        }
        return SourcePixels(slices: slices, pixels: pixels)
    }
}
