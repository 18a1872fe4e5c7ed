import CTorch
import Foundation

/// A c10d process group this process has joined (PyTorch's own collectives: ProcessGroupGloo on the CPU,
/// ProcessGroupNCCL on CUDA), met through a TCPStore. Every collective is called by every rank in the same
/// order; one that a dead or late rank never completes fails after `timeout` with a `DistributedError`.
public final class ProcessGroup {
    /// The collective library: Gloo (CPU tensors, and CUDA tensors through the host) or NCCL (CUDA).
    public enum Backend: String, Sendable {
        /// c10d's ProcessGroupGloo.
        case gloo
        /// c10d's ProcessGroupNCCL.
        case nccl

        var code: Int32 { self == .gloo ? 0 : 1 }
    }

    /// How to combine a tensor across ranks.
    public enum Reduction: Int32, Sendable {
        /// Element-wise sum.
        case sum = 0
        /// Element-wise maximum.
        case max = 1
        /// Element-wise minimum.
        case min = 2
    }

    let handle: atd_group
    /// This process's rank and the number of ranks.
    public let rank: Int, worldSize: Int
    /// The launcher's description of this rank.
    public let environment: LaunchEnvironment
    /// The backend in use.
    public let backend: Backend
    /// How long the meeting and each collective may wait for the other ranks.
    public let timeout: Duration

    /// The backends the libtorch bridge was built with (empty for a libtorch without c10d).
    public static func availableBackends() throws -> [Backend] {
        try Torch.load()
        let bits = atd_backends()
        return [(Backend.gloo, Int32(1)), (.nccl, 2)].filter { bits & $0.1 != 0 }.map(\.0)
    }

    /// Joins the group `environment` describes over `backend` (NCCL uses CUDA device `device`); waits at most
    /// `timeout` for the store and for the other ranks.
    public init(_ environment: LaunchEnvironment, backend: Backend, device: Device = .cpu, timeout: Duration = .seconds(300)) throws {
        try Torch.load()
        let milliseconds = Int64(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        var out: atd_group?
        let deviceCode: Int32 = if case .cuda(let index) = device { Int32(index) } else { -1 }
        atd_init(environment.masterAddress, Int32(environment.masterPort), Int32(environment.rank), Int32(environment.worldSize),
                 environment.servesStore ? 1 : 0, environment.storePrefix, milliseconds, backend.code, deviceCode, &out)
        try ProcessGroup.check()
        guard let out else { throw DistributedError("joining the process group returned no group") }
        handle = out
        rank = environment.rank
        worldSize = environment.worldSize
        self.environment = environment
        self.backend = backend
        self.timeout = timeout
    }

    deinit { atd_free(handle) }

    /// The backend's own name ("gloo", "nccl").
    public var backendName: String {
        guard let p = atd_backend_name(handle) else { return backend.rawValue }
        defer { at_string_free(p) }
        return String(cString: p)
    }

    /// One line a rank prints at start: which rank of how many, on which machine slot and backend.
    public var summary: String {
        "rank \(rank) of \(worldSize) (local \(environment.localRank) of \(environment.localWorldSize), \(environment.launcher)), "
            + "backend \(backendName), store \(environment.masterAddress):\(environment.masterPort)"
    }

    /// Combines `tensor` across the ranks in place.
    public func allReduce(_ tensor: Tensor, _ reduction: Reduction = .sum) throws {
        withExtendedLifetime(tensor) { atd_all_reduce(handle, tensor.handle, reduction.rawValue) }
        try ProcessGroup.check()
    }

    /// Sums `values` across the ranks (float64, so counts and loss sums add exactly as in one process).
    public func allReduce(_ values: [Double], _ reduction: Reduction = .sum) throws -> [Double] {
        let t = try Tensor(values)
        try allReduce(t, reduction)
        return try t.toArray(Double.self)
    }

    /// Copies rank `root`'s `tensors` into every rank's, in one message (their bytes packed together, whatever their dtypes).
    public func broadcast(_ tensors: [Tensor], root: Int = 0) throws {
        let handles: [at_tensor?] = tensors.map(\.handle)
        withExtendedLifetime(tensors) { atd_broadcast(handle, handles, Int32(handles.count), Int32(root)) }
        try ProcessGroup.check()
    }

    /// Returns once every rank has reached it.
    public func barrier() throws {
        atd_barrier(handle)
        try ProcessGroup.check()
    }

    /// The shim's last error as a `DistributedError` (c10d's message, prefixed with this rank by the shim).
    static func check() throws {
        guard let p = at_take_error() else { return }
        defer { at_string_free(p) }
        throw DistributedError(String(cString: p))
    }
}
