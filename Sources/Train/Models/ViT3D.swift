import Foundation

/// Sizes of a 3-D vision transformer.
public struct ViTConfig: Sendable {
    /// Cubic patch edge, embedding width, blocks, heads, MLP expansion.
    public var patch: Int, dim: Int, depth: Int, heads: Int, mlpRatio: Int
    /// The input grid (D, H, W) the position embedding is made for; other sizes interpolate it.
    public var inputSize: [Int]
    /// Input channels.
    public var inputChannels: Int

    /// Sizes; the defaults are ViT-S/16 on a 128³ grid.
    public init(patch: Int = 16, dim: Int = 384, depth: Int = 12, heads: Int = 6, mlpRatio: Int = 4,
                inputSize: [Int] = [128, 128, 128], inputChannels: Int = 3) {
        self.patch = patch
        self.dim = dim
        self.depth = depth
        self.heads = heads
        self.mlpRatio = mlpRatio
        self.inputSize = inputSize
        self.inputChannels = inputChannels
    }
}

/// fc1 → GELU → fc2.
public final class MLP: Module, UnaryLayer {
    /// Expansion and contraction.
    public let fc1: Linear, fc2: Linear
    /// An MLP `dim` → `hidden` → `dim`.
    public init(dim: Int, hidden: Int) throws {
        fc1 = try Linear(dim, hidden)
        fc2 = try Linear(hidden, dim)
    }
    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try fc2(fc1(x).gelu()) }
}

/// Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)).
public final class TransformerBlock: Module, UnaryLayer {
    /// The attention and MLP sub-layers with their pre-norms.
    public let norm1: LayerNorm, attn: SelfAttention, norm2: LayerNorm, mlp: MLP
    /// A block of width `dim`.
    public init(dim: Int, heads: Int, mlpRatio: Int) throws {
        norm1 = try LayerNorm(dim, eps: 1e-6)
        attn = try SelfAttention(dim: dim, heads: heads)
        norm2 = try LayerNorm(dim, eps: 1e-6)
        mlp = try MLP(dim: dim, hidden: dim * mlpRatio)
    }
    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try x + attn(norm1(x))
        return try y + mlp(norm2(y))
    }
}

/// ViT in 3-D: Conv3d patch embedding, class token, learned position embedding (trilinearly
/// interpolated when the patch grid differs from the configured one), pre-norm blocks, final norm.
public final class ViT3D: Module, Backbone {
    /// Patch embedding: a convolution with kernel = stride = patch.
    public let patchEmbed: Conv3d
    /// The learned class token (1, 1, dim).
    @Param public var clsToken: Tensor
    /// Learned position embedding (1, 1 + patches, dim) for `grid`.
    @Param public var posEmbed: Tensor
    /// The transformer blocks.
    public let blocks: [TransformerBlock]
    /// The final norm.
    public let norm: LayerNorm
    /// The patch grid `posEmbed` was made for.
    public let grid: [Int]
    /// Width of the pooled feature vector.
    public let featureCount: Int

    /// A ViT sized by `config`.
    public init(_ config: ViTConfig) throws {
        guard config.inputSize.count == 3, config.inputSize.allSatisfy({ $0 % config.patch == 0 }) else {
            throw TrainError(.configuration, "ViT3D: input size \(config.inputSize) is not a multiple of patch \(config.patch)")
        }
        grid = config.inputSize.map { $0 / config.patch }
        patchEmbed = try Conv3d(config.inputChannels, config.dim, kernel: config.patch, stride: config.patch)
        let cls = try Tensor.empty([1, 1, config.dim]), pos = try Tensor.empty([1, 1 + grid.reduce(1, *), config.dim])
        try cls.normal_(std: 0.02)
        try pos.normal_(std: 0.02)
        _clsToken = Param(wrappedValue: cls)
        _posEmbed = Param(wrappedValue: pos)
        blocks = try (0..<config.depth).map { _ in try TransformerBlock(dim: config.dim, heads: config.heads, mlpRatio: config.mlpRatio) }
        norm = try LayerNorm(config.dim, eps: 1e-6)
        featureCount = config.dim
    }

    /// The position embedding for a patch grid, interpolated when it differs from `grid`.
    public func positionEmbedding(for target: [Int]) throws -> Tensor {
        if target == grid { return posEmbed }
        let d = featureCount
        let cls = try posEmbed.narrow(1, start: 0, length: 1)
        let patches = try posEmbed.narrow(1, start: 1, length: grid.reduce(1, *))
            .reshape([1] + grid + [d]).permute([0, 4, 1, 2, 3])
        let resized = try Functional.interpolateTrilinear(patches, size: target)
            .permute([0, 2, 3, 4, 1]).reshape([1, target.reduce(1, *), d])
        return try Tensor.cat([cls, resized], dim: 1)
    }

    /// Pooled features (B, featureCount) of a batch (B, C, D, H, W).
    public func features(_ x: Tensor) throws -> Tensor {
        let p = try patchEmbed(x)  // (B, dim, gd, gh, gw)
        let s = p.shape
        let tokens = try p.flatten(start: 2).transpose(1, 2)
        let cls = try clsToken.expand([s[0], -1, -1]).to(tokens.dtype)
        var y = try Tensor.cat([cls, tokens], dim: 1) + positionEmbedding(for: Array(s[2...]))
        for block in blocks { y = try block(y) }
        return try norm(y).select(1, 0)
    }
}
