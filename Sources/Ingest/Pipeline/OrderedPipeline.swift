import Foundation

/// Runs `work` on items 0..<count with `workers` threads and hands the results to `consume` on the
/// calling thread in item order, through a reorder buffer of at most `window` results: a worker
/// does not start item i before item i − window has been consumed, so memory is bounded by the
/// window, not by `count`, and a slow item holds up at most `window` others.
///
/// The consumer sees results in order whatever the number of workers, which is what makes the
/// output's bytes independent of it. When `consume` throws, no new item is started, the workers
/// finish the items they hold and the error is rethrown.
enum OrderedPipeline {
    /// `stopped`, when given, is called on a worker's thread when it finds no item left (once per worker).
    static func run<Output>(count: Int, workers: Int, window: Int, work: @escaping @Sendable (Int) -> Output,
                            stopped: (@Sendable () -> Void)? = nil, consume: (Int, Output) throws -> Void) throws {
        guard count > 0 else { return }
        let state = State<Output>(window: max(window, workers))
        let threads = (0..<min(max(1, workers), count)).map { _ in
            Thread {
                while let i = state.claim(count: count) {
                    state.deliver(i, work(i))
                }
                stopped?()
                state.workerDone()
            }
        }
        for t in threads {
            t.stackSize = 8 << 20
            t.start()
        }
        defer { state.waitForWorkers(threads.count) }
        for i in 0..<count {
            let output = state.take(i)
            do { try consume(i, output) } catch {
                state.cancel()
                throw error
            }
        }
    }

    // Sendable by hand: every stored var is read and written with `condition` held (the claims and takes wait on
    // it, and Synchronization's Mutex, which the compiler could check, has no condition to wait on).
    private final class State<Output>: @unchecked Sendable {
        private let condition = NSCondition()
        private let window: Int
        private var next = 0
        private var consumed = 0
        private var cancelled = false
        private var finishedWorkers = 0
        private var ready: [Int: Output] = [:]

        init(window: Int) { self.window = window }

        /// The next item to work on, waiting while it lies beyond the window; nil when none is left.
        func claim(count: Int) -> Int? {
            condition.lock(); defer { condition.unlock() }
            while !cancelled && next < count && next >= consumed + window { condition.wait() }
            guard !cancelled, next < count else { return nil }
            next += 1
            return next - 1
        }

        func deliver(_ i: Int, _ output: Output) {
            condition.lock(); defer { condition.unlock() }
            ready[i] = output
            condition.broadcast()
        }

        /// Item i's output, waiting for it; frees its slot in the window.
        func take(_ i: Int) -> Output {
            condition.lock(); defer { condition.unlock() }
            while ready[i] == nil { condition.wait() }
            consumed = i + 1
            condition.broadcast()
            return ready.removeValue(forKey: i)!
        }

        func cancel() {
            condition.lock(); defer { condition.unlock() }
            cancelled = true
            condition.broadcast()
        }

        func workerDone() {
            condition.lock(); defer { condition.unlock() }
            finishedWorkers += 1
            condition.broadcast()
        }

        func waitForWorkers(_ n: Int) {
            condition.lock(); defer { condition.unlock() }
            while finishedWorkers < n { condition.wait() }
        }
    }
}
