import Foundation
import Shards
import TestSupport

/// Shard folders for the loader tests, with voxels known in closed form:
/// v[c, d, h, w] = ((seed + 7c + 5d + 3h + w) mod 1024) / 1024, exact in float16.
enum LoaderFixtures {
    static let shape = [6, 5, 4]

    static func studyID(_ seed: Int) -> Int64 { 2_000_000 + Int64(seed) }

    static func voxel(seed: Int, c: Int, d: Int, h: Int, w: Int) -> Float16 {
        Float16(Float((seed + 7 * c + 5 * d + 3 * h + w) % 1024) / 1024)
    }

    /// The expected (C, D, H, W) volume of sample `seed` for `channels`.
    static func volume(_ seed: Int, channels: [Int] = [0, 1, 2]) -> [Float16] {
        var out: [Float16] = []
        for c in channels { for d in 0..<shape[0] { for h in 0..<shape[1] { for w in 0..<shape[2] {
            out.append(voxel(seed: seed, c: c, d: d, h: h, w: w))
        } } } }
        return out
    }

    static func sample(_ seed: Int) -> FusedSample {
        var keypoints = (0..<75).map { Float($0) / 2 + Float(seed) }
        keypoints[6...8] = [.nan, .nan, .nan]
        return FusedSample(studyID: studyID(seed), shape: shape, volume: volume(seed), present: [1, seed % 3 == 0 ? 0 : 1, 1],
                           affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], keypoints: keypoints,
                           norm: [0, 1, 0, 1, 0, 1], labels: (0..<25).map { Int8(($0 + seed) % 4) - 1 })
    }

    /// A folder of `count` samples (seeds 0..<count) in shards of `perShard`.
    static func folder(count: Int, perShard: Int, name: String = #function) throws -> URL {
        let dir = try Fixtures.scratch(name)
        let writer = try ShardWriter(directory: dir, options: .init(samplesPerShard: perShard))
        for seed in 0..<count { try writer.append(sample(seed)) }
        _ = try writer.finish()
        return dir
    }
}
