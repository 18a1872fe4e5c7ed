import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Who this process is among the ranks of a data-parallel run, as its launcher says: torchrun's variables
/// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, TORCHELASTIC_USE_AGENT_STORE,
/// TORCHELASTIC_RESTART_COUNT) or Slurm's (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID, the job's first
/// node as the meeting point). torchrun's win when both are set (torchrun started under srun).
public struct LaunchEnvironment: Equatable, Sendable {
    /// This process's rank, 0 ..< worldSize.
    public var rank: Int
    /// How many ranks the run has.
    public var worldSize: Int
    /// Rank among the processes on this machine (picks the GPU).
    public var localRank: Int
    /// Processes on this machine.
    public var localWorldSize: Int
    /// Host and port of the rendezvous store.
    public var masterAddress: String, masterPort: Int
    /// True when torchrun's agent already serves the store (every rank is a client), false when rank 0 serves it.
    public var agentStore: Bool
    /// Key prefix in the store (torchrun's `/worker/attempt_<restart count>`, so a restarted attempt never
    /// reads the keys of the one before), or "".
    public var storePrefix: String
    /// Which launcher's variables these came from ("torchrun", "slurm", "fuse3d --nproc").
    public var launcher: String

    /// A rank described field by field (`fuse3d train --nproc` and tests; launchers go through `detect`).
    public init(rank: Int, worldSize: Int, localRank: Int, localWorldSize: Int, masterAddress: String, masterPort: Int,
                agentStore: Bool, storePrefix: String, launcher: String) {
        self.rank = rank
        self.worldSize = worldSize
        self.localRank = localRank
        self.localWorldSize = localWorldSize
        self.masterAddress = masterAddress
        self.masterPort = masterPort
        self.agentStore = agentStore
        self.storePrefix = storePrefix
        self.launcher = launcher
    }

    /// torchrun's default port, used when Slurm gives none.
    public static let defaultPort = 29500

    /// Whether rank 0 of this process group serves the store.
    public var servesStore: Bool { !agentStore && rank == 0 }

    /// The environment of a rank, or nil when the launcher started a single process (or none at all).
    /// Throws, naming the variable, when a variable is present but malformed.
    public static func detect(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> LaunchEnvironment? {
        if environment["WORLD_SIZE"] != nil || environment["RANK"] != nil { return try torchrun(environment) }
        if environment["SLURM_STEP_NUM_TASKS"] != nil, environment["SLURM_PROCID"] != nil { return try slurm(environment) }
        return nil
    }

    static func torchrun(_ env: [String: String]) throws -> LaunchEnvironment? {
        let world = try integer("WORLD_SIZE", env, minimum: 1)
        guard world > 1 else { return nil }
        let rank = try integer("RANK", env, minimum: 0)
        guard rank < world else { throw DistributedError("RANK=\(rank) is not below WORLD_SIZE=\(world)") }
        let localRank = env["LOCAL_RANK"] == nil ? rank : try integer("LOCAL_RANK", env, minimum: 0)
        let localWorld = env["LOCAL_WORLD_SIZE"] == nil ? world : try integer("LOCAL_WORLD_SIZE", env, minimum: 1)
        guard let address = env["MASTER_ADDR"], !address.isEmpty else {
            throw DistributedError("WORLD_SIZE=\(world) but MASTER_ADDR is not set: launch with torchrun, or set MASTER_ADDR and MASTER_PORT")
        }
        let port = try integer("MASTER_PORT", env, minimum: 1)
        let agent = env["TORCHELASTIC_USE_AGENT_STORE"]?.lowercased() == "true"
        var prefix = ""
        if agent {
            let attempt = env["TORCHELASTIC_RESTART_COUNT"] == nil ? 0 : try integer("TORCHELASTIC_RESTART_COUNT", env, minimum: 0)
            prefix = "/worker/attempt_\(attempt)"
        }
        return LaunchEnvironment(rank: rank, worldSize: world, localRank: localRank, localWorldSize: localWorld,
                                 masterAddress: address, masterPort: port, agentStore: agent, storePrefix: prefix,
                                 launcher: "torchrun")
    }

    static func slurm(_ env: [String: String]) throws -> LaunchEnvironment? {
        let world = try integer("SLURM_STEP_NUM_TASKS", env, minimum: 1)
        guard world > 1 else { return nil }
        let rank = try integer("SLURM_PROCID", env, minimum: 0)
        guard rank < world else { throw DistributedError("SLURM_PROCID=\(rank) is not below SLURM_STEP_NUM_TASKS=\(world)") }
        let localRank = env["SLURM_LOCALID"] == nil ? 0 : try integer("SLURM_LOCALID", env, minimum: 0)
        // SLURM_STEP_TASKS_PER_NODE reads like "2(x3),1": this node's count is not named, so take the first.
        let perNode = env["SLURM_STEP_TASKS_PER_NODE"].flatMap { Int($0.prefix { $0.isNumber }) } ?? 1
        let address: String
        if let given = env["MASTER_ADDR"], !given.isEmpty {
            address = given
        } else if let list = env["SLURM_STEP_NODELIST"] ?? env["SLURM_JOB_NODELIST"] ?? env["SLURM_NODELIST"] {
            guard let first = firstHost(ofNodeList: list) else {
                throw DistributedError("cannot read the first node of the Slurm node list \"\(list)\"")
            }
            address = first
        } else {
            throw DistributedError("SLURM_PROCID is set but no node list (SLURM_JOB_NODELIST) names the master; set MASTER_ADDR")
        }
        let port = env["MASTER_PORT"] == nil ? defaultPort : try integer("MASTER_PORT", env, minimum: 1)
        return LaunchEnvironment(rank: rank, worldSize: world, localRank: localRank, localWorldSize: max(perNode, localRank + 1),
                                 masterAddress: address, masterPort: port, agentStore: false, storePrefix: "",
                                 launcher: "slurm")
    }

    /// The first host of a Slurm host list: "gpu[07-09,12],cpu3" → "gpu07"; "a1,b2" → "a1".
    public static func firstHost(ofNodeList list: String) -> String? {
        let trimmed = list.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        var name = ""
        for character in trimmed {
            if character == "," { break }
            if character == "[" {
                let inside = trimmed[trimmed.index(after: trimmed.firstIndex(of: "[")!)...]
                guard let close = inside.firstIndex(of: "]") else { return nil }
                let first = inside[..<close].split(separator: ",").first.flatMap { $0.split(separator: "-").first }
                guard let first, !first.isEmpty else { return nil }
                return name + first
            }
            name.append(character)
        }
        return name.isEmpty ? nil : name
    }

    /// A TCP port free on the loopback now (bound, read and released): for ranks started on this machine.
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DistributedError("cannot open a socket to find a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let found = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard found else { throw DistributedError("cannot bind a loopback port for the rendezvous store") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func integer(_ key: String, _ env: [String: String], minimum: Int) throws -> Int {
        guard let text = env[key] else { throw DistributedError("\(key) is not set (the launcher sets it for every rank)") }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value >= minimum else {
            throw DistributedError("\(key)=\"\(text)\" is not an integer of at least \(minimum)")
        }
        return value
    }
}

/// A distributed run cannot start or go on: a malformed launcher variable, an unreachable store, a dead rank.
public struct DistributedError: Error, CustomStringConvertible, Equatable {
    /// What went wrong and, where it helps, what to do.
    public var message: String
    /// An error with `message`.
    public init(_ message: String) { self.message = message }
    /// The message, marked as the distributed layer's.
    public var description: String { "distributed: \(message)" }
}
