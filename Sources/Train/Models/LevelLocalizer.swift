import Foundation

/// Convolution (no bias), BatchNorm, SiLU: the localizer's building block (`ConvBlock` in python/fuse3d/models.py).
public final class ConvBlock: Module, UnaryLayer {
    /// The convolution ("same" padding).
    public let conv: Conv3d
    /// Its normalisation.
    public let bn: BatchNorm3d

    /// A block from `inputs` to `outputs` channels with a cubic `kernel` and `stride`.
    public init(_ inputs: Int, _ outputs: Int, kernel: Int = 3, stride: Int = 1) throws {
        conv = try Conv3d(inputs, outputs, kernel: kernel, stride: stride, padding: kernel / 2, bias: false)
        bn = try BatchNorm3d(outputs)
    }

    /// Applies the block.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try bn(conv(x)).silu() }
}

/// Stage one of the two-stage model: where the lumbar levels are. A small 3-D encoder–decoder over the coarse grid
/// gives one heatmap per level at half the input's resolution; a soft-argmax turns each into the expected voxel
/// (d, h, w), so the network is trained by regression on the shards' keypoints and is differentiable end to end.
///
/// Why heatmaps and not a linear regression head: the point stays tied to the image features that show it (a
/// translated spine moves its heatmap), and the soft-argmax reads sub-voxel positions from a coarse map
/// (Sun et al. 2018, "Integral human pose regression"); the strongest RSNA 2024 solutions located levels this way.
public final class LevelLocalizer: Module {
    /// Input resolution (½), ¼ and ⅛ of it.
    public let stem: ConvBlock, down1: ConvBlock, down2: ConvBlock
    /// At ⅛: context over most of the grid.
    public let body: ConvBlock
    /// Upsampled and joined with the skip connections at ¼ and ½ (1 × 1 × 1: cheap on 2 cores).
    public let fuse1: ConvBlock, fuse2: ConvBlock
    /// One heatmap logit per level at ½ of the input.
    public let heat: Conv3d
    /// Number of levels (heatmaps).
    public let levels: Int

    /// A localizer of `levels` points over `channels` input channels, `width` channels at its first stage.
    public init(levels: Int = 5, width: Int = 8, channels: Int = 3) throws {
        let c = width
        stem = try ConvBlock(channels, c, stride: 2)
        down1 = try ConvBlock(c, 2 * c, stride: 2)
        down2 = try ConvBlock(2 * c, 4 * c, stride: 2)
        body = try ConvBlock(4 * c, 4 * c)
        fuse1 = try ConvBlock(6 * c, 2 * c, kernel: 1)
        fuse2 = try ConvBlock(3 * c, c, kernel: 1)
        heat = try Conv3d(c, levels, kernel: 3, padding: 1)
        self.levels = levels
    }

    /// (B, C, D, H, W) → (B, levels, D/2, H/2, W/2) heatmap logits.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let s = try stem(x)
        let d1 = try down1(s)
        var y = try body(down2(d1))
        y = try fuse1(Tensor.cat([Functional.interpolateTrilinear(y, size: Array(d1.shape[2...])), d1], dim: 1))
        y = try fuse2(Tensor.cat([Functional.interpolateTrilinear(y, size: Array(s.shape[2...])), s], dim: 1))
        return try heat(y)
    }

    /// (B, L, d, h, w) heatmap logits → (B, L, 3) expected positions (d, h, w) in voxels of a grid of `size` that the
    /// heatmap covers: cell i's centre is at (i + ½) · size / n − ½ (voxel centres at integers, as the shards' keypoints).
    public static func softArgmax(_ heat: Tensor, gridSize size: [Int]) throws -> Tensor {
        let shape = heat.shape, b = shape[0], l = shape[1]
        let cells = Array(shape[2...])
        let p = try heat.to(.float32).reshape([b, l, cells.reduce(1, *)]).softmax(dim: 2).reshape([b, l] + cells)
        var coordinates: [Tensor] = []
        for axis in 0..<3 {
            let others = (0..<3).filter { $0 != axis }.map { 2 + $0 }
            let marginal = try p.sum(others)  // (B, L, n)
            let ratio = Double(size[axis]) / Double(cells[axis])
            let centres = try (Tensor.arange(0, Double(cells[axis]), device: heat.device) + 0.5) * ratio - 0.5
            coordinates.append(try (marginal * centres).sum([2]))
        }
        return try Tensor.stack(coordinates, dim: 2)
    }
}

/// The localizer's heatmap loss: the cross-entropy of each level's softmax heatmap against a normalised Gaussian around
/// the true point (σ in heatmap cells), averaged over the known points. Trained by the soft-argmax's coordinates alone,
/// a heatmap that starts spread over thousands of cells gets a vanishing gradient in every cell (p · (x − E[x])), and
/// can settle on two bumps whose mean is right but whose mass is split between levels; the Gaussian target gives
/// every cell its gradient from the first step and asks for one sharp peak (the "integral regression" papers add it
/// for the same reasons: Sun et al. 2018, Nibali et al. 2018).
public struct HeatmapLoss {
    /// Width of the target Gaussian in heatmap cells.
    public var sigma: Double

    /// A loss with a target Gaussian of `sigma` cells.
    public init(sigma: Double = 1) { self.sigma = sigma }

    /// `heat` (B, L, d, h, w) logits over a grid of `size` voxels; `truth` (B, L, 3) float32 points in those voxels, NaN
    /// where absent. Zero when no point of the batch is known. Built with tensor ops on `heat`'s device (no host copy); the
    /// target is computed in float64 and rounded to float32, as the arrays it replaced were.
    public func callAsFunction(_ heat: Tensor, _ truth: Tensor, gridSize size: [Int]) throws -> Tensor {
        let shape = heat.shape, b = shape[0], l = shape[1], cells = Array(shape[2...])
        let device = heat.device
        let points = try truth.to(.float64, device: device)
        let known = try points.isFinite().all([2])  // (B, L): a point's three coordinates are labelled together
        let count = try known.to(.float64).sum().clamp(min: 1)
        // The target, separable: one normalised Gaussian per axis over the cell centres (cell i holds voxel (i + ½)·size/n − ½).
        var target: Tensor?
        for axis in 0..<3 {
            let n = cells[axis], ratio = Double(size[axis]) / Double(n)
            let centre = try ((points.select(2, axis) + 0.5) / ratio - 0.5).unsqueeze(2)  // (B, L, 1)
            let cell = try Tensor.arange(0, Double(n), dtype: .float64, device: device).reshape([1, 1, n])
            let distance = try cell - centre
            let gaussian = try ((distance * distance).neg() / (2 * sigma * sigma)).exp()
            let sum = try gaussian.sum([2], keepDim: true)
            // A point outside the grid: all mass on the nearest cell, min(max(⌊c + ½⌋, 0), n − 1) (the cells 1 ..< n at or
            // below c + ½, counted).
            let nearest = try (cell.narrow(2, start: 1, length: n - 1) - (centre + 0.5)).le(0).to(.float64).sum([2], keepDim: true)
            let edge = try (cell - nearest).eq(0).to(.float64)
            let outside = try sum.lt(1e-12)
            let row = try Tensor.where(outside, edge, gaussian) / Tensor.where(outside, try Tensor.ones([1], dtype: .float64, device: device), sum)
            let g = try Tensor.where(try known.unsqueeze(2), row, try Tensor.zeros([1], dtype: .float64, device: device))
            var axisShape = [b, l, 1, 1, 1]
            axisShape[2 + axis] = n
            let t = try g.to(.float32).reshape(axisShape)
            target = try target.map { try $0 * t } ?? t
        }
        let logp = try heat.to(.float32).reshape([b, l, cells.reduce(1, *)]).logSoftmax(dim: 2).reshape([b, l] + cells)
        // −1 / count rounded to float32 once, as the scalar it replaced.
        return try (target! * logp).sum() * (count.reciprocal().neg().to(.float32))
    }
}

/// The localizer's loss: mean absolute error (voxels of the stored grid) over the coordinates whose keypoint is
/// known; keypoints absent from the shards (NaN) are masked out. Zero when no keypoint of the batch is known.
public struct LocalizationLoss {
    /// A loss.
    public init() {}

    /// `points` (B, L, 3) predictions; `truth` (B, L, 3) float32 keypoints with NaN where absent (CPU or device). The mask
    /// is built on `points`' device (no host copy).
    public func callAsFunction(_ points: Tensor, _ truth: Tensor) throws -> Tensor {
        let target = try truth.to(.float32, device: points.device)
        let known = try target.isFinite()
        let mask = try known.to(.float32)
        let zeros = try Tensor.zeros([1], device: points.device)
        return try ((points - Tensor.where(known, target, zeros)).abs() * mask).sum() / mask.sum().clamp(min: 1)
    }
}
