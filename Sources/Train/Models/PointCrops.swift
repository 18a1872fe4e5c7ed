import Foundation

/// Crops of a grid resampled (trilinear, zeros outside) around points given in its voxels: crop voxel (i, j, k) of
/// the crop around point c samples the grid at c + ((i, j, k) − (size − 1) / 2) · `scale`. The points are fractional
/// and may differ for every sample, so level crops can follow a localizer's predictions and a training jitter.
public struct PointCrops: Sendable, Equatable {
    /// Crop size (D, H, W) in crop voxels.
    public var size: [Int]
    /// Grid voxels per crop voxel (0.5: crops twice as fine as the grid, by interpolation).
    public var scale: Double

    /// Crops of `size` (three positive sizes) at `scale` grid voxels per crop voxel.
    public init(size: [Int], scale: Double = 1) throws {
        guard size.count == 3, size.allSatisfy({ $0 > 0 }), scale > 0 else {
            throw TrainError(.configuration, "level crops need three positive sizes (D, H, W) and a positive scale, not \(size) at \(scale)")
        }
        self.size = size
        self.scale = scale
    }

    /// `x` (B, C, D, H, W) and `points` (B, L, 3) voxel positions (d, h, w) → (L · B, C, size…), level-major
    /// (all samples' level 0 first), float32 on `x`'s device. `mirrored` crops run along −d (a left-right mirror image:
    /// crop voxel i samples c − (i − (D − 1)/2) · scale along d).
    public func callAsFunction(_ x: Tensor, points: Tensor, mirrored: Bool = false) throws -> Tensor {
        let b = x.shape[0], grid = Array(x.shape[2...]), l = points.shape[1]
        guard points.shape == [b, l, 3] else { throw TrainError(.shape, "crop points \(points.shape) do not match (\(b), levels, 3)") }
        // Offsets (D, H, W, 3) of the crop voxels from the centre, in grid voxels (d, h, w).
        var offsets: [Float] = []
        offsets.reserveCapacity(3 * size.reduce(1, *))
        for i in 0..<size[0] {
            for j in 0..<size[1] {
                for k in 0..<size[2] {
                    for (a, n) in [i, j, k].enumerated() {
                        offsets.append(Float((Double(n) - Double(size[a] - 1) / 2) * scale * (mirrored && a == 0 ? -1 : 1)))
                    }
                }
            }
        }
        let device = x.device
        let offset = try Tensor(offsets, shape: [1, 1] + size + [3], device: device)
        let centres = try points.to(.float32, device: device).reshape([b, l, 1, 1, 1, 3])
        // (B, L·D, H, W, 3) grid voxels (d, h, w): the levels side by side along the first crop axis, so the grid
        // is sampled once per sample without copying it per level.
        let at = try (centres + offset).reshape([b, l * size[0], size[1], size[2], 3])
        // grid_sample's normalised coordinates (align_corners) in its (x = w, y = h, z = d) order.
        let normalised = try (0..<3).reversed().map { a in
            try at.narrow(4, start: a, length: 1) * (2 / Double(max(grid[a] - 1, 1))) - 1
        }
        let sampled = try Functional.gridSample(try x.to(.float32), grid: try Tensor.cat(normalised, dim: 4), mode: .bilinear,
                                                padding: .zeros, alignCorners: true)  // (B, C, L·D, H, W)
        let c = x.shape[1]
        return try sampled.reshape([b, c, l] + size).permute([2, 0, 1, 3, 4, 5]).contiguous().reshape([l * b, c] + size)
    }
}
