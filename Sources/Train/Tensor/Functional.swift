import CTorch

/// Neural-network functions over tensors (`torch.nn.functional`), used by the layers in `NN/`.
public enum Functional {
    /// y = x Wᵀ + b.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        try Tensor.make { at_linear(x.handle, weight.handle, bias?.handle, $0) }
    }

    /// 3-D convolution of (N, C, D, H, W) input; `groups` == channels makes it depthwise.
    public static func conv3d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: [Int], padding: [Int],
                              dilation: [Int] = [1, 1, 1], groups: Int = 1) throws -> Tensor {
        let s = stride.map(Int64.init), p = padding.map(Int64.init), d = dilation.map(Int64.init)
        return try Tensor.make { at_conv3d(x.handle, weight.handle, bias?.handle, s, p, d, Int64(groups), $0) }
    }

    /// Batch normalisation; in training mode the running statistics are updated in place.
    public static func batchNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, runningMean: Tensor?, runningVar: Tensor?,
                                 training: Bool, momentum: Double, eps: Double) throws -> Tensor {
        try Tensor.make {
            at_batch_norm(x.handle, weight?.handle, bias?.handle, runningMean?.handle, runningVar?.handle,
                          training ? 1 : 0, momentum, eps, $0)
        }
    }

    /// Layer normalisation over the trailing `shape`.
    public static func layerNorm(_ x: Tensor, shape: [Int], weight: Tensor?, bias: Tensor?, eps: Double) throws -> Tensor {
        let s = shape.map(Int64.init)
        return try Tensor.make { at_layer_norm(x.handle, s, Int32(s.count), weight?.handle, bias?.handle, eps, $0) }
    }

    /// Inverted dropout (identity when not training).
    public static func dropout(_ x: Tensor, p: Double, training: Bool) throws -> Tensor {
        try Tensor.make { at_dropout(x.handle, p, training ? 1 : 0, $0) }
    }

    /// Adaptive average pooling of (N, C, D, H, W) to `size`.
    public static func adaptiveAvgPool3d(_ x: Tensor, size: [Int]) throws -> Tensor {
        let s = size.map(Int64.init)
        return try Tensor.make { at_adaptive_avg_pool3d(x.handle, s, $0) }
    }

    /// 3-D max pooling.
    public static func maxPool3d(_ x: Tensor, kernel: [Int], stride: [Int], padding: [Int]) throws -> Tensor {
        let k = kernel.map(Int64.init), s = stride.map(Int64.init), p = padding.map(Int64.init)
        return try Tensor.make { at_max_pool3d(x.handle, k, s, p, $0) }
    }

    /// 3-D average pooling.
    public static func avgPool3d(_ x: Tensor, kernel: [Int], stride: [Int], padding: [Int]) throws -> Tensor {
        let k = kernel.map(Int64.init), s = stride.map(Int64.init), p = padding.map(Int64.init)
        return try Tensor.make { at_avg_pool3d(x.handle, k, s, p, $0) }
    }

    /// softmax(q kᵀ / √d) v over (…, L, d) tensors, through libtorch's fused kernels.
    public static func scaledDotProductAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, dropout: Double = 0,
                                                 causal: Bool = false) throws -> Tensor {
        try Tensor.make { at_scaled_dot_product_attention(q.handle, k.handle, v.handle, dropout, causal ? 1 : 0, $0) }
    }

    /// Trilinear resize of (N, C, D, H, W) to `size` (align_corners = false, as `F.interpolate`).
    public static func interpolateTrilinear(_ x: Tensor, size: [Int]) throws -> Tensor {
        let s = size.map(Int64.init)
        return try Tensor.make { at_upsample_trilinear3d(x.handle, s, $0) }
    }
}
