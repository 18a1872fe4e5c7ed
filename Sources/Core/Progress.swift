import Foundation
import Synchronization

/// The one progress line every command draws on standard error. On a terminal it is redrawn in place at most
/// four times a second; in a log (a scheduler's output, a file) it prints whole lines at milestones and at
/// most once per `plainInterval`. `FUSE3D_PROGRESS` overrides the choice: `live` (or `1`), `plain`, `off` (or `0`).
public final class ProgressLine: Sendable {
    /// How the line is drawn.
    public enum Mode: Equatable, Sendable { case live, plain, off }

    /// The mode from `FUSE3D_PROGRESS`, else live on a terminal and plain otherwise.
    public static func mode(environment: [String: String] = ProcessInfo.processInfo.environment, terminal: Bool = isatty(STDERR_FILENO) != 0) -> Mode {
        switch environment["FUSE3D_PROGRESS"]?.lowercased() {
        case "live", "1": return .live
        case "plain": return .plain
        case "off", "0": return .off
        default: return terminal ? .live : .plain
        }
    }

    private let mode: Mode
    private let plainInterval: TimeInterval
    /// When the line was last drawn, and whether a live line is on screen.
    private let state = Mutex((last: Date.distantPast, shown: false))

    /// A line that, in plain mode, prints at milestones and otherwise at most once per `plainInterval` seconds.
    public init(plainInterval: TimeInterval, mode: Mode = ProgressLine.mode()) {
        self.mode = mode
        self.plainInterval = plainInterval
    }

    /// Shows `text`; a `milestone` (the last item, a 5 % step) is always shown in plain mode.
    public func show(_ text: String, milestone: Bool = false) {
        state.withLock { state in
            let now = Date()
            switch mode {
            case .off: return
            case .live:
                guard milestone || now.timeIntervalSince(state.last) > 0.25 else { return }
                FileHandle.standardError.write(Data(("\r" + text + "\u{1B}[K").utf8))
                state.shown = true
            case .plain:
                guard milestone || now.timeIntervalSince(state.last) >= plainInterval else { return }
                FileHandle.standardError.write(Data((text + "\n").utf8))
            }
            state.last = now
        }
    }

    /// Ends a live line (the next output starts on a fresh line).
    public func finish() {
        state.withLock { state in
            if state.shown { FileHandle.standardError.write(Data("\n".utf8)) }
            state.shown = false
        }
    }

    /// Clears a live line in place (for output that replaces it).
    public func clear() {
        state.withLock { state in
            if state.shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            state.shown = false
        }
    }

    /// Seconds as m:ss or h:mm:ss.
    public static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// Progress over a count of items (files, shards, batches): done/total, rate and ETA on the progress line.
public final class CountProgress: Sendable {
    private let label: String
    private let unit: String
    private let start = Date()
    private let line = ProgressLine(plainInterval: 30)

    /// Progress over items of `unit` ("files"), shown as `label: done/total unit (rate/s, ETA)`.
    public init(label: String, unit: String) {
        self.label = label
        self.unit = unit
    }

    /// Reports `done` of `total` items.
    public func update(_ done: Int, _ total: Int) {
        let elapsed = Date().timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        line.show(String(format: "%@: %d/%d %@ (%.0f/s, ETA %@)", label, done, total, unit, rate, ProgressLine.clock(eta)),
                  milestone: done == total)
    }

    /// Ends the progress line.
    public func finish() { line.finish() }
}
