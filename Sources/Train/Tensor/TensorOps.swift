import CTorch

// Math on tensors. Every op throws libtorch's message (shape mismatch, bad dtype) as a `TorchError`
// instead of crashing, so one `try` covers a whole expression.

extension Tensor {
    private func unary(_ op: Int32) throws -> Tensor { try Tensor.make { at_unary(op, handle, $0) } }
    private static func binary(_ op: Int32, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        try make { at_binary(op, a.handle, b.handle, $0) }
    }
    private func scalar(_ op: Int32, _ s: Double) throws -> Tensor { try Tensor.make { at_scalar_op(op, handle, s, $0) } }

    // MARK: element-wise

    /// −x.
    public func neg() throws -> Tensor { try unary(0) }
    /// eˣ.
    public func exp() throws -> Tensor { try unary(1) }
    /// Natural logarithm.
    public func log() throws -> Tensor { try unary(2) }
    /// Square root.
    public func sqrt() throws -> Tensor { try unary(3) }
    /// Logistic sigmoid σ(x).
    public func sigmoid() throws -> Tensor { try unary(4) }
    /// max(x, 0).
    public func relu() throws -> Tensor { try unary(5) }
    /// x·σ(x) (swish).
    public func silu() throws -> Tensor { try unary(6) }
    /// Gaussian error linear unit (exact erf form, PyTorch's default).
    public func gelu() throws -> Tensor { try unary(7) }
    /// Hyperbolic tangent.
    public func tanh() throws -> Tensor { try unary(8) }
    /// |x|.
    public func abs() throws -> Tensor { try unary(9) }
    /// log σ(x), computed stably.
    public func logSigmoid() throws -> Tensor { try unary(10) }
    /// x².
    public func square() throws -> Tensor { try unary(11) }
    /// 1/x.
    public func reciprocal() throws -> Tensor { try unary(12) }
    /// A bool tensor: true where the element is neither NaN nor infinite.
    public func isFinite() throws -> Tensor { try unary(13) }

    /// Element-wise maximum (broadcasting).
    public func maximum(_ other: Tensor) throws -> Tensor { try Tensor.binary(4, self, other) }
    /// Element-wise minimum (broadcasting).
    public func minimum(_ other: Tensor) throws -> Tensor { try Tensor.binary(5, self, other) }
    /// Matrix product with numpy-style batching (`torch.matmul`).
    public func matmul(_ other: Tensor) throws -> Tensor { try Tensor.binary(6, self, other) }
    /// xᵉ for a scalar exponent.
    public func pow(_ exponent: Double) throws -> Tensor { try scalar(4, exponent) }
    /// max(x, low).
    public func clamp(min low: Double) throws -> Tensor { try scalar(6, low) }
    /// min(x, high).
    public func clamp(max high: Double) throws -> Tensor { try scalar(7, high) }
    /// min(max(x, low), high).
    public func clamp(_ low: Double, _ high: Double) throws -> Tensor { try scalar(6, low).scalar(7, high) }
    /// Boolean mask x == s.
    public func eq(_ s: Double) throws -> Tensor { try scalar(8, s) }
    /// Boolean mask x ≥ s.
    public func ge(_ s: Double) throws -> Tensor { try scalar(9, s) }
    /// Boolean mask x > s.
    public func gt(_ s: Double) throws -> Tensor { try scalar(10, s) }
    /// Boolean mask x ≤ s.
    public func le(_ s: Double) throws -> Tensor { try scalar(11, s) }
    /// Boolean mask x < s.
    public func lt(_ s: Double) throws -> Tensor { try scalar(12, s) }

    /// `torch.where(cond, a, b)`.
    public static func `where`(_ cond: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        try make { at_where(cond.handle, a.handle, b.handle, $0) }
    }
    /// Softmax along `dim`.
    public func softmax(dim: Int) throws -> Tensor { try Tensor.make { at_softmax(handle, Int64(dim), $0) } }
    /// Log-softmax along `dim`.
    public func logSoftmax(dim: Int) throws -> Tensor { try Tensor.make { at_log_softmax(handle, Int64(dim), $0) } }

    /// Element-wise a + b with broadcasting.
    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try binary(0, a, b) }
    /// Element-wise a − b with broadcasting.
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try binary(1, a, b) }
    /// Element-wise a · b with broadcasting.
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try binary(2, a, b) }
    /// Element-wise a / b with broadcasting.
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try binary(3, a, b) }
    /// a + s.
    public static func + (a: Tensor, s: Double) throws -> Tensor { try a.scalar(0, s) }
    /// a − s.
    public static func - (a: Tensor, s: Double) throws -> Tensor { try a.scalar(1, s) }
    /// a · s.
    public static func * (a: Tensor, s: Double) throws -> Tensor { try a.scalar(2, s) }
    /// a / s.
    public static func / (a: Tensor, s: Double) throws -> Tensor { try a.scalar(3, s) }
    /// s + a.
    public static func + (s: Double, a: Tensor) throws -> Tensor { try a.scalar(0, s) }
    /// s − a.
    public static func - (s: Double, a: Tensor) throws -> Tensor { try a.scalar(5, s) }
    /// s · a.
    public static func * (s: Double, a: Tensor) throws -> Tensor { try a.scalar(2, s) }
    /// −a.
    public static prefix func - (a: Tensor) throws -> Tensor { try a.neg() }

    // MARK: reductions

    private func reduce(_ op: Int32, _ dims: [Int], _ keepDim: Bool) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try Tensor.make { at_reduce(op, handle, d, Int32(d.count), keepDim ? 1 : 0, $0) }
    }
    /// Sum over `dims` (all when empty).
    public func sum(_ dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(0, dims, keepDim) }
    /// Mean over `dims` (all when empty).
    public func mean(_ dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(1, dims, keepDim) }
    /// Maximum over `dims` (all when empty).
    public func max(_ dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(2, dims, keepDim) }
    /// Minimum over `dims` (all when empty).
    public func min(_ dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(3, dims, keepDim) }
    /// Euclidean norm over `dims` (all when empty).
    public func norm(_ dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(4, dims, keepDim) }
    /// Whether every element along `dims` (all when empty) is true (a bool tensor).
    public func all(_ dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(5, dims, keepDim) }
    /// Index of the maximum along `dim`.
    public func argmax(dim: Int, keepDim: Bool = false) throws -> Tensor {
        try Tensor.make { at_argmax(handle, Int64(dim), keepDim ? 1 : 0, $0) }
    }

    // MARK: shape

    /// The same elements with a new shape (−1 infers one size).
    public func reshape(_ shape: [Int]) throws -> Tensor {
        let s = shape.map(Int64.init)
        return try Tensor.make { at_reshape(handle, s, Int32(s.count), $0) }
    }
    /// Reorders dimensions.
    public func permute(_ dims: [Int]) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try Tensor.make { at_permute(handle, d, Int32(d.count), $0) }
    }
    /// Swaps two dimensions.
    public func transpose(_ a: Int, _ b: Int) throws -> Tensor {
        try Tensor.make { at_transpose(handle, Int64(a), Int64(b), $0) }
    }
    /// Broadcasts size-1 dimensions to `shape` without copying (−1 keeps a size).
    public func expand(_ shape: [Int]) throws -> Tensor {
        let s = shape.map(Int64.init)
        return try Tensor.make { at_expand(handle, s, Int32(s.count), $0) }
    }
    /// Merges dimensions `start...end` into one.
    public func flatten(start: Int = 0, end: Int = -1) throws -> Tensor {
        try Tensor.make { at_flatten(handle, Int64(start), Int64(end), $0) }
    }
    /// Inserts a size-1 dimension at `dim`.
    public func unsqueeze(_ dim: Int) throws -> Tensor { try Tensor.make { at_unsqueeze(handle, Int64(dim), $0) } }
    /// Removes the size-1 dimension `dim`.
    public func squeeze(_ dim: Int) throws -> Tensor { try Tensor.make { at_squeeze(handle, Int64(dim), $0) } }
    /// The view of `length` entries from `start` along `dim` (writes go through to `self`).
    public func narrow(_ dim: Int, start: Int, length: Int) throws -> Tensor {
        try Tensor.make { at_narrow(handle, Int64(dim), Int64(start), Int64(length), $0) }
    }
    /// The view at `index` along `dim`, with that dimension removed.
    public func select(_ dim: Int, _ index: Int) throws -> Tensor {
        try Tensor.make { at_select(handle, Int64(dim), Int64(index), $0) }
    }
    /// Concatenates along an existing dimension.
    public static func cat(_ tensors: [Tensor], dim: Int) throws -> Tensor {
        let hs: [at_tensor?] = tensors.map { $0.handle }
        return try withExtendedLifetime(tensors) { try make { at_cat(hs, Int32(hs.count), Int64(dim), $0) } }
    }
    /// Stacks along a new dimension.
    public static func stack(_ tensors: [Tensor], dim: Int) throws -> Tensor {
        let hs: [at_tensor?] = tensors.map { $0.handle }
        return try withExtendedLifetime(tensors) { try make { at_stack(hs, Int32(hs.count), Int64(dim), $0) } }
    }
    /// `torch.gather` along `dim` with an int64 index tensor.
    public func gather(dim: Int, index: Tensor) throws -> Tensor {
        try Tensor.make { at_gather(handle, Int64(dim), index.handle, $0) }
    }
    /// Rows (along `dim`) picked by an int64 index tensor.
    public func indexSelect(dim: Int, index: Tensor) throws -> Tensor {
        try Tensor.make { at_index_select(handle, Int64(dim), index.handle, $0) }
    }

    // MARK: in place (optimisers, initialisers, checkpoint loading)

    private func inPlace(_ call: () -> Void) throws {
        call()
        try Torch.check()
    }
    /// Copies `source` into this tensor's storage (broadcasting, converting dtype and device).
    public func copy_(_ source: Tensor) throws { try inPlace { at_copy_(handle, source.handle) } }
    /// Sets every element to `value`.
    public func fill_(_ value: Double) throws { try inPlace { at_fill_(handle, value) } }
    /// Uniform samples in [low, high).
    public func uniform_(_ low: Double, _ high: Double) throws { try inPlace { at_uniform_(handle, low, high) } }
    /// Normal samples.
    public func normal_(mean: Double = 0, std: Double = 1) throws { try inPlace { at_normal_(handle, mean, std) } }
    /// Bernoulli(p) samples (1 with probability p).
    public func bernoulli_(_ p: Double) throws { try inPlace { at_bernoulli_(handle, p) } }
    /// self += alpha · other.
    public func add_(_ other: Tensor, alpha: Double = 1) throws { try inPlace { at_add_(handle, other.handle, alpha) } }
    /// self += value.
    public func add_(_ value: Double) throws { try inPlace { at_add_scalar_(handle, value) } }
    /// self *= other.
    public func mul_(_ other: Tensor) throws { try inPlace { at_mul_(handle, other.handle) } }
    /// self *= value.
    public func mul_(_ value: Double) throws { try inPlace { at_mul_scalar_(handle, value) } }
    /// self += value · a · b.
    public func addcmul_(_ a: Tensor, _ b: Tensor, value: Double) throws {
        try inPlace { at_addcmul_(handle, a.handle, b.handle, value) }
    }
    /// self += value · a / b.
    public func addcdiv_(_ a: Tensor, _ b: Tensor, value: Double) throws {
        try inPlace { at_addcdiv_(handle, a.handle, b.handle, value) }
    }
    /// self += weight · (end − self).
    public func lerp_(_ end: Tensor, weight: Double) throws { try inPlace { at_lerp_(handle, end.handle, weight) } }
    /// self = min(self, limit), element-wise with broadcasting.
    public func clampMax_(_ limit: Tensor) throws { try inPlace { at_clamp_max_tensor_(handle, limit.handle) } }
}
