import Foundation

/// One optimisation step of a model, in the order the trainer and the benchmark share:
/// zero grads → forward (bf16 autocast if asked) → loss (the ordinal loss plus the model's extra losses) → backward →
/// all-reduce → clip (each parameter group on its own) → schedule → step → the model's constraints.
public final class TrainingStep {
    /// The model being trained.
    public let model: any TrainableModel
    /// Its optimiser.
    public let optimizer: any Optimizer
    /// The ordinal loss.
    public var loss: CumulativeLinkLoss
    /// Rate per step; nil keeps the optimiser's rate.
    public var schedule: (any LRSchedule)?
    /// Gradient-norm limit of each clipped parameter group (nil: no clipping) and the cutpoint margin kept after each step.
    public var clipNorm: Double?, cutpointMargin: Double
    /// bfloat16 autocast for the forward pass on `device`.
    public var mixedPrecision: Bool
    /// Where the model lives.
    public let device: Device
    /// Steps taken so far (the schedule's position; checkpoints store it).
    public var step: Int
    /// In data-parallel training, sums the ranks' gradients, bucket by bucket while backward runs (nil: one process).
    public var allReduce: GradientAllReduce?
    /// The model's parameter groups, as the optimiser holds them (clipped group by group).
    private let groups: [ParameterGroup]

    /// A step runner; clipping to norm 1 and full precision by default.
    public init(model: any TrainableModel, optimizer: any Optimizer, loss: CumulativeLinkLoss = CumulativeLinkLoss(),
                schedule: (any LRSchedule)? = nil, clipNorm: Double? = 1.0, cutpointMargin: Double = 0,
                mixedPrecision: Bool = false, device: Device = .cpu, step: Int = 0) {
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.schedule = schedule
        self.clipNorm = clipNorm
        self.cutpointMargin = cutpointMargin
        self.mixedPrecision = mixedPrecision
        self.device = device
        self.step = step
        groups = model.parameterGroups
    }

    /// Runs one step on a batch (B, C, D, H, W) with labels (B, heads); returns the batch loss (the global
    /// batch's in data-parallel training, where `batch` is this rank's share). The batch may
    /// be float16 from the shards and on the CPU: it is converted to float32 on `device` first (a no-op when it is).
    /// A model that locates (`TrainableModel.locates`) also needs the batch's `keypoints` (B, 25, 3); the loss returned
    /// is the ordinal loss plus the model's weighted extra losses. `sources`: the batch's source slices, for a model that
    /// crops them.
    @discardableResult
    public func callAsFunction(_ batch: Tensor, labels: Tensor, keypoints: Tensor? = nil, sources: SourceBatch? = nil) throws -> Double {
        let x = try batch.to(.float32, device: device)
        optimizer.zeroGrad()
        if model.locates && keypoints == nil {
            throw TrainError(.configuration, "a model that locates points trains on the batch's keypoints; none were given")
        }
        let input = ModelInput(x, keypoints: model.locates ? keypoints : nil, sources: try sources?.to(device: device))
        let output = mixedPrecision ? try Torch.autocast(device) { try model.forward(input) } : try model.forward(input)
        var value = try loss(output.probabilities, labels)
        for extra in output.extraLosses { value = try value + extra.value * extra.weight }
        let batchLoss: Double
        if let allReduce {
            // The ranks' weights are summed before backward, so each bucket's all-reduce can start while backward runs.
            let terms = try Dictionary(uniqueKeysWithValues: output.extraLosses.map { ($0.name, try $0.terms.item()) })
            batchLoss = try allReduce.beginStep(localLoss: value.item(), localWeight: loss.weightSum(labels), extraTerms: terms)
            try value.backward()
            try allReduce.finishStep()
        } else {
            try value.backward()
            batchLoss = try value.item()
        }
        if let clipNorm {
            for (group, members) in groups.partition(optimizer.parameters) where group.policy.clipped && !members.isEmpty {
                try clipGradNorm(members.map(\.1), maxNorm: clipNorm)
            }
        }
        if let schedule { optimizer.learningRate = schedule.learningRate(at: step) }
        try optimizer.step()
        try model.afterStep(cutpointMargin: cutpointMargin)
        step += 1
        return batchLoss
    }
}
