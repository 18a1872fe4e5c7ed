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
    /// Study workers still holding or about to take a study (0: no ingest configured it).
    private static let busyWorkers = Atomic<Int>(0)
    private static let cores = ProcessInfo.processInfo.activeProcessorCount

    /// Whether a study's loops run on the calling thread: while at least as many workers hold studies as there are
    /// cores. When the queue runs dry and workers stop, the studies still running spread their remaining loops over
    /// the cores the others left (the last study of a run no longer runs on one core while the other idles).
    public static var isSerial: Bool {
        let busy = busyWorkers.load(ordering: .relaxed)
        return busy > 1 && busy >= cores
    }

    /// Sets it for `workers` study workers, all busy.
    public static func configure(workers: Int) {
        busyWorkers.store(workers, ordering: .relaxed)
    }

    /// A study worker found no study left and stopped.
    public static func workerFinished() {
        busyWorkers.subtract(1, ordering: .relaxed)
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
