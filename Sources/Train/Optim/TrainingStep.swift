import Foundation

/// One optimisation step of an ordinal classifier, in the order the trainer and the benchmark share:
/// zero grads → forward (bf16 autocast if asked) → loss → backward → clip → schedule → step → ascend.
public final class TrainingStep {
    /// The model being trained.
    public let model: OrdinalClassifier
    /// Its optimiser.
    public let optimizer: any Optimizer
    /// The ordinal loss.
    public var loss: CumulativeLinkLoss
    /// Rate per step; nil keeps the optimiser's rate.
    public var schedule: (any LRSchedule)?
    /// Joint gradient-norm limit (nil: no clipping) and the cutpoint margin kept after each step.
    public var clipNorm: Double?, cutpointMargin: Double
    /// bfloat16 autocast for the forward pass on `device`.
    public var mixedPrecision: Bool
    /// Where the model lives.
    public let device: Device
    /// Steps taken so far (the schedule's position; checkpoints store it).
    public var step: Int
    /// In data-parallel training, sums the ranks' gradients after backward (nil: one process).
    public var allReduce: GradientAllReduce?

    /// A step runner; clipping to norm 1 and full precision by default.
    public init(model: OrdinalClassifier, optimizer: any Optimizer, loss: CumulativeLinkLoss = CumulativeLinkLoss(),
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
    }

    /// Runs one step on a batch (B, C, D, H, W) with labels (B, heads); returns the batch loss (the global
    /// batch's in data-parallel training, where `batch` is this rank's share). The batch may
    /// be float16 from the shards and on the CPU: it is converted to float32 on `device` first (a no-op when it is).
    @discardableResult
    public func callAsFunction(_ batch: Tensor, labels: Tensor) throws -> Double {
        let x = try batch.to(.float32, device: device)
        optimizer.zeroGrad()
        let probs = mixedPrecision ? try Torch.autocast(device) { try model(x) } : try model(x)
        let value = try loss(probs, labels)
        try value.backward()
        let batchLoss = try allReduce?.reduce(localLoss: value.item(), localWeight: loss.weightSum(labels)) ?? value.item()
        if let clipNorm { try clipGradNorm(optimizer.parameters.map(\.1), maxNorm: clipNorm) }
        if let schedule { optimizer.learningRate = schedule.learningRate(at: step) }
        try optimizer.step()
        try model.link.ascend(margin: cutpointMargin)
        step += 1
        return batchLoss
    }
}
