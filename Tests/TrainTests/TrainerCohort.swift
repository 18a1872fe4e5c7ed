import Foundation
import Shards
import TestSupport

/// A tiny learnable cohort written straight to shards: each study has one grade for all 25 columns and its
/// brightness grows with it, so a model can beat the prior within a few epochs; some labels are missing.
enum TrainerCohort {
    /// Writes `studies` samples of `size`³ into a fresh folder (two shards) and returns it.
    static func make(studies: Int, size: Int = 16, seed: UInt64 = 1) throws -> URL {
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
        let voxels = size * size * size
        for s in 0..<studies {
            let grade = Int8(next() % 3)
            var labels = [Int8](repeating: grade, count: 25)
            if s % 5 == 4 { labels[3] = -1; labels[12] = -1 }
            let level = Float(grade) * 0.5
            let volume: [Float16] = (0..<(3 * voxels)).map { i in
                Float16(level + Float(next() % 1000) / 4000 + (i % voxels < voxels / 2 ? 0.2 : 0))
            }
            try writer.append(FusedSample(studyID: Int64(5000 + s), shape: [size, size, size], volume: volume, present: [1, 1, 1],
                                          affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
                                          keypoints: [Float](repeating: .nan, count: 75), norm: [0, 1, 0, 1, 0, 1], labels: labels))
        }
        _ = try writer.finish()
        return dir
    }
}
