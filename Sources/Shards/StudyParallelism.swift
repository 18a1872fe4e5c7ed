import Dispatch
import Foundation
import Synchronization

/// How one study's loops (its slices, planes and channels) use the cores: spread over all of them, or run on the
/// calling thread when the ingest already keeps a worker busy on every core.
///
/// With `--workers 2` on two cores, each worker's loops spread over both cores too, so two studies' working sets took
/// turns on each core's cache; every function then ran 15–25 % slower than with one worker (issue 20's profile), while
/// two separate processes, one per core, ran as fast as one alone. The values are the same either way.
public enum StudyParallelism {
    private static let serial = Atomic<Bool>(false)

    /// Whether a study's loops run on the calling thread.
    public static var isSerial: Bool { serial.load(ordering: .relaxed) }

    /// Sets it for `workers` study workers: serial when they are at least as many as the cores this process may use.
    public static func configure(workers: Int) {
        serial.store(workers > 1 && workers >= ProcessInfo.processInfo.activeProcessorCount, ordering: .relaxed)
    }

    /// `body(i)` for every i in 0..<iterations: on all cores, or in order on this thread when `isSerial`.
    public static func forEach(_ iterations: Int, _ body: @Sendable (Int) -> Void) {
        if isSerial {
            for i in 0..<iterations { body(i) }
        } else {
            DispatchQueue.concurrentPerform(iterations: iterations, execute: body)
        }
    }
}
