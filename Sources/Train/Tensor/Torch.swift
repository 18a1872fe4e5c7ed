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
/// libtorch is reached through a bridge library opened on first use (see `load()`), so a process that
/// never trains never loads it.
public enum Torch {
    /// Opens the libtorch bridge (libfuse3d_torch.so) if it is not open yet. Throws one error naming
    /// where it looked and the command that builds it when the bridge is missing or does not fit.
    public static func load() throws {
        guard ctorch_load() == 0 else { return }
        throw TorchError(String(cString: ctorch_load_error()))
    }

    /// The libtorch the bridge runs on (loads the bridge; a missing one ends the process with its message).
    public static var version: String { String(cString: at_version()) }

    /// The libtorch found: its version, files, CUDA runtime and visible GPUs (what `fuse3d version` prints).
    public static func library() throws -> TorchLibrary {
        try load()
        let count = Int(atg_cuda_device_count())
        let runtime = Int(atg_cuda_runtime_version())
        return TorchLibrary(
            version: version,
            bridgePath: String(cString: ctorch_library_path()),
            libraryPath: takeString(atg_library_path()),
            cudaRuntime: runtime > 0 ? "\(runtime / 1000).\(runtime % 1000 / 10)" : nil,
            cudaLoadError: takeString(atg_cuda_load_error()),
            gpus: (0..<count).map { takeString(atg_cuda_device_name(Int32($0))) ?? "" })
    }

    /// Checks that `device` is usable by this libtorch (loading the bridge first), with an error that
    /// says what to build when it is not: the check behind every `--device` option.
    public static func validate(_ device: Device) throws {
        try load()
        guard case .cuda(let index) = device else { return }
        let lib = try library()
        if let problem = lib.cudaLoadError {
            throw TorchError("--device \(device): libtorch's CUDA library failed to load: \(problem); install that "
                             + "PyTorch's CUDA libraries or build the bridge against another: make torch PYTHON=/path/to/python")
        }
        guard lib.cudaRuntime != nil else {
            throw TorchError("--device \(device): libtorch \(lib.version) is a CPU-only build; build the bridge against "
                             + "a CUDA PyTorch: make torch PYTHON=/path/to/python (see docs/own-pytorch.md)")
        }
        guard index < lib.gpus.count else {
            throw TorchError("--device \(device): libtorch sees \(lib.gpus.count) GPU(s) (check CUDA_VISIBLE_DEVICES and the driver)")
        }
    }

    /// A malloc'd string from the shim as a Swift string (freed), or nil.
    private static func takeString(_ p: UnsafeMutablePointer<CChar>?) -> String? {
        guard let p else { return nil }
        defer { at_string_free(p) }
        return String(cString: p)
    }

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

    /// The default CUDA generator's state of every visible GPU, by index (none when this libtorch has no usable
    /// CUDA, so the CPU path never asks for it): dropout and drop-path on a GPU draw from these, not the CPU's.
    public static func cudaRNGStates() throws -> [Tensor] {
        try (0..<cudaDeviceCount).map { try cudaRNGState(device: $0) }
    }

    /// GPUs this libtorch can use (0 without usable CUDA).
    public static var cudaDeviceCount: Int { cudaAvailable ? Int(atg_cuda_device_count()) : 0 }

    /// The default CUDA generator's state of GPU `device` (a libtorch error on a CPU-only build).
    static func cudaRNGState(device: Int) throws -> Tensor {
        var out: at_tensor?
        atg_get_cuda_rng_state(Int32(device), &out)
        return try Tensor.adopt(out)
    }

    /// Restores GPU `device`'s default CUDA generator from `cudaRNGStates()`'s tensor.
    public static func setCUDARNGState(_ state: Tensor, device: Int) throws {
        atg_set_cuda_rng_state(Int32(device), state.handle)
        try check()
    }
}

/// The libtorch fuse3d runs on, as `Torch.library()` found it.
public struct TorchLibrary: Sendable, Equatable {
    /// libtorch's version (from the headers the bridge was built with).
    public var version: String
    /// The bridge library that was opened.
    public var bridgePath: String
    /// libtorch's CPU library (libtorch_cpu.so), whose folder names the PyTorch in use.
    public var libraryPath: String?
    /// The CUDA runtime libtorch was built with ("12.8"), nil for a CPU-only build.
    public var cudaRuntime: String?
    /// Why libtorch's CUDA library is present but did not load, if so.
    public var cudaLoadError: String?
    /// The visible GPUs' names (empty strings when the driver gives none), index = CUDA device.
    public var gpus: [String]

    /// Human-readable lines for `fuse3d version`.
    public var summary: [String] {
        var lines = ["libtorch \(version) at \(libraryPath ?? "(unknown)")", "  bridge \(bridgePath)"]
        if let cudaLoadError {
            lines.append("  CUDA: libtorch_cuda did not load (\(cudaLoadError)); CPU only")
        } else if let cudaRuntime {
            lines.append("  CUDA \(cudaRuntime), \(gpus.count) visible GPU(s)")
            lines += gpus.enumerated().map { "    cuda:\($0.offset) \($0.element.isEmpty ? "(unnamed)" : $0.element)" }
        } else {
            lines.append("  CUDA: none (CPU-only libtorch)")
        }
        return lines
    }
}
