import Foundation

/// What a model's forward pass reads: the volumes and, in a training step, the labels' keypoints. Everything a forward
/// needs travels in here (nothing is set on the module beforehand), so one forward is one call.
public struct ModelInput {
    /// (B, C, D, H, W) float32 on the model's device.
    public var volumes: Tensor
    /// Training steps only: the batch's label keypoints (B, 25, 3) in the volumes' voxels, NaN where absent. A model
    /// that locates (`TrainableModel.locates`) cuts its crops at them and learns from them; nil: it uses its own points.
    public var keypoints: Tensor?
    /// The samples' source slices on the model's device, for a model whose stage two crops them (`SourceCrops`); nil:
    /// such a model crops the grid instead.
    public var sources: SourceBatch?

    /// The input `volumes`, with the labels' `keypoints` for a training step and the batch's source slices.
    public init(_ volumes: Tensor, keypoints: Tensor? = nil, sources: SourceBatch? = nil) {
        self.volumes = volumes
        self.keypoints = keypoints
        self.sources = sources
    }
}

/// A loss a model adds to the ordinal loss (a localizer's), and what the trainer needs to add and weigh it.
public struct ExtraLoss {
    /// Its name: parameter groups name it in `ParameterPolicy.reducedBy`.
    public var name: String
    /// The scalar loss, unweighted: a mean over `terms` terms.
    public var value: Tensor
    /// Its weight beside the ordinal loss.
    public var weight: Double
    /// How many terms `value` averages (a float64 scalar on the model's device, read only in data-parallel training):
    /// there each rank weighs its gradients of the groups this loss trains by its share of the ranks' terms.
    public var terms: Tensor

    /// A loss `value` of weight `weight`, a mean over `terms` terms.
    public init(name: String, value: Tensor, weight: Double, terms: Tensor) {
        self.name = name
        self.value = value
        self.weight = weight
        self.terms = terms
    }
}

/// The points a model located, in the input's voxels (d, h, w): every label column's (the canal, each foramen and each
/// recess at each level, `RSNA.labelColumns` order), as train_label_coordinates.csv gives them.
public struct Located {
    /// (B, 25, 3) each label column's point; the first five (the spinal canal's) are the levels' points.
    public var columns: Tensor
    /// (B, 25) bool for a model that crops source slices (`SourceCrops`): which columns' crops came from their series'
    /// slices (the others fell back to the grid); nil for other models.
    public var fromSlices: Tensor?

    /// The label columns' points, and which crops came from source slices.
    public init(columns: Tensor, fromSlices: Tensor? = nil) {
        self.columns = columns
        self.fromSlices = fromSlices
    }
}

/// What a model's forward pass returns: all a trainer, an evaluation or a prediction reads of it.
public struct ModelOutput {
    /// (B, heads) logits and (B, heads, classes) probabilities.
    public var logits: Tensor, probabilities: Tensor
    /// Losses the model adds to the ordinal loss (only when the input carried keypoints).
    public var extraLosses: [ExtraLoss]
    /// The points it located; nil for a model that locates nothing.
    public var located: Located?

    /// An output of `logits`, `probabilities`, `extraLosses` and `located` points.
    public init(logits: Tensor, probabilities: Tensor, extraLosses: [ExtraLoss] = [], located: Located? = nil) {
        self.logits = logits
        self.probabilities = probabilities
        self.extraLosses = extraLosses
        self.located = located
    }
}

/// How the trainer treats one group of a model's parameters.
public struct ParameterPolicy: Equatable, Sendable {
    /// What the exponential moving average of the weights does with the group.
    public enum Averaging: Sendable {
        /// e ← d·e + (1 − d)·p.
        case averaged
        /// e ← p: the group is used as trained.
        case copied
    }

    /// Whether the group's gradients are clipped to the step's norm limit (each group on its own norm: groups that
    /// share no weights and learn different things do not shrink each other's steps).
    public var clipped: Bool
    /// Averaged or copied by the EMA.
    public var averaging: Averaging
    /// Data-parallel training: the `ExtraLoss` whose terms weigh each rank's gradients of the group; nil: the
    /// ordinal loss's (its class weights of the rank's labels).
    public var reducedBy: String?

    /// A policy; clipped, averaged and weighed by the ordinal loss by default.
    public init(clipped: Bool = true, averaging: Averaging = .averaged, reducedBy: String? = nil) {
        self.clipped = clipped
        self.averaging = averaging
        self.reducedBy = reducedBy
    }
}

/// A group of a model's parameters, by name prefix, and its policy.
public struct ParameterGroup: Equatable, Sendable {
    /// The group's name.
    public var name: String
    /// Its parameters' dotted names start so ("" takes every parameter no earlier group took).
    public var prefix: String
    /// How the trainer treats it.
    public var policy: ParameterPolicy

    /// A group `name` of the parameters under `prefix`.
    public init(name: String, prefix: String, policy: ParameterPolicy = ParameterPolicy()) {
        self.name = name
        self.prefix = prefix
        self.policy = policy
    }
}

extension Array where Element == ParameterGroup {
    /// The group of the parameter named `name`: the first whose prefix it starts with.
    public func group(of name: String) -> ParameterGroup? { first { name.hasPrefix($0.prefix) } }

    /// `named` parameters split by group, in the groups' order; within a group, in `named`'s order.
    public func partition(_ named: [(String, Tensor)]) -> [(group: ParameterGroup, parameters: [(String, Tensor)])] {
        var members = [[(String, Tensor)]](repeating: [], count: count)
        for (name, tensor) in named {
            if let i = firstIndex(where: { name.hasPrefix($0.prefix) }) { members[i].append((name, tensor)) }
        }
        return zip(self, members).map { ($0, $1) }
    }
}

/// A model as the trainer, the EMA, all-reduce, evaluate and predict see it: one forward from a `ModelInput` to a
/// `ModelOutput`, its parameter groups with their policies, and what it needs from the data. They never ask which
/// model it is.
public protocol TrainableModel: Module {
    /// One forward pass.
    func forward(_ input: ModelInput) throws -> ModelOutput
    /// Every parameter's group, in order (the last group's prefix is "").
    var parameterGroups: [ParameterGroup] { get }
    /// Whether the model locates points: it trains on the batches' keypoints (`ModelInput.keypoints`) and its outputs
    /// carry `located`.
    var locates: Bool { get }
    /// Sets what the model takes from the training studies before training (their label keypoints, 25 × 3 per study,
    /// NaN where absent; read only when the model needs them).
    func prepare(trainingKeypoints: () throws -> [[Float]]) throws
    /// Restores the model's constraints after an optimiser step (ordered cutpoints `margin` apart).
    func afterStep(cutpointMargin: Double) throws
}
