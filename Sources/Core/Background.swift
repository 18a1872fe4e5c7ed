import Foundation

/// A body run on a thread of its own; `wait()` waits for it and returns its value or rethrows its error.
public final class Background<Value>: @unchecked Sendable {
    // Sendable by hand: `outcome` is written by the thread before `done` is signalled and read only after a wait.
    private let done = DispatchSemaphore(value: 0)
    private var outcome: Result<Value, Error>?

    /// Starts `body` on a new thread.
    public init(_ body: @escaping @Sendable () throws -> Value) {
        let thread = Thread { [self] in
            outcome = Result { try body() }
            done.signal()
        }
        thread.start()
    }

    /// Waits for the body and returns its value, or rethrows its error.
    public func wait() throws -> Value {
        done.wait()
        done.signal()  // a later wait (or `finished`) returns at once
        return try outcome!.get()
    }

    /// Whether the body has ended (without waiting).
    public var finished: Bool {
        guard done.wait(timeout: .now()) == .success else { return false }
        done.signal()
        return true
    }
}
