import Foundation
import Train

/// `fuse3d train --nproc N`: starts N ranks of this same command on this machine, each with the environment
/// torchrun would give it (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; rank 0
/// serves the store), and waits for them. When one fails the others are stopped, and its status is returned.
enum LocalRanks {
    /// Runs `arguments` (the command line without `--nproc`) as `count` ranks; returns the exit status.
    static func run(count: Int, arguments: [String]) throws -> Int32 {
        let port = try LaunchEnvironment.freeLoopbackPort()
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var processes: [Process] = []
        for rank in 0..<count {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment
            for key in ["TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT"] { environment[key] = nil }
            environment["RANK"] = String(rank)
            environment["LOCAL_RANK"] = String(rank)
            environment["WORLD_SIZE"] = String(count)
            environment["LOCAL_WORLD_SIZE"] = String(count)
            environment["MASTER_ADDR"] = "127.0.0.1"
            environment["MASTER_PORT"] = String(port)
            process.environment = environment
            try process.run()
            processes.append(process)
        }
        // Wait in any order: the first rank to fail stops the rest instead of leaving them to their timeout.
        var status: Int32 = 0
        let done = DispatchSemaphore(value: 0)
        for process in processes { process.terminationHandler = { _ in done.signal() } }
        var finished = 0
        while finished < processes.count {
            // A process may already have exited before its handler was set: count what is not running.
            finished = processes.filter { !$0.isRunning }.count
            if let failed = processes.first(where: { !$0.isRunning && $0.terminationStatus != 0 }), status == 0 {
                status = failed.terminationStatus
                for other in processes where other.isRunning { other.terminate() }
            }
            if finished < processes.count { _ = done.wait(timeout: .now() + 1) }
        }
        return status
    }

    /// The command line of this process without `--nproc N` / `--nproc=N`.
    static func argumentsWithoutNproc(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> [String] {
        var out: [String] = []
        var skip = false
        for argument in arguments {
            if skip { skip = false; continue }
            if argument == "--nproc" { skip = true; continue }
            if argument.hasPrefix("--nproc=") { continue }
            out.append(argument)
        }
        return out
    }
}
