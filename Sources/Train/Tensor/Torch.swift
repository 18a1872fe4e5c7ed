import CTorch
import Foundation

/// An error raised inside libtorch (shape mismatch, bad dtype, ...), carrying libtorch's own message.
public struct TorchError: Error, CustomStringConvertible, Equatable {
    /// libtorch's message (its first line names the failed check).
    public var message: String
    /// An error with libtorch's message.
    public init(_ message: String) { self.message = message }
    /// The message, marked as libtorch's.
    public var description: String { "libtorch: \(message)" }
}

/// Process-wide libtorch settings: version, seeding, threads, gradient mode, autocast, devices.
public enum Torch {
    /// The libtorch this build links against.
    public static var version: String { String(cString: at_version()) }

    /// The one place the shim's thread-local last error becomes a Swift error.
    static func check() throws {
        guard let p = at_take_error() else { return }
        defer { at_string_free(p) }
        throw TorchError(String(cString: p))
    }

    /// Seeds libtorch's generators (CPU and CUDA), as `torch.manual_seed`.
    public static func manualSeed(_ seed: UInt64) { atg_manual_seed(seed) }

    /// libtorch's intra-op thread count (`torch.set_num_threads` / `get_num_threads`).
    public static var threads: Int {
        get { Int(atg_get_num_threads()) }
        set { atg_set_num_threads(Int32(newValue)) }
    }

    /// Whether a CUDA device is usable by this libtorch (false for the CPU wheel).
    public static var cudaAvailable: Bool { atg_cuda_is_available() != 0 }

    /// Whether the CPU executes bfloat16 natively (AVX512-BF16 or AMX), so bf16 autocast can pay off.
    public static var cpuHasNativeBF16: Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
        return info.contains(" avx512_bf16") || info.contains(" amx_bf16")
    }

    /// Runs `body` without recording gradients (`torch.no_grad()`), restoring the previous mode after.
    public static func noGrad<R>(_ body: () throws -> R) rethrows -> R {
        let previous = atg_set_grad_enabled(0)
        defer { atg_set_grad_enabled(previous) }
        return try body()
    }

    /// Runs `body` under autocast on `device` with `dtype` (bfloat16 on CPUs, float16 or bfloat16 on CUDA).
    public static func autocast<R>(_ device: Device, dtype: DType = .bfloat16, _ body: () throws -> R) rethrows -> R {
        let cuda: Int32 = device.isCUDA ? 1 : 0
        atg_autocast_enter(cuda, dtype.rawValue)
        defer { atg_autocast_exit(cuda) }
        return try body()
    }

    /// The CPU generator's state (a uint8 tensor), for checkpoints.
    public static func rngState() throws -> Tensor {
        var out: at_tensor?
        atg_get_rng_state(&out)
        return try Tensor.adopt(out)
    }

    /// Restores the CPU generator from `rngState()`'s tensor.
    public static func setRNGState(_ state: Tensor) throws {
        atg_set_rng_state(state.handle)
        try check()
    }
}
