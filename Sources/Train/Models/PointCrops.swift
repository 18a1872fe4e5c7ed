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
            throw TorchError("level crops need three positive sizes (D, H, W) and a positive scale, not \(size) at \(scale)")
        }
        self.size = size
        self.scale = scale
    }

    /// `x` (B, C, D, H, W) and `points` (B, L, 3) voxel positions (d, h, w) → (L · B, C, size…), level-major
    /// (all samples' level 0 first), float32 on `x`'s device.
    public func callAsFunction(_ x: Tensor, points: Tensor) throws -> Tensor {
        let b = x.shape[0], grid = Array(x.shape[2...]), l = points.shape[1]
        guard points.shape == [b, l, 3] else { throw TorchError("crop points \(points.shape) do not match (\(b), levels, 3)") }
        // Offsets (D, H, W, 3) of the crop voxels from the centre, in grid voxels (d, h, w).
        var offsets: [Float] = []
        offsets.reserveCapacity(3 * size.reduce(1, *))
        for i in 0..<size[0] {
            for j in 0..<size[1] {
                for k in 0..<size[2] {
                    for (a, n) in [i, j, k].enumerated() { offsets.append(Float((Double(n) - Double(size[a] - 1) / 2) * scale)) }
                }
            }
        }
        let device = x.device
        let offset = try Tensor(offsets, shape: [1] + size + [3], device: device)
        let centres = try points.to(.float32, device: device).transpose(0, 1).contiguous().reshape([l * b, 1, 1, 1, 3])
        let at = try centres + offset  // (L·B, D, H, W, 3) grid voxels (d, h, w)
        // grid_sample's normalised coordinates (align_corners) in its (x = w, y = h, z = d) order.
        let normalised = try (0..<3).reversed().map { a in
            try at.narrow(4, start: a, length: 1) * (2 / Double(max(grid[a] - 1, 1))) - 1
        }
        let sampling = try Tensor.cat(normalised, dim: 4)
        let source = try x.to(.float32).unsqueeze(0).expand([l] + x.shape).reshape([l * b] + Array(x.shape[1...]))
        return try Functional.gridSample(source, grid: sampling, mode: .bilinear, padding: .zeros, alignCorners: true)
    }
}

/// Stage two of the two-stage model: one crop per level around given points, one backbone shared by the levels,
/// one linear per condition shared by the levels (`LevelHead`), the ordinal heads. Weights are named as the PyTorch
/// twin's `LevelCropClassifier` (`backbone.…`, `head.…`, `link.cutpoints`).
public final class LevelCropClassifier: Module {
    /// The network every crop goes through.
    public let backbone: any Backbone
    /// Per-level features → one logit per condition-level.
    public let head: LevelHead
    /// Logits → probabilities.
    public let link: LogisticCumulativeLink
    /// Where and how finely the crops are cut.
    public let crops: PointCrops
    /// Number of levels.
    public let levels: Int

    /// A classifier of `levels` crops through `backbone`, `heads` condition-levels of `classes` classes.
    public init(backbone: any Backbone, crops: PointCrops, levels: Int = 5, heads: Int = 25, classes: Int = 3) throws {
        guard heads % levels == 0 else { throw TorchError("\(heads) heads do not split into \(levels) levels") }
        self.backbone = backbone
        head = try LevelHead(features: backbone.featureCount, levels: levels, conditions: heads / levels)
        link = try LogisticCumulativeLink(heads: heads, classes: classes)
        self.crops = crops
        self.levels = levels
    }

    /// `x` (B, C, D, H, W) and the levels' `points` (B, levels, 3) in its voxels → (B, heads) logits.
    public func logits(_ x: Tensor, points: Tensor) throws -> Tensor {
        let b = x.shape[0]
        let f = try backbone.features(try crops(x, points: points))  // (L·B, F), level-major
        return try head(try f.reshape([levels, b, backbone.featureCount]).transpose(0, 1).contiguous().reshape([b, levels * backbone.featureCount]))
    }

    /// (B, heads, classes) probabilities.
    public func callAsFunction(_ x: Tensor, points: Tensor) throws -> Tensor { try link(logits(x, points: points)) }
}
