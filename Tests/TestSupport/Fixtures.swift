import Foundation

/// Locations and helpers shared by the test targets: the repository root, the project's .venv,
/// pydicom's real DICOM fixtures, scratch folders and child processes.
public enum Fixtures {
    /// The repository root (three levels above this file).
    public static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The project's virtual environment's python (scripts/setup.sh makes it).
    public static var python: URL { repoRoot.appendingPathComponent(".venv/bin/python") }

    /// site-packages of the project's .venv.
    public static var sitePackages: URL {
        let lib = repoRoot.appendingPathComponent(".venv/lib")
        let py = (try? FileManager.default.contentsOfDirectory(atPath: lib.path))?.first { $0.hasPrefix("python") } ?? "python3"
        return lib.appendingPathComponent(py).appendingPathComponent("site-packages")
    }

    /// A DICOM file shipped by pydicom (`pydicom/data/test_files`) or pydicom-data (`data_store/data`).
    public static func dicom(_ name: String) -> URL {
        let a = sitePackages.appendingPathComponent("pydicom/data/test_files").appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: a.path) { return a }
        return sitePackages.appendingPathComponent("data_store/data").appendingPathComponent(name)
    }

    /// The built fuse3d binary (debug build that `swift test` made).
    public static var fuse3d: URL { repoRoot.appendingPathComponent(".build/debug/fuse3d") }

    /// A fresh, empty scratch folder under the system temporary directory.
    public static func scratch(_ name: String = #function) throws -> URL {
        let clean = name.filter { $0.isLetter || $0.isNumber }
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("fuse3d-tests-\(clean)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Runs a program and returns its exit status, standard output and standard error.
    @discardableResult
    public static func run(_ executable: URL, _ arguments: [String], cwd: URL? = nil,
                           environment: [String: String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        if let cwd { p.currentDirectoryURL = cwd }
        if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let r = try runToEnd(p)
        return (r.status, r.stdout, r.stderr)
    }

    /// Starts `p` (executable, arguments and environment set) with both outputs captured, and waits for its end;
    /// `started` runs once it is running (a watchdog, say). `signaled`: it died by a signal rather than exiting.
    public static func runToEnd(_ p: Process, started: (() -> Void)? = nil) throws
        -> (status: Int32, signaled: Bool, stdout: String, stderr: String) {
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        started?()
        // Drain both pipes at once so a child filling one of them never blocks.
        final class Box: @unchecked Sendable { var data = Data() }  // written by one thread, read after `group.wait()`
        let outBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outBox.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return (p.terminationStatus, p.terminationReason == .uncaughtSignal, String(decoding: outBox.data, as: UTF8.self),
                String(decoding: errData, as: UTF8.self))
    }

    /// Starts a program in the background, its output discarded (a run a test will interrupt).
    public static func start(_ executable: URL, _ arguments: [String]) throws -> Process {
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Polls until `reached()` holds, `process` has ended or `timeout` seconds have passed (nil: no limit), then kills
    /// `process` with SIGKILL and waits for it; returns whether `reached()` held when the kill was sent.
    @discardableResult
    public static func kill(_ process: Process, when reached: () -> Bool, timeout: TimeInterval? = nil) -> Bool {
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        while !reached() && process.isRunning && deadline.map({ Date() < $0 }) ?? true { usleep(1000) }
        let held = reached()
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return held
    }

    /// Runs a Python snippet in the project's .venv; returns its status and output.
    @discardableResult
    public static func python(_ code: String, _ arguments: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        try run(python, ["-c", code] + arguments)
    }

    /// Runs a program under GNU time and returns its exit status, standard output and its own peak
    /// resident memory in kB. (A child forked from a large test process inherits that process's
    /// high-water mark, so the measurement goes through a small intermediate process.)
    public static func runMeasuringMemory(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, stdout: String, maxRSSKilobytes: Int) {
        let report = try scratch("measured").appendingPathComponent("time.txt")
        let r = try run(URL(fileURLWithPath: "/usr/bin/time"), ["-f", "%M", "-o", report.path, executable.path] + arguments)
        let text = (try? String(contentsOf: report, encoding: .utf8)) ?? ""
        let kb = text.split(separator: "\n").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.last ?? Int.max
        return (r.status, r.stdout, kb)
    }
}
