import CTorch

/// Element types, numbered as c10::ScalarType so the codes cross the C boundary unchanged.
public enum DType: Int32, CaseIterable, Sendable {
    case uint8 = 0, int8 = 1, int16 = 2, int32 = 3, int64 = 4
    case float16 = 5, float32 = 6, float64 = 7, bool = 11, bfloat16 = 15

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .int16, .float16, .bfloat16: return 2
        case .int32, .float32: return 4
        case .int64, .float64: return 8
        }
    }

    /// True for the floating-point types.
    public var isFloatingPoint: Bool { [.float16, .float32, .float64, .bfloat16].contains(self) }
}

/// Where a tensor lives: the CPU or one CUDA device.
public enum Device: Equatable, Sendable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    /// The shim's device code (-1 CPU, n CUDA n).
    var code: Int32 {
        switch self {
        case .cpu: return -1
        case .cuda(let i): return Int32(i)
        }
    }

    init(code: Int32) { self = code < 0 ? .cpu : .cuda(Int(code)) }

    /// True for CUDA devices.
    public var isCUDA: Bool { self != .cpu }

    /// Parses "cpu", "cuda" or "cuda:N".
    public init?(_ text: String) {
        let t = text.lowercased()
        if t == "cpu" { self = .cpu; return }
        if t == "cuda" { self = .cuda(0); return }
        if t.hasPrefix("cuda:"), let i = Int(t.dropFirst(5)) { self = .cuda(i); return }
        return nil
    }

    /// A short readable form for logs and test failures.
    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let i): return "cuda:\(i)"
        }
    }
}

/// A device as a training configuration or `--device` names it, parsed once where it enters: a device, where plain
/// "cuda" is kept apart from "cuda:0" because ranks started by a launcher each take their own local GPU for it.
public struct DeviceSetting: Equatable, Sendable, CustomStringConvertible {
    /// The device (plain "cuda": GPU 0).
    public let device: Device
    /// Written as plain "cuda": each rank's local GPU under a launcher.
    public let localCUDA: Bool

    /// The setting `device` (never plain "cuda").
    public init(_ device: Device) {
        self.device = device
        localCUDA = false
    }

    /// Parses "cpu", "cuda" or "cuda:N"; nil for anything else.
    public init?(_ text: String) {
        guard let device = Device(text) else { return nil }
        self.device = device
        localCUDA = text.lowercased() == "cuda"
    }

    /// Parses a `--device` value, with the one message every command shows for a bad one (whether this libtorch
    /// can use it is `Torch.validate`'s check).
    public static func parse(_ text: String) throws -> DeviceSetting {
        guard let setting = DeviceSetting(text) else { throw TrainError(.configuration, "--device must be cpu, cuda or cuda:N, not \(text)") }
        return setting
    }

    /// The setting of the rank whose local rank is `localRank`: plain "cuda" becomes its GPU, the rest stays.
    public func onLocalRank(_ localRank: Int) -> DeviceSetting { localCUDA ? DeviceSetting(.cuda(localRank)) : self }

    /// As written in the resolved configuration: "cpu", "cuda" or "cuda:N".
    public var description: String { localCUDA ? "cuda" : device.description }
}

/// Swift element types that map onto a libtorch dtype (bfloat16 has no Swift type: see `Tensor(bfloat16Bits:)`).
public protocol TensorElement {
    /// The matching libtorch dtype.
    static var dtype: DType { get }
}

/// Maps `Float` to its libtorch dtype.
extension Float: TensorElement { public static var dtype: DType { .float32 } }
/// Maps `Double` to its libtorch dtype.
extension Double: TensorElement { public static var dtype: DType { .float64 } }
/// Maps `Float16` to its libtorch dtype.
extension Float16: TensorElement { public static var dtype: DType { .float16 } }
/// Maps `Int64` to its libtorch dtype.
extension Int64: TensorElement { public static var dtype: DType { .int64 } }
/// Maps `Int32` to its libtorch dtype.
extension Int32: TensorElement { public static var dtype: DType { .int32 } }
/// Maps `Int8` to its libtorch dtype.
extension Int8: TensorElement { public static var dtype: DType { .int8 } }
/// Maps `UInt8` to its libtorch dtype.
extension UInt8: TensorElement { public static var dtype: DType { .uint8 } }
/// Maps `Bool` to its libtorch dtype.
extension Bool: TensorElement { public static var dtype: DType { .bool } }
