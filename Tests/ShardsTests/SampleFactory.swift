import Foundation
import Shards

/// Small samples with values known in closed form, so tests (and the Python peers) can assert
/// exact voxels: v[c, d, h, w] = ((seed + 7c + 5d + 3h + w) mod 1024) / 1024, exact in float16.
enum SampleFactory {
    static let shape = [4, 6, 5]

    static func voxel(seed: Int, c: Int, d: Int, h: Int, w: Int) -> Float16 {
        Float16(Float((seed + 7 * c + 5 * d + 3 * h + w) % 1024) / 1024)
    }

    static func sample(_ seed: Int, shape: [Int] = shape) -> FusedSample {
        var volume: [Float16] = []
        volume.reserveCapacity(3 * shape.reduce(1, *))
        for c in 0..<3 { for d in 0..<shape[0] { for h in 0..<shape[1] { for w in 0..<shape[2] {
            volume.append(voxel(seed: seed, c: c, d: d, h: h, w: w))
        } } } }
        var keypoints = (0..<75).map { Float($0) + Float(seed) / 4 }
        keypoints[3...5] = [.nan, .nan, .nan]
        return FusedSample(
            studyID: 1_000_000_000 + Int64(seed), shape: shape, volume: volume,
            present: [1, seed % 2 == 0 ? 1 : 0, 1],
            affine: [0, 0, 1, -20, 1.5, 0, 0, 10 + Double(seed), 0, -2, 0, 30, 0, 0, 0, 1],
            keypoints: keypoints,
            norm: [0, 1000, 5, 800.5, Float(seed), 2000],
            labels: (0..<25).map { Int8(($0 + seed) % 4) - 1 })
    }

    /// Source slices of `seed` with closed-form values: slice k's pixel j is ((seed + 3k + j) mod 2048) / 2048 (exact in
    /// float16); `shapes` gives each slice's (channel, rows, columns). Geometry: origin (seed, k, −4.5k), a column step
    /// of 0.7 mm along +y, a row step of 0.8 mm along −z, normal +x.
    static func sources(_ seed: Int, shapes: [(channel: Int, rows: Int, columns: Int)]) -> SourcePixels {
        var slices: [SourceSlice] = [], pixels: [Float16] = []
        for (k, s) in shapes.enumerated() {
            let geometry: [Double] = [Double(seed), Double(k), -4.5 * Double(k), 0, 0.7, 0, 0, 0, -0.8, 1, 0, 0]
            slices.append(SourceSlice(channel: s.channel, rows: s.rows, columns: s.columns, geometry: geometry))
            pixels += (0..<(s.rows * s.columns)).map { Float16(Float((seed + 3 * k + $0) % 2048) / 2048) }
        }
        return SourcePixels(slices: slices, pixels: pixels)
    }
}
