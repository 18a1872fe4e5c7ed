import CTorch
import Foundation

/// The shim's data-parallel reducer of a set of parameters (PyTorch DDP's reducer in small): a hook on each parameter
/// copies its gradient into its bucket as backward produces it, and a bucket whose gradients are all in starts its
/// all-reduce while backward goes on. Between `begin` and `finish` one backward pass runs; outside them the hooks do
/// nothing.
public final class BucketReducer {
    private let handle: atd_reducer
    /// The group the buckets are reduced over (kept alive while the hooks can fire).
    public let group: ProcessGroup
    private let parameterCount: Int
    /// How many buckets there are.
    public let bucketCount: Int

    /// A reducer of `parameters` (in the order their gradients are reduced) in buckets ending at `bucketEnds`, and of
    /// `buffers` (copied from rank 0 once per step, in one message); installs a hook on every parameter.
    public init(group: ProcessGroup, parameters: [Tensor], bucketEnds: [Int], buffers: [Tensor]) throws {
        var out: atd_reducer?
        let ends = bucketEnds.map(Int64.init)
        let parameterHandles: [at_tensor?] = parameters.map(\.handle), bufferHandles: [at_tensor?] = buffers.map(\.handle)
        withExtendedLifetime((parameters, buffers)) {
            atd_reducer_new(group.handle, parameterHandles, Int32(parameterHandles.count), ends, Int32(ends.count),
                            bufferHandles, Int32(bufferHandles.count), &out)
        }
        try ProcessGroup.check()
        guard let out else { throw DistributedError("making the gradient reducer returned none") }
        handle = out
        self.group = group
        parameterCount = parameters.count
        bucketCount = bucketEnds.count
    }

    deinit { atd_reducer_free(handle) }

    /// Arms the hooks for one backward pass: parameter i's gradient is multiplied by `factors[i]`, every bucket by
    /// `scale`, before the sum; starts the buffers' broadcast (they are written back in `finish`).
    public func begin(factors: [Double], scale: Double) throws {
        precondition(factors.count == parameterCount, "one factor per parameter")
        atd_reducer_begin(handle, factors, scale)
        try ProcessGroup.check()
    }

    /// After backward: starts the buckets still waiting (a parameter without a gradient adds zeros), waits for every
    /// bucket and writes the sums back as the gradients (a parameter no rank gave a gradient keeps none).
    public func finish() throws {
        atd_reducer_finish(handle)
        try ProcessGroup.check()
    }

    /// How many buckets of the last step started during backward (the rest started in `finish`).
    public var startedDuringBackward: Int { Int(atd_reducer_started_during_backward(handle)) }
}
