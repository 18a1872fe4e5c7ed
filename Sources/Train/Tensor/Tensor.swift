import CTorch

/// A libtorch tensor. The class owns one shim handle and frees it in `deinit`; copies of the
/// reference share the tensor, exactly as Python names share a `torch.Tensor`.
public final class Tensor {
    /// The shim handle (an `at::Tensor*`).
    let handle: at_tensor

    init(handle: at_tensor) { self.handle = handle }
    deinit { at_free(handle) }

    /// Wraps a handle a shim call returned through its out-parameter, or throws libtorch's error.
    static func adopt(_ out: at_tensor?) throws -> Tensor {
        try Torch.check()
        guard let out else { throw TorchError("libtorch returned no tensor") }
        return Tensor(handle: out)
    }

    /// Runs a shim call that writes one tensor through its out-parameter.
    static func make(_ call: (UnsafeMutablePointer<at_tensor?>) -> Void) throws -> Tensor {
        try Torch.load()
        var out: at_tensor?
        call(&out)
        return try adopt(out)
    }

    // MARK: creation

    /// An uninitialised tensor (its memory can be filled in place through `withUnsafeMutableBytes`).
    public static func empty(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let s = shape.map(Int64.init)
        return try make { at_empty(s, Int32(s.count), dtype.rawValue, device.code, $0) }
    }

    /// A tensor filled with `value`.
    public static func full(_ shape: [Int], _ value: Double, dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let s = shape.map(Int64.init)
        return try make { at_full(s, Int32(s.count), value, dtype.rawValue, device.code, $0) }
    }

    /// Zeros.
    public static func zeros(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try full(shape, 0, dtype: dtype, device: device)
    }

    /// Ones.
    public static func ones(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try full(shape, 1, dtype: dtype, device: device)
    }

    /// Uniform samples in [0, 1) from libtorch's generator.
    public static func rand(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let s = shape.map(Int64.init)
        return try make { at_rand(s, Int32(s.count), dtype.rawValue, device.code, $0) }
    }

    /// Standard normal samples from libtorch's generator.
    public static func randn(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let s = shape.map(Int64.init)
        return try make { at_randn(s, Int32(s.count), dtype.rawValue, device.code, $0) }
    }

    /// `torch.arange(start, end, step)`.
    public static func arange(_ start: Double, _ end: Double, step: Double = 1, dtype: DType = .float32,
                              device: Device = .cpu) throws -> Tensor {
        try make { at_arange(start, end, step, dtype.rawValue, device.code, $0) }
    }

    /// A tensor holding `values` (row-major) with `shape`: one copy straight into libtorch's storage.
    public convenience init<T: TensorElement>(_ values: [T], shape: [Int], device: Device = .cpu) throws {
        try self.init(copying: values, shape: shape, dtype: T.dtype, device: device)
    }

    /// A 1-D tensor holding `values`.
    public convenience init<T: TensorElement>(_ values: [T], device: Device = .cpu) throws {
        try self.init(values, shape: [values.count], device: device)
    }

    /// A bfloat16 tensor from raw bfloat16 bit patterns (Swift has no bfloat16 type).
    public convenience init(bfloat16Bits values: [UInt16], shape: [Int], device: Device = .cpu) throws {
        try self.init(copying: values, shape: shape, dtype: .bfloat16, device: device)
    }

    /// A tensor made from raw little-endian bytes of `dtype` (safetensors payloads).
    public convenience init(bytes: UnsafeRawBufferPointer, shape: [Int], dtype: DType, device: Device = .cpu) throws {
        let count = shape.reduce(1, *)
        guard bytes.count == count * dtype.byteSize else {
            throw TrainError(.shape, "\(bytes.count) bytes cannot fill shape \(shape) of \(dtype) (\(count * dtype.byteSize) bytes)")
        }
        let s = shape.map(Int64.init)
        let handle = try Tensor.adoptHandle { at_from_data(bytes.baseAddress, s, Int32(s.count), dtype.rawValue, device.code, $0) }
        self.init(handle: handle)
    }

    private convenience init<T>(copying values: [T], shape: [Int], dtype: DType, device: Device) throws {
        guard shape.reduce(1, *) == values.count else {
            throw TrainError(.shape, "\(values.count) values cannot fill shape \(shape)")
        }
        let handle: at_tensor = try values.withUnsafeBytes { raw in
            try Tensor.adoptHandle { at_from_data(raw.baseAddress, shape.map(Int64.init), Int32(shape.count), dtype.rawValue, device.code, $0) }
        }
        self.init(handle: handle)
    }

    /// Runs a shim call and returns its raw handle (for convenience initialisers that must own it).
    private static func adoptHandle(_ call: (UnsafeMutablePointer<at_tensor?>) -> Void) throws -> at_tensor {
        try Torch.load()
        var out: at_tensor?
        call(&out)
        try Torch.check()
        guard let out else { throw TorchError("libtorch returned no tensor") }
        return out
    }

    // MARK: properties

    /// The sizes of each dimension.
    public var shape: [Int] {
        let n = Int(at_dim(handle))
        var dims = [Int64](repeating: 0, count: n)
        at_shape(handle, &dims)
        return dims.map(Int.init)
    }

    /// The number of dimensions.
    public var rank: Int { Int(at_dim(handle)) }

    /// The element type.
    public var dtype: DType { DType(rawValue: at_dtype(handle)) ?? .uint8 }

    /// The device holding the data.
    public var device: Device { Device(code: at_device(handle)) }

    /// The number of elements.
    public var count: Int { Int(at_numel(handle)) }

    /// Whether autograd records operations on this tensor.
    public var requiresGrad: Bool {
        get { at_requires_grad(handle) != 0 }
        set { at_set_requires_grad(handle, newValue ? 1 : 0) }
    }

    /// Whether the elements are laid out densely in row-major order.
    public var isContiguous: Bool { at_is_contiguous(handle) != 0 }

    // MARK: data

    /// The elements in row-major order, converted from any dtype to `T` by libtorch.
    public func toArray<T: TensorElement>(_ type: T.Type = T.self) throws -> [T] {
        let source = dtype == T.dtype ? self : try to(T.dtype)
        let n = count
        return try [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            at_copy_data(source.handle, buffer.baseAddress, n * MemoryLayout<T>.stride)
            initialized = n
            try Torch.check()
        }
    }

    /// The raw bytes of the elements, row-major (for safetensors).
    public func bytes() throws -> [UInt8] {
        let n = count * dtype.byteSize
        return try [UInt8](unsafeUninitializedCapacity: n) { buffer, initialized in
            at_copy_data(handle, buffer.baseAddress, n)
            initialized = n
            try Torch.check()
        }
    }

    /// The value of a one-element tensor.
    public func item() throws -> Double {
        var v = 0.0
        at_item(handle, &v)
        try Torch.check()
        return v
    }

    /// Lends the storage of a contiguous CPU tensor for writing in place (a loader decodes straight into it).
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        let p = at_data_ptr(handle)
        try Torch.check()
        return try body(UnsafeMutableRawBufferPointer(start: p, count: count * dtype.byteSize))
    }

    /// Converts dtype and/or moves to a device (returns `self`'s data unchanged when both match).
    public func to(_ dtype: DType? = nil, device: Device? = nil) throws -> Tensor {
        let d = dtype ?? self.dtype, v = device ?? self.device
        return try Tensor.make { at_to(handle, d.rawValue, v.code, $0) }
    }

    /// A contiguous copy, in row-major or channels-last-3d memory order.
    public func contiguous(channelsLast: Bool = false) throws -> Tensor {
        try Tensor.make { at_contiguous(handle, channelsLast ? 1 : 0, $0) }
    }

    /// A copy with its own storage.
    public func clone() throws -> Tensor { try Tensor.make { at_clone(handle, $0) } }

    /// The same data cut off from autograd.
    public func detach() throws -> Tensor { try Tensor.make { at_detach(handle, $0) } }

    // MARK: autograd

    /// The gradient accumulated by `backward()`, or nil.
    public var grad: Tensor? {
        var out: at_tensor?
        at_grad(handle, &out)
        _ = try? Torch.check()
        return out.map { Tensor(handle: $0) }
    }

    /// Drops the accumulated gradient (PyTorch's `zero_grad(set_to_none=True)`).
    public func clearGrad() { at_grad_set_none(handle) }

    /// Back-propagates from this (scalar) tensor, or with `gradient` as the seed.
    public func backward(_ gradient: Tensor? = nil, retainGraph: Bool = false) throws {
        at_backward(handle, gradient?.handle, retainGraph ? 1 : 0)
        try Torch.check()
    }
}

extension Tensor: CustomStringConvertible {
    /// A short readable form for logs and test failures.
    public var description: String { "Tensor(\(shape), \(dtype), \(device))" }
}
