import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One supervised child process (`fuse3d decode-worker`) and the framed messages between it and its parent
/// (issue 32). Requests go to the child's standard input, events come back on its standard output, and its standard
/// error is kept (its last lines name what a dying decoder printed). A message is a tag byte, a little-endian UInt64
/// length and that many bytes.
final class WorkerProcess {
    /// How a wait for the child's next event ended.
    enum Wait {
        case event(tag: UInt8, payload: [UInt8])
        /// The child is gone: killed by a signal, or exited (code), before it sent an event.
        case died(signal: Int32?, status: Int32)
        /// No event within the time limit; the child has been killed.
        case timedOut
    }

    let pid: pid_t
    private let input: Int32
    private let output: Int32
    private let errors: Int32
    private var received: [UInt8] = []
    /// One read's buffer, kept.
    private var scratch: [UInt8] = []
    /// A large message being read straight into its payload: its tag, its payload, the bytes of it read so far.
    private var large: (tag: UInt8, payload: [UInt8], filled: Int)?
    private var consumed = 0
    private var errorTail: [UInt8] = []
    private var outputClosed = false
    private var errorsClosed = false
    private(set) var exited = false
    private var exitStatus: Int32 = 0
    private var inputClosed = false

    /// Starts `executable arguments…` with pipes for its three standard streams.
    init(executable: String, arguments: [String]) throws {
        WorkerProcess.ignoreBrokenPipes
        // One spawn at a time: a pipe is close-on-exec only after its fcntl, and a child started in between would keep
        // a copy of another worker's pipe open (its parent would then not see that worker's end).
        WorkerProcess.spawning.lock()
        defer { WorkerProcess.spawning.unlock() }
        var toChild: [Int32] = [-1, -1], fromChild: [Int32] = [-1, -1], errChild: [Int32] = [-1, -1]
        func pipeClosedOnExec(_ fds: inout [Int32]) -> Bool {
            guard pipe(&fds) == 0 else { return false }
            return fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0 && fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0
        }
        guard pipeClosedOnExec(&toChild), pipeClosedOnExec(&fromChild), pipeClosedOnExec(&errChild) else {
            for fd in toChild + fromChild + errChild where fd >= 0 { close(fd) }
            throw WorkerFailure("cannot make pipes for a decode worker: \(String(cString: strerror(errno)))")
        }
        // A study's result is a few MB: a 1 MiB pipe (Linux's limit for a process without privileges) moves it in a
        // few writes instead of ~50 of 64 KiB, each a wake-up of the reader. Refused, the default serves.
        _ = fcntl(fromChild[1], 1031 /* F_SETPIPE_SZ */, 1 << 20)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errChild[1], 2)
        // The child starts with default signal handling (the parent ignores SIGPIPE).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        // Swift's crash backtracer symbolicates for seconds to minutes before the process ends: the supervisor wants the
        // death, not the backtrace (the file is named in the report either way).
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in envp { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        close(toChild[0])
        close(fromChild[1])
        close(errChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            close(errChild[0])
            throw WorkerFailure("cannot start a decode worker (\(executable)): \(String(cString: strerror(rc)))")
        }
        pid = child
        input = toChild[1]
        output = fromChild[0]
        errors = errChild[0]
    }

    deinit {
        if !inputClosed { close(input) }
        close(output)
        close(errors)
        if !exited {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    private static let spawning = NSLock()

    /// A write to a child that has died must come back as EPIPE, not end the parent.
    private static let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// Sends one message; false when the child is gone.
    func send(tag: UInt8, _ payload: [UInt8]) -> Bool {
        var bytes = WorkerProcess.frame(tag: tag, payload)
        return bytes.withUnsafeMutableBytes { WorkerProcess.writeAll(input, $0) }
    }

    /// The last lines the child wrote to its standard error (at most 400 characters).
    var stderrTail: String {
        let text = String(decoding: errorTail, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let lines = text.split(separator: "\n").suffix(3).joined(separator: "; ")
        return String(lines.suffix(400))
    }

    /// The next event, waiting at most `seconds` for it.
    func next(within seconds: Double) -> Wait {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let event = takeEvent() { return event }
            if outputClosed { return reap() }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 {
                kill(pid, SIGKILL)
                _ = reap()
                return .timedOut
            }
            var fds = [pollfd(fd: output, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: errorsClosed ? -1 : errors, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(left * 1000, 1000).rounded(.up)))
            if ready < 0 && errno != EINTR { outputClosed = true; continue }
            if fds[1].revents != 0 { drainErrors() }
            if fds[0].revents != 0 { readOutput() }
            if ready == 0 && !exited {
                // Quiet for a second: has it ended? (Its pipe's end is not the only sign: a copy may linger elsewhere.)
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    exitStatus = status
                    exited = true
                    var last = [pollfd(fd: output, events: Int16(POLLIN), revents: 0)]
                    while poll(&last, 1, 0) > 0 && !outputClosed { readOutput() }
                    if let event = takeEvent() { return event }
                    outputClosed = true
                }
            }
        }
    }

    /// Asks the child to end (its standard input closes) and waits for it.
    func finish() {
        // Closed once: a second close could close a descriptor the number was given to since.
        if !inputClosed { close(input) }
        inputClosed = true
        _ = reap()
    }

    private func takeEvent() -> Wait? {
        if let big = large {
            guard big.filled == big.payload.count else { return nil }
            large = nil
            return .event(tag: big.tag, payload: big.payload)
        }
        let available = received.count - consumed
        guard available >= 9 else { return nil }
        var length: UInt64 = 0
        for k in 0..<8 { length |= UInt64(received[consumed + 1 + k]) << (8 * UInt64(k)) }
        let tag = received[consumed]
        let start = consumed + 9
        if UInt64(available - 9) < length {
            // A message larger than what has come (a study's result, a few MB): its payload is read straight into its
            // own array from now on, instead of through the receive buffer (two copies of every byte fewer).
            guard length > 1 << 16, length < 1 << 34 else { return nil }
            var payload = [UInt8](repeating: 0, count: Int(length))
            let have = available - 9
            payload.replaceSubrange(0..<have, with: received[start..<(start + have)])
            large = (tag, payload, have)
            received.removeAll(keepingCapacity: true)
            consumed = 0
            return nil
        }
        let end = start + Int(length)
        let payload = Array(received[start..<end])
        consumed = end
        if consumed > 1 << 20 || consumed == received.count {
            received.removeFirst(consumed)
            consumed = 0
        }
        return .event(tag: tag, payload: payload)
    }

    private func readOutput() {
        if large != nil {
            let filled = large!.filled
            let n = large!.payload.withUnsafeMutableBytes { buffer in
                read(output, buffer.baseAddress! + filled, buffer.count - filled)
            }
            if n > 0 {
                large!.filled += n
            } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                outputClosed = true
            }
            return
        }
        if scratch.isEmpty { scratch = [UInt8](repeating: 0, count: 1 << 16) }
        let n = scratch.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
        if n > 0 {
            received.append(contentsOf: scratch[0..<n])
        } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
            outputClosed = true
        }
    }

    private func drainErrors() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = chunk.withUnsafeMutableBytes { read(errors, $0.baseAddress, $0.count) }
        if n > 0 {
            errorTail.append(contentsOf: chunk[0..<n])
            if errorTail.count > 8192 { errorTail.removeFirst(errorTail.count - 8192) }
        } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
            errorsClosed = true
        }
    }

    /// Waits for the child to end; its signal, or its exit status.
    private func reap() -> Wait {
        if !exited {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            exitStatus = status
            exited = true
        }
        // What it printed while it died (without waiting on a pipe whose other end may linger).
        var last = [pollfd(fd: errors, events: Int16(POLLIN), revents: 0)]
        while !errorsClosed && poll(&last, 1, 100) > 0 { drainErrors() }
        errorsClosed = true
        let status = exitStatus
        let signal = status & 0x7f
        return signal != 0 && signal != 0x7f ? .died(signal: signal, status: status) : .died(signal: nil, status: (status >> 8) & 0xff)
    }

    /// A message's bytes.
    static func frame(tag: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var out = [tag]
        out.reserveCapacity(9 + payload.count)
        withUnsafeBytes(of: UInt64(payload.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: payload)
        return out
    }

    /// Writes one message made of `parts` (its payload is their concatenation) without copying them together.
    static func writeMessage(_ fd: Int32, tag: UInt8, parts: [[UInt8]]) -> Bool {
        var head = frame(tag: tag, [])
        let total = parts.reduce(0) { $0 + $1.count }
        head.replaceSubrange(1..<9, with: withUnsafeBytes(of: UInt64(total).littleEndian) { Array($0) })
        var ok = head.withUnsafeMutableBytes { writeAll(fd, $0) }
        for var part in parts where ok && !part.isEmpty { ok = part.withUnsafeMutableBytes { writeAll(fd, $0) } }
        return ok
    }

    /// Writes every byte to `fd`; false on an error (EPIPE: the reader is gone).
    static func writeAll(_ fd: Int32, _ bytes: UnsafeMutableRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        return true
    }

    /// Reads one message from `fd` (the child's side); nil at the end of the stream.
    static func readMessage(_ fd: Int32) -> (tag: UInt8, payload: [UInt8])? {
        func readExactly(_ count: Int) -> [UInt8]? {
            var out = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, count - done) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return nil }
                done += n
            }
            return out
        }
        guard let head = readExactly(9) else { return nil }
        var length: UInt64 = 0
        for k in 0..<8 { length |= UInt64(head[1 + k]) << (8 * UInt64(k)) }
        guard length < 1 << 34, let payload = readExactly(Int(length)) else { return nil }
        return (head[0], payload)
    }

    /// A signal's name as people know it ("SIGSEGV"), else its number.
    static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGILL: "SIGILL",
                                      SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGTRAP: "SIGTRAP", SIGTERM: "SIGTERM"]
        return names[signal] ?? "signal \(signal)"
    }
}

/// A decode worker could not be started or spoken to.
struct WorkerFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
