import CTorch

// The loader's and augmenter's vocabulary: pinned host buffers, non-blocking copies, flips, row
// replacement and 3-D resampling (`affine_grid` + `grid_sample`).

extension Tensor {
    /// An uninitialised CPU tensor in page-locked memory when CUDA is usable (a host→GPU copy from it can
    /// run asynchronously), in ordinary memory otherwise.
    public static func emptyPinned(_ shape: [Int], dtype: DType) throws -> Tensor {
        let s = shape.map(Int64.init)
        return try make { at_empty_pinned(s, Int32(s.count), dtype.rawValue, $0) }
    }

    /// Moves to `device` (and `dtype`); with `nonBlocking` a copy from pinned memory is only queued on the
    /// current CUDA stream, so it overlaps the running step.
    public func to(device: Device, dtype: DType? = nil, nonBlocking: Bool) throws -> Tensor {
        let d = dtype ?? self.dtype
        return try Tensor.make { at_to_non_blocking(handle, d.rawValue, device.code, nonBlocking ? 1 : 0, $0) }
    }

    /// Tensors sharing this one's storage, views included (1: no one else holds its memory).
    public var storageUseCount: Int { Int(at_storage_use_count(handle)) }

    /// A view of the whole tensor with its own identity: its holders (and their views) count in
    /// `storageUseCount`, which is how a loader knows a batch buffer it handed out is free again.
    public func alias() throws -> Tensor { try Tensor.make { at_alias(handle, $0) } }

    /// The elements reversed along `dims` (`torch.flip`).
    public func flip(_ dims: [Int]) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try Tensor.make { at_flip(handle, d, Int32(d.count), $0) }
    }

    /// A copy with the entries at `index` (int64) along `dim` replaced by `source`'s rows, in order.
    public func indexCopy(dim: Int, index: Tensor, source: Tensor) throws -> Tensor {
        try Tensor.make { at_index_copy(handle, Int64(dim), index.handle, source.handle, $0) }
    }
}

extension Functional {
    /// How `gridSample` interpolates.
    public enum GridMode: Int32, Sendable {
        /// Linear along every axis (trilinear for 3-D input).
        case bilinear = 0
        /// The nearest voxel (labels, masks).
        case nearest = 1
    }

    /// What `gridSample` returns for points outside the input.
    public enum GridPadding: Int32, Sendable {
        /// Zero, as a voxel no series covers.
        case zeros = 0
        /// The nearest edge voxel.
        case border = 1
        /// The input mirrored at its edges.
        case reflection = 2
    }

    /// `F.affine_grid` in 3-D: for `theta` (N, 3, 4) mapping output to input in normalised (x = w, y = h,
    /// z = d) coordinates, the (N, D, H, W, 3) sampling grid of an output of `size` (N, C, D, H, W).
    public static func affineGrid(_ theta: Tensor, size: [Int], alignCorners: Bool) throws -> Tensor {
        let s = size.map(Int64.init)
        return try Tensor.make { at_affine_grid(theta.handle, s, Int32(s.count), alignCorners ? 1 : 0, $0) }
    }

    /// `F.grid_sample`: samples (N, C, D, H, W) `input` at `grid`'s (N, D', H', W', 3) normalised points.
    public static func gridSample(_ input: Tensor, grid: Tensor, mode: GridMode = .bilinear, padding: GridPadding = .zeros,
                                  alignCorners: Bool) throws -> Tensor {
        try Tensor.make { at_grid_sample(input.handle, grid.handle, mode.rawValue, padding.rawValue, alignCorners ? 1 : 0, $0) }
    }
}

extension Tensor {
    /// Element-wise power with a tensor of exponents (broadcasting), `torch.pow(self, exponent)`.
    public func pow(_ exponent: Tensor) throws -> Tensor {
        try Tensor.make { at_binary(7, handle, exponent.handle, $0) }
    }
}
