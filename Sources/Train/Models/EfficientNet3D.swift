import Foundation

/// EfficientNet's compound scaling: width and depth multipliers plus dropout (B0–B3 from the paper).
public struct EfficientNetConfig: Sendable {
    /// Channel multiplier, repeat multiplier, dropout before the head, final stochastic-depth rate.
    public var width: Double, depth: Double, dropout: Double, stochasticDepth: Double
    /// Input channels (3 fused MRI series).
    public var inputChannels: Int

    /// A scaling; stochastic depth defaults to the paper's 0.2.
    public init(width: Double, depth: Double, dropout: Double, stochasticDepth: Double = 0.2, inputChannels: Int = 3) {
        self.width = width
        self.depth = depth
        self.dropout = dropout
        self.stochasticDepth = stochasticDepth
        self.inputChannels = inputChannels
    }

    /// EfficientNet-B0: the unscaled baseline.
    public static let b0 = EfficientNetConfig(width: 1.0, depth: 1.0, dropout: 0.2)
    /// EfficientNet-B1: depth ×1.1.
    public static let b1 = EfficientNetConfig(width: 1.0, depth: 1.1, dropout: 0.2)
    /// EfficientNet-B2: width ×1.1, depth ×1.2.
    public static let b2 = EfficientNetConfig(width: 1.1, depth: 1.2, dropout: 0.3)
    /// EfficientNet-B3: width ×1.2, depth ×1.4.
    public static let b3 = EfficientNetConfig(width: 1.2, depth: 1.4, dropout: 0.3)

    /// B0–B3 by name ("b0" ... "b3").
    public static func named(_ name: String) -> EfficientNetConfig? {
        ["b0": b0, "b1": b1, "b2": b2, "b3": b3][name.lowercased()]
    }

    /// One stage of EfficientNet-B0: expansion ratio, output channels, repeats, first stride, kernel.
    public struct Stage: Sendable { public let expand, channels, repeats, stride, kernel: Int }

    /// The B0 stage table (Tan & Le 2019, table 1).
    public static let stages: [Stage] = [
        Stage(expand: 1, channels: 16, repeats: 1, stride: 1, kernel: 3),
        Stage(expand: 6, channels: 24, repeats: 2, stride: 2, kernel: 3),
        Stage(expand: 6, channels: 40, repeats: 2, stride: 2, kernel: 5),
        Stage(expand: 6, channels: 80, repeats: 3, stride: 2, kernel: 3),
        Stage(expand: 6, channels: 112, repeats: 3, stride: 1, kernel: 5),
        Stage(expand: 6, channels: 192, repeats: 4, stride: 2, kernel: 5),
        Stage(expand: 6, channels: 320, repeats: 1, stride: 1, kernel: 3),
    ]

    /// Channels scaled by `width`, rounded to a multiple of 8 and never below 90% of the scaled value.
    public func channels(_ c: Int) -> Int {
        let scaled = Double(c) * width
        var rounded = max(8, Int(scaled + 4) / 8 * 8)
        if Double(rounded) < 0.9 * scaled { rounded += 8 }
        return rounded
    }

    /// Repeats scaled by `depth`, rounded up.
    public func repeats(_ r: Int) -> Int { Int((Double(r) * depth).rounded(.up)) }
}

/// Squeeze-and-excitation: global average → reduce (1×1×1) → SiLU → expand → σ → channel scale.
public final class SqueezeExcitation: Module, UnaryLayer {
    /// The two 1×1×1 convolutions.
    public let reduce: Conv3d, expand: Conv3d

    /// Excitation of `channels` through a `squeezed`-wide bottleneck.
    public init(channels: Int, squeezed: Int) throws {
        reduce = try Conv3d(channels, squeezed, kernel: 1)
        expand = try Conv3d(squeezed, channels, kernel: 1)
    }

    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let s = try Functional.adaptiveAvgPool3d(x, size: [1, 1, 1])
        return try x * expand(reduce(s).silu()).sigmoid()
    }
}

/// Mobile inverted bottleneck: 1×1×1 expansion, depthwise k³ convolution, squeeze-excitation,
/// 1×1×1 projection, and a stochastic-depth residual when shapes allow.
public final class MBConv: Module, UnaryLayer {
    /// The 1×1×1 expansion and its norm (nil when the expansion ratio is 1).
    public let expandConv: Conv3d?, expandBn: BatchNorm3d?
    /// The depthwise k³ convolution and its norm.
    public let dwConv: Conv3d, dwBn: BatchNorm3d
    /// Channel attention on the expanded features.
    public let se: SqueezeExcitation
    /// The 1×1×1 projection and its norm (no activation: a linear bottleneck).
    public let projectConv: Conv3d, projectBn: BatchNorm3d
    /// Whether the input is added back, and the probability of dropping the branch in training.
    public let residual: Bool, dropPath: Double

    /// A block from `inputs` to `outputs` channels; `dropPath` is its stochastic-depth rate.
    public init(inputs: Int, outputs: Int, expand: Int, kernel: Int, stride: Int, dropPath: Double) throws {
        let mid = inputs * expand
        if expand != 1 {
            expandConv = try Conv3d(inputs, mid, kernel: 1, bias: false)
            expandBn = try BatchNorm3d(mid)
        } else {
            expandConv = nil
            expandBn = nil
        }
        dwConv = try Conv3d(mid, mid, kernel: kernel, stride: stride, padding: kernel / 2, groups: mid, bias: false)
        dwBn = try BatchNorm3d(mid)
        se = try SqueezeExcitation(channels: mid, squeezed: max(1, inputs / 4))
        projectConv = try Conv3d(mid, outputs, kernel: 1, bias: false)
        projectBn = try BatchNorm3d(outputs)
        residual = stride == 1 && inputs == outputs
        self.dropPath = dropPath
    }

    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = x
        if let expandConv, let expandBn { y = try expandBn(expandConv(y)).silu() }
        y = try dwBn(dwConv(y)).silu()
        y = try projectBn(projectConv(se(y)))
        guard residual else { return y }
        if training && dropPath > 0 {
            let keep = 1 - dropPath
            let mask = try Tensor.empty([x.shape[0], 1, 1, 1, 1], dtype: y.dtype, device: y.device)
            try mask.bernoulli_(keep)
            y = try y * (mask / keep)
        }
        return try y + x
    }
}

/// EfficientNet (B0 stage table, compound-scaled) with 3-D convolutions, as a `Backbone`.
public final class EfficientNet3D: Module, Backbone {
    /// Stride-2 3³ stem convolution and its norm.
    public let stemConv: Conv3d, stemBn: BatchNorm3d
    /// The MBConv blocks of all stages, in order.
    public let blocks: [MBConv]
    /// 1×1×1 convolution to the feature width, and its norm.
    public let headConv: Conv3d, headBn: BatchNorm3d
    /// Dropout on the pooled features.
    public let dropout: Dropout
    /// Width of the pooled feature vector.
    public let featureCount: Int

    /// A network scaled by `config`.
    public init(_ config: EfficientNetConfig = .b0) throws {
        let stem = config.channels(32)
        stemConv = try Conv3d(config.inputChannels, stem, kernel: 3, stride: 2, padding: 1, bias: false)
        stemBn = try BatchNorm3d(stem)
        let total = EfficientNetConfig.stages.reduce(0) { $0 + config.repeats($1.repeats) }
        var blocks: [MBConv] = []
        var inputs = stem
        for stage in EfficientNetConfig.stages {
            let outputs = config.channels(stage.channels)
            for r in 0..<config.repeats(stage.repeats) {
                let p = config.stochasticDepth * Double(blocks.count) / Double(total)
                blocks.append(try MBConv(inputs: inputs, outputs: outputs, expand: stage.expand, kernel: stage.kernel,
                                         stride: r == 0 ? stage.stride : 1, dropPath: p))
                inputs = outputs
            }
        }
        self.blocks = blocks
        featureCount = config.channels(1280)
        headConv = try Conv3d(inputs, featureCount, kernel: 1, bias: false)
        headBn = try BatchNorm3d(featureCount)
        dropout = Dropout(config.dropout)
    }

    /// Pooled features (B, featureCount) of a batch (B, C, D, H, W).
    public func features(_ x: Tensor) throws -> Tensor {
        var y = try stemBn(stemConv(x)).silu()
        for block in blocks { y = try block(y) }
        y = try headBn(headConv(y)).silu()
        return try dropout(Functional.adaptiveAvgPool3d(y, size: [1, 1, 1]).flatten(start: 1))
    }
}
