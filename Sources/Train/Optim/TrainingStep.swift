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
    /// Two-stage models: the crops' centres are the labels' spinal-canal points moved by up to ± this many grid voxels
    /// along each axis (uniform, from libtorch's generator, so a resumed run draws the same), and the localizer's loss
    /// (mean absolute error in voxels plus the heatmap cross-entropy) is added with this weight.
    public var jitter = 0.0, localizationWeight = 0.05
    /// Two-stage models: the width (heatmap cells) of the Gaussian the localizer's heatmaps are trained towards.
    public var heatmapSigma = 1.0
    /// The localizer's loss of the last step (two-stage models; nil otherwise).
    public private(set) var lastLocalizationLoss: Double?

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
    /// A two-stage model also needs the batch's `keypoints` (B, 25, 3): its crops are cut at the labels' points (with
    /// the jitter) and its localizer learns them; the loss returned is the classifier's plus the weighted localizer's.
    @discardableResult
    public func callAsFunction(_ batch: Tensor, labels: Tensor, keypoints: Tensor? = nil) throws -> Double {
        let x = try batch.to(.float32, device: device)
        optimizer.zeroGrad()
        let twoStage = model.backbone as? TwoStageBackbone
        var spinal: Tensor?
        if let twoStage {
            guard let keypoints else { throw TorchError("a two-stage model trains on the batch's keypoints; none were given") }
            let points = try keypoints.to(.float32, device: .cpu).narrow(1, start: 0, length: twoStage.levels).contiguous()
            spinal = points
            twoStage.guide = try points + ((try Tensor.rand(points.shape) * 2 - 1) * jitter)
        }
        defer { twoStage?.guide = nil }
        let probs = mixedPrecision ? try Torch.autocast(device) { try model(x) } : try model(x)
        var value = try loss(probs, labels)
        if let twoStage, let spinal, let located = twoStage.located, let heat = twoStage.heat {
            // Coordinates (mean absolute error, voxels) and heatmaps (cross-entropy against a Gaussian at the truth).
            let localization = try LocalizationLoss()(located, spinal)
                + HeatmapLoss(sigma: heatmapSigma)(heat, spinal, gridSize: Array(x.shape[2...]))
            lastLocalizationLoss = try localization.item()
            value = try value + localization * localizationWeight
        }
        try value.backward()
        let batchLoss: Double
        if let allReduce {
            // Labelled points of this rank's batch: the localizer's loss is a mean over them.
            let points = try spinal.map { s in Double(try s.toArray(Float.self).filter(\.isFinite).count) / 3 }
            batchLoss = try allReduce.reduce(localLoss: value.item(), localWeight: loss.weightSum(labels), localizerPoints: points)
        } else {
            batchLoss = try value.item()
        }
        if let clipNorm {
            // A two-stage model's stages share no weights and learn different things: each is clipped on its own, so
            // the localizer's large early gradients (errors of tens of voxels) do not shrink the classifier's steps.
            let parameters = optimizer.parameters
            let groups = twoStage == nil ? [parameters.map(\.1)]
                : [false, true].map { localizer in parameters.filter { $0.0.hasPrefix(TwoStageBackbone.localizerParameterPrefix) == localizer }.map(\.1) }
            for group in groups where !group.isEmpty { try clipGradNorm(group, maxNorm: clipNorm) }
        }
        if let schedule { optimizer.learningRate = schedule.learningRate(at: step) }
        try optimizer.step()
        try model.link.ascend(margin: cutpointMargin)
        step += 1
        return batchLoss
    }
}
