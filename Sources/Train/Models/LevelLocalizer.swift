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
    /// where absent. Zero when no point of the batch is known.
    public func callAsFunction(_ heat: Tensor, _ truth: Tensor, gridSize size: [Int]) throws -> Tensor {
        let shape = heat.shape, b = shape[0], l = shape[1], cells = Array(shape[2...])
        let values = try truth.to(.float32, device: .cpu).toArray(Float.self)
        let pointKnown = (0..<(b * l)).map { i in (0..<3).allSatisfy { values[3 * i + $0].isFinite } }
        let count = pointKnown.filter { $0 }.count
        let device = heat.device
        // The target, separable: one normalised Gaussian per axis over the cell centres (cell i holds voxel (i + ½)·size/n − ½).
        var target: Tensor?
        for axis in 0..<3 {
            let n = cells[axis], ratio = Double(size[axis]) / Double(n)
            var g = [Float](repeating: 0, count: b * l * n)
            for i in 0..<(b * l) where pointKnown[i] {
                let c = (Double(values[3 * i + axis]) + 0.5) / ratio - 0.5
                var row = (0..<n).map { exp(-pow(Double($0) - c, 2) / (2 * sigma * sigma)) }
                let sum = row.reduce(0, +)
                // A point outside the grid: all mass on the nearest edge cell.
                if sum < 1e-12 { row = (0..<n).map { $0 == min(max(Int(c.rounded()), 0), n - 1) ? 1 : 0 } }
                let total = row.reduce(0, +)
                for k in 0..<n { g[i * n + k] = Float(row[k] / total) }
            }
            var axisShape = [b, l, 1, 1, 1]
            axisShape[2 + axis] = n
            let t = try Tensor(g, shape: axisShape, device: device)
            target = try target.map { try $0 * t } ?? t
        }
        let logp = try heat.to(.float32).reshape([b, l, cells.reduce(1, *)]).logSoftmax(dim: 2).reshape([b, l] + cells)
        return try (target! * logp).sum() * (-1.0 / Double(max(1, count)))
    }
}

/// The localizer's loss: mean absolute error (voxels of the stored grid) over the coordinates whose keypoint is
/// known; keypoints absent from the shards (NaN) are masked out. Zero when no keypoint of the batch is known.
public struct LocalizationLoss {
    /// A loss.
    public init() {}

    /// `points` (B, L, 3) predictions; `truth` (B, L, 3) float32 keypoints with NaN where absent (CPU or device).
    public func callAsFunction(_ points: Tensor, _ truth: Tensor) throws -> Tensor {
        let values = try truth.to(.float32, device: .cpu).toArray(Float.self)
        let known = values.map { $0.isFinite ? Float(1) : 0 }
        let mask = try Tensor(known, shape: truth.shape, device: points.device)
        let target = try Tensor(values.map { $0.isFinite ? $0 : 0 }, shape: truth.shape, device: points.device)
        let count = max(1, known.reduce(0, +))
        return try ((points - target).abs() * mask).sum() / Double(count)
    }
}
