import Foundation

/// A progress line with rate and ETA on standard error, redrawn at most a few times a second.
final class Progress: @unchecked Sendable {
    private let label: String
    private let unit: String
    private let start = Date()
    private var last = Date.distantPast
    private let lock = NSLock()
    private var shown = false
    private let enabled = isatty(STDERR_FILENO) != 0 || ProcessInfo.processInfo.environment["FUSE3D_PROGRESS"] == "1"

    init(label: String, unit: String) {
        self.label = label
        self.unit = unit
    }

    /// Reports `done` of `total` items.
    func update(_ done: Int, _ total: Int) {
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        guard enabled, now.timeIntervalSince(last) > 0.25 || done == total else { return }
        last = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "\r%@: %d/%d %@ (%.0f/s, ETA %@)   ", label, done, total, unit, rate, Self.clock(eta))
        FileHandle.standardError.write(Data(line.utf8))
        shown = true
    }

    /// Ends the progress line.
    func finish() {
        lock.lock(); defer { lock.unlock() }
        if shown { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
