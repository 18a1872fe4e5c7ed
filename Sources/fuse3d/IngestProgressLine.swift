import Core
import Foundation
import Ingest
import Synchronization

/// The ingest's progress for a person: on a terminal one live line (done/total, studies/s, ETA, cache
/// hits, problems), otherwise (a log file, a scheduler's output) a plain line every 5% of the studies.
final class IngestProgressLine: Sendable {
    private let start = Date()
    private let line = ProgressLine(plainInterval: .infinity)
    private let lastPercentStep = Mutex(-1)

    /// Shows `state` (live: at most four times a second; plain: when it crosses a 5% step).
    func update(_ state: IngestProgress) {
        let now = Date()
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(state.done) / elapsed : 0
        let eta = rate > 0 ? Double(state.total - state.done) / rate : 0
        let text = String(format: "ingest: %d/%d studies (%.2f/s, ETA %@), %d cached, %d failed, %d file problem(s)",
                          state.done, state.total, rate, ProgressLine.clock(eta), state.cached, state.failed, state.problems)
        let step = state.total > 0 ? state.done * 20 / state.total : 20
        let milestone = lastPercentStep.withLock { last in
            defer { last = step }
            return step != last
        }
        line.show(text, milestone: milestone)
    }

    /// Ends the live line.
    func finish() { line.finish() }

    /// The closing line: fused, cached, failed, files skipped, time and peak memory.
    static func summary(_ outcome: IngestOutcome) -> String {
        let s = outcome.statistics
        let r = outcome.report.summary
        var line = String(format: "%d fused, %d failed (%d from the cache, %d computed), %d file(s) skipped in %.1f s; peak RSS %.0f MB",
                          r.fused, r.failed, s.cached, s.computed, r.filesSkipped, s.seconds, Double(s.peakRSSBytes) / 1_000_000)
        line += "; headers: \(s.headersRead) read, \(s.headersFromIndex) from the index"
        if !s.headerIndexWritten { line += " (the index could not be written)" }
        if s.datasetKept { line += "; dataset unchanged: shards and manifest left as they are" }
        if s.invalidated > 0 { line += "; \(s.invalidated) cache entr(ies) corrupt or stale, recomputed" }
        if s.cacheWriteFailures > 0 { line += "; \(s.cacheWriteFailures) cache entr(ies) could not be written" }
        if let pruned = s.pruned, pruned.entries > 0 {
            line += String(format: "; cache: %d entr(ies) no longer used pruned, %.1f MB freed", pruned.entries, Double(pruned.bytes) / 1_000_000)
        }
        return line
    }
}
