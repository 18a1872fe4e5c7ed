import Foundation

/// Which gradients travel together, as PyTorch's DDP groups them: parameters in reverse order (the order
/// backward produces their gradients), a first bucket of about 1 MiB so the first message leaves early,
/// then buckets of about 25 MiB; a tensor larger than the cap is a bucket of its own.
public struct GradientBuckets: Equatable, Sendable {
    /// Parameter indices in the order they are reduced (last parameter first).
    public var order: [Int]
    /// Exclusive end, in `order`, of each bucket.
    public var ends: [Int]

    /// DDP's bucket caps: 1 MiB first, then 25 MiB.
    public static let firstBucketBytes = 1 << 20, bucketBytes = 25 << 20

    /// The buckets of parameters of `byteCounts` bytes (in parameter order).
    public init(byteCounts: [Int], firstBucketBytes: Int = GradientBuckets.firstBucketBytes,
                bucketBytes: Int = GradientBuckets.bucketBytes) {
        order = Array(byteCounts.indices.reversed())
        ends = []
        var filled = 0
        for (position, index) in order.enumerated() {
            let cap = ends.isEmpty ? firstBucketBytes : bucketBytes
            if filled > 0, filled + byteCounts[index] > cap {
                ends.append(position)
                filled = 0
            }
            filled += byteCounts[index]
        }
        if !order.isEmpty { ends.append(order.count) }
    }
}

/// Makes every rank's gradients those of the whole global batch, so that each rank's optimiser step is the
/// step one process would take. A rank's loss is a weighted mean over its share, Σ wℓ / W_r (the ordinal loss
/// divides by its class weights; a plain mean by the sample count); the global loss divides by W = Σ_r W_r. So
/// each rank scales its gradients by W_r / W and the ranks sum them: no average of means, which would weigh a
/// rank with few labelled samples as much as one with many. The weights are summed before backward, so that the
/// gradients can be reduced in DDP's buckets while backward still runs (`BucketReducer`).
public final class GradientAllReduce {
    /// The group the ranks share.
    public let group: ProcessGroup
    private let parameters: [(String, Tensor)]
    private let buffers: [(String, Tensor)]
    /// For each parameter, in `buckets.order`, the extra loss whose terms weigh its gradients (nil: the loss's own weight).
    private let reducedBy: [String?]
    /// The buckets of `parameters`.
    public let buckets: GradientBuckets
    private let reducer: BucketReducer

    /// A reducer of `parameters`' gradients, weighed as `groups` say (`ParameterPolicy.reducedBy`), in buckets of at
    /// most `bucketBytes` (the first of `firstBucketBytes`); `buffers` (BatchNorm's running statistics) are copied from
    /// rank 0 at every step, as DDP's broadcast_buffers, so every rank evaluates and saves the same model. Installs a
    /// gradient hook on every parameter.
    public init(group: ProcessGroup, parameters: [(String, Tensor)], groups: [ParameterGroup] = [], buffers: [(String, Tensor)] = [],
                firstBucketBytes: Int = GradientBuckets.firstBucketBytes, bucketBytes: Int = GradientBuckets.bucketBytes) throws {
        self.group = group
        self.parameters = parameters
        self.buffers = buffers
        let buckets = GradientBuckets(byteCounts: parameters.map { $0.1.count * $0.1.dtype.byteSize },
                                      firstBucketBytes: firstBucketBytes, bucketBytes: bucketBytes)
        self.buckets = buckets
        reducedBy = buckets.order.map { groups.group(of: parameters[$0].0)?.policy.reducedBy }
        reducer = try BucketReducer(group: group, parameters: buckets.order.map { parameters[$0].1 }, bucketEnds: buckets.ends,
                                    buffers: buffers.map(\.1))
    }

    /// Copies rank 0's parameters and buffers to every rank (at start, so the ranks begin from one model).
    public func synchronizeModel() throws {
        try Torch.noGrad { try group.broadcast((parameters + buffers).map(\.1), root: 0) }
    }

    /// Called after the forward pass, before backward: sums the ranks' loss weights and arms the gradient hooks, each
    /// gradient to be scaled by `localWeight` / Σ weights; returns the global batch's loss from this rank's `localLoss`
    /// (its weighted mean, normalised by `localWeight`). `finishStep` after backward completes the sums.
    ///
    /// A group whose policy names an extra loss (a localizer's, a mean over the rank's `extraTerms[name]` labelled
    /// points) is weighted by the rank's share of the global batch's terms instead, n_r / N, so every group steps as in
    /// one process.
    public func beginStep(localLoss: Double, localWeight: Double, extraTerms: [String: Double] = [:], epsilon: Double = 1e-7) throws -> Double {
        let weight = max(localWeight, epsilon)
        let names = extraTerms.keys.sorted()
        let totals = try group.allReduce([weight * localLoss, localWeight] + names.map { extraTerms[$0]! })
        let globalWeight = max(totals[1], epsilon)
        // The common scale is W_r / W; a group weighed by an extra loss is first multiplied by (n_r / N) / (W_r / W).
        var factors: [String: Double] = [:]
        for (k, name) in names.enumerated() {
            let n = extraTerms[name]!, total = totals[2 + k]
            factors[name] = total > 0 ? (n / total) / (weight / globalWeight) : 0
        }
        try reducer.begin(factors: reducedBy.map { $0.flatMap { factors[$0] } ?? 1 }, scale: weight / globalWeight)
        return totals[0] / globalWeight
    }

    /// Called after backward, before the optimiser step: waits for the buckets (starting those backward left waiting:
    /// a parameter this rank gave no gradient adds zeros) and leaves the sums as the gradients, and rank 0's buffers.
    public func finishStep() throws { try reducer.finish() }

    /// How many buckets of the last step started while backward was still running.
    public var bucketsStartedDuringBackward: Int { reducer.startedDuringBackward }
}

extension CumulativeLinkLoss {
    /// The normaliser of this loss on `labels` (B, H): the class weights of the labelled entries summed
    /// (what the loss divides by), so that ranks can weigh their shares of a global batch.
    public func weightSum(_ labels: Tensor) throws -> Double {
        try labels.to(.int64).toArray(Int64.self).reduce(0.0) { total, label in
            label >= 0 && Int(label) < classWeights.count ? total + Double(classWeights[Int(label)]) : total
        }
    }
}
