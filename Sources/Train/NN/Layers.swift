import Foundation

/// Samples U(−bound, bound): PyTorch's default initialisation for linear and convolution layers
/// (kaiming_uniform with a = √5 gives bound = 1/√fan_in for weights and biases alike).
func uniformParameter(_ shape: [Int], fanIn: Int) throws -> Tensor {
    let bound = 1 / Double(fanIn).squareRoot()
    let t = try Tensor.empty(shape)
    try t.uniform_(-bound, bound)
    return t
}

/// y = x Wᵀ + b, weight (out, in) as `torch.nn.Linear`.
public final class Linear: Module, UnaryLayer {
    /// The weight (PyTorch layout).
    @Param public var weight: Tensor
    /// The bias, or nil when built without one.
    @Param public var bias: Tensor?

    /// A layer from `inputs` to `outputs` features, PyTorch-initialised.
    public init(_ inputs: Int, _ outputs: Int, bias: Bool = true) throws {
        _weight = Param(wrappedValue: try uniformParameter([outputs, inputs], fanIn: inputs))
        _bias = Param(wrappedValue: bias ? try uniformParameter([outputs], fanIn: inputs) : nil)
    }

    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try Functional.linear(x, weight: weight, bias: bias) }
}

/// 3-D convolution over (N, C, D, H, W), weight (out, in/groups, k, k, k) as `torch.nn.Conv3d`.
public final class Conv3d: Module, UnaryLayer {
    /// The weight (PyTorch layout).
    @Param public var weight: Tensor
    /// The bias, or nil when built without one.
    @Param public var bias: Tensor?
    /// Stride, padding (same in every dimension) and groups.
    public let stride: Int, padding: Int, groups: Int

    /// A cubic-kernel convolution; `groups` == `inputs` == `outputs` makes it depthwise.
    public init(_ inputs: Int, _ outputs: Int, kernel: Int, stride: Int = 1, padding: Int = 0, groups: Int = 1,
                bias: Bool = true) throws {
        guard inputs % groups == 0, outputs % groups == 0 else {
            throw TrainError(.shape, "Conv3d: \(inputs) → \(outputs) channels do not split into \(groups) groups")
        }
        let fanIn = inputs / groups * kernel * kernel * kernel
        _weight = Param(wrappedValue: try uniformParameter([outputs, inputs / groups, kernel, kernel, kernel], fanIn: fanIn))
        _bias = Param(wrappedValue: bias ? try uniformParameter([outputs], fanIn: fanIn) : nil)
        self.stride = stride
        self.padding = padding
        self.groups = groups
    }

    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Functional.conv3d(x, weight: weight, bias: bias, stride: [stride, stride, stride],
                              padding: [padding, padding, padding], groups: groups)
    }
}

/// Batch normalisation over (N, C, D, H, W) with running statistics, as `torch.nn.BatchNorm3d`.
public final class BatchNorm3d: Module, UnaryLayer {
    /// The scale γ.
    @Param public var weight: Tensor
    /// The shift β.
    @Param public var bias: Tensor
    /// Running mean of the batch means (evaluation uses it).
    @Buffer public var runningMean: Tensor
    /// Running mean of the batch variances (evaluation uses it).
    @Buffer public var runningVar: Tensor
    /// Number of training batches seen (int64 scalar, as PyTorch keeps it).
    @Buffer public var numBatchesTracked: Tensor
    /// ε added to the variance and the running-average momentum (PyTorch convention: new = (1−m)·old + m·batch).
    public let eps: Double, momentum: Double

    /// A layer for `features` channels.
    public init(_ features: Int, eps: Double = 1e-5, momentum: Double = 0.1) throws {
        _weight = Param(wrappedValue: try Tensor.ones([features]))
        _bias = Param(wrappedValue: try Tensor.zeros([features]))
        _runningMean = Buffer(wrappedValue: try Tensor.zeros([features]))
        _runningVar = Buffer(wrappedValue: try Tensor.ones([features]))
        _numBatchesTracked = Buffer(wrappedValue: try Tensor.zeros([], dtype: .int64))
        self.eps = eps
        self.momentum = momentum
    }

    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        if training { try numBatchesTracked.add_(1) }
        return try Functional.batchNorm(x, weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                                        training: training, momentum: momentum, eps: eps)
    }
}

/// Layer normalisation over the last dimension, as `torch.nn.LayerNorm(dim)`.
public final class LayerNorm: Module, UnaryLayer {
    /// The scale γ.
    @Param public var weight: Tensor
    /// The shift β.
    @Param public var bias: Tensor
    /// Normalised size and ε.
    public let dim: Int, eps: Double

    /// A layer normalising vectors of `dim` features.
    public init(_ dim: Int, eps: Double = 1e-5) throws {
        _weight = Param(wrappedValue: try Tensor.ones([dim]))
        _bias = Param(wrappedValue: try Tensor.zeros([dim]))
        self.dim = dim
        self.eps = eps
    }

    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Functional.layerNorm(x, shape: [dim], weight: weight, bias: bias, eps: eps)
    }
}

/// Inverted dropout with probability `p`, active only in training mode.
public final class Dropout: Module, UnaryLayer {
    /// Drop probability.
    public let p: Double
    /// A dropout layer.
    public init(_ p: Double) { self.p = p }
    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        p == 0 ? x : try Functional.dropout(x, p: p, training: training)
    }
}

/// x·σ(x).
public final class SiLU: Module, UnaryLayer {
    /// A layer without parameters.
    public override init() {}
    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.silu() }
}

/// Gaussian error linear unit.
public final class GELU: Module, UnaryLayer {
    /// A layer without parameters.
    public override init() {}
    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.gelu() }
}

/// max(x, 0).
public final class ReLU: Module, UnaryLayer {
    /// A layer without parameters.
    public override init() {}
    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.relu() }
}

/// σ(x).
public final class Sigmoid: Module, UnaryLayer {
    /// A layer without parameters.
    public override init() {}
    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.sigmoid() }
}

/// Average over D, H, W: (N, C, D, H, W) → (N, C).
public final class GlobalAvgPool3d: Module, UnaryLayer {
    /// A layer without parameters.
    public override init() {}
    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Functional.adaptiveAvgPool3d(x, size: [1, 1, 1]).flatten(start: 1)
    }
}

/// Cubic max pooling.
public final class MaxPool3d: Module, UnaryLayer {
    /// Kernel, stride and padding (same in every dimension).
    public let kernel: Int, stride: Int, padding: Int
    /// A pooling layer (stride defaults to the kernel size, as in PyTorch).
    public init(kernel: Int, stride: Int? = nil, padding: Int = 0) {
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
    }
    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Functional.maxPool3d(x, kernel: [kernel, kernel, kernel], stride: [stride, stride, stride],
                                 padding: [padding, padding, padding])
    }
}

/// Layers applied in order; children are named `0`, `1`, ... as in `torch.nn.Sequential`.
public final class Sequential: Module, UnaryLayer {
    /// The layers, in order.
    public let layers: [any UnaryLayer]
    /// A sequence of `layers`.
    public init(_ layers: [any UnaryLayer]) { self.layers = layers }
    /// The layers keyed by position, as PyTorch names them.
    public override func namedChildren() -> [(String, Module)] { layers.enumerated().map { ("\($0.offset)", $0.element) } }
    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try layers.reduce(x) { try $1($0) } }
}

/// Multi-head self-attention over (N, L, dim) with a fused qkv projection (timm's `Attention` layout).
public final class SelfAttention: Module, UnaryLayer {
    /// q, k, v in one projection, and the output projection.
    public let qkv: Linear, proj: Linear
    /// Number of heads.
    public let heads: Int

    /// Attention with `heads` heads over `dim` features (`dim` must divide by `heads`).
    public init(dim: Int, heads: Int) throws {
        guard dim % heads == 0 else { throw TrainError(.shape, "SelfAttention: dim \(dim) does not split into \(heads) heads") }
        qkv = try Linear(dim, 3 * dim)
        proj = try Linear(dim, dim)
        self.heads = heads
    }

    /// Applies the layer to `x`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let s = x.shape
        let (n, l, d) = (s[0], s[1], s[2])
        let qkv = try self.qkv(x).reshape([n, l, 3, heads, d / heads]).permute([2, 0, 3, 1, 4])
        let y = try Functional.scaledDotProductAttention(qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2))
        return try proj(y.transpose(1, 2).reshape([n, l, d]))
    }
}
