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
/// rank with few labelled samples as much as one with many. Gradients are reduced in DDP's buckets.
public final class GradientAllReduce {
    /// The group the ranks share.
    public let group: ProcessGroup
    private let parameters: [(String, Tensor)]
    private let buffers: [(String, Tensor)]
    /// For each parameter, the extra loss whose terms weigh its gradients (nil: the loss's own weight).
    private let reducedBy: [String?]
    /// The buckets of `parameters`.
    public let buckets: GradientBuckets

    /// A reducer of `parameters`' gradients, weighed as `groups` say (`ParameterPolicy.reducedBy`); `buffers`
    /// (BatchNorm's running statistics) are copied from rank 0 at every step, as DDP's broadcast_buffers, so every
    /// rank evaluates and saves the same model.
    public init(group: ProcessGroup, parameters: [(String, Tensor)], groups: [ParameterGroup] = [], buffers: [(String, Tensor)] = []) {
        self.group = group
        self.parameters = parameters
        self.buffers = buffers
        reducedBy = parameters.map { groups.group(of: $0.0)?.policy.reducedBy }
        buckets = GradientBuckets(byteCounts: parameters.map { $0.1.count * $0.1.dtype.byteSize })
    }

    /// Copies rank 0's parameters and buffers to every rank (at start, so the ranks begin from one model).
    public func synchronizeModel() throws {
        try Torch.noGrad {
            for (_, tensor) in parameters + buffers { try group.broadcast(tensor, root: 0) }
        }
    }

    /// Called after backward, before the optimiser step: sums the ranks' gradients, each scaled by
    /// `localWeight` / Σ weights, and returns the global batch's loss from this rank's `localLoss`
    /// (its weighted mean, normalised by `localWeight`). Every parameter must have a gradient.
    ///
    /// A group whose policy names an extra loss (a localizer's, a mean over the rank's `extraTerms[name]` labelled
    /// points) is weighted by the rank's share of the global batch's terms instead, n_r / N, so every group steps as in
    /// one process.
    public func reduce(localLoss: Double, localWeight: Double, extraTerms: [String: Double] = [:], epsilon: Double = 1e-7) throws -> Double {
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
        var grads: [Tensor] = []
        grads.reserveCapacity(parameters.count)
        for index in buckets.order {
            let (name, parameter) = parameters[index]
            guard let grad = parameter.grad else {
                throw DistributedError("rank \(group.rank): parameter \(name) has no gradient; data-parallel training needs every "
                                       + "parameter used in every step")
            }
            if let loss = reducedBy[index], let factor = factors[loss], factor != 1 {
                try Torch.noGrad { try grad.mul_(factor) }
            }
            grads.append(grad)
        }
        try group.allReduceBuckets(grads, bucketEnds: buckets.ends, scale: weight / globalWeight)
        for (_, buffer) in buffers { try group.broadcast(buffer, root: 0) }
        return totals[0] / globalWeight
    }
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
