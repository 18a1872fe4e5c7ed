import Foundation

/// Ordinal probabilities from one logit per head (spacecutter's `LogisticCumulativeLink`): each head has
/// K−1 ordered cutpoints c, P(y ≤ k) = σ(c_k − z), and P(y = k) is the difference of neighbours.
public final class LogisticCumulativeLink: Module {
    /// (heads, classes − 1) cutpoints, ordered along the last axis.
    @Param public var cutpoints: Tensor
    /// Number of heads and of ordinal classes.
    public let heads: Int, classes: Int

    /// `heads` links over `classes` ordered classes; cutpoints start at spacecutter's k − (K−1)/2.
    public init(heads: Int = 25, classes: Int = 3) throws {
        guard classes >= 2 else { throw TrainError(.configuration, "LogisticCumulativeLink needs at least 2 classes, got \(classes)") }
        let k = classes - 1
        let row = (0..<k).map { Float($0) - Float(k) / 2 }
        _cutpoints = Param(wrappedValue: try Tensor(Array((0..<heads).map { _ in row }.joined()), shape: [heads, k]))
        self.heads = heads
        self.classes = classes
    }

    /// (B, heads) logits → (B, heads, classes) probabilities that sum to 1 over the last axis.
    public func callAsFunction(_ z: Tensor) throws -> Tensor {
        let k = classes - 1
        let cdf = try (cutpoints.unsqueeze(0) - z.unsqueeze(-1)).sigmoid()  // (B, H, K−1): P(y ≤ k)
        var parts = [try cdf.narrow(2, start: 0, length: 1)]
        if k > 1 { parts.append(try cdf.narrow(2, start: 1, length: k - 1) - cdf.narrow(2, start: 0, length: k - 1)) }
        parts.append(try 1.0 - cdf.narrow(2, start: k - 1, length: 1))
        return try Tensor.cat(parts, dim: 2)
    }

    /// spacecutter's ascension: after an optimiser step, clamps c_i ≤ c_{i+1} − margin, left to right.
    public func ascend(margin: Double = 0) throws {
        try Torch.noGrad {
            for i in 0..<(classes - 2) {
                let next = try cutpoints.narrow(1, start: i + 1, length: 1) - margin
                try cutpoints.narrow(1, start: i, length: 1).clampMax_(next)
            }
        }
    }
}

/// Class-weighted negative log likelihood of ordinal probabilities:
/// Σ w_y · −log P(y) / Σ w_y over the labelled entries (labels −1 are missing and masked out).
public struct CumulativeLinkLoss {
    /// Weight per class (RSNA 2024: 1, 2, 4).
    public var classWeights: [Float]
    /// Probabilities are clamped to [eps, 1] before the logarithm.
    public var eps: Double

    /// A loss with `classWeights` (one per class).
    public init(classWeights: [Float] = [1, 2, 4], eps: Double = 1e-7) {
        self.classWeights = classWeights
        self.eps = eps
    }

    /// probs (B, H, K), labels (B, H) integers in 0..<K or −1 → a scalar float32 loss.
    public func callAsFunction(_ probs: Tensor, _ labels: Tensor) throws -> Tensor {
        let p32 = try probs.to(.float32)
        guard probs.rank == 3, labels.shape == Array(probs.shape.prefix(2)) else {
            throw TrainError(.shape, "CumulativeLinkLoss: probabilities \(probs.shape) and labels \(labels.shape) do not match (B, H, K) / (B, H)")
        }
        guard classWeights.count == probs.shape[2] else {
            throw TrainError(.configuration, "CumulativeLinkLoss: \(classWeights.count) class weights for \(probs.shape[2]) classes")
        }
        let labels = try labels.to(.int64, device: probs.device)
        let present = try labels.ge(0).to(.float32)
        let safe = try labels.clamp(min: 0).to(.int64)
        let likelihood = try p32.gather(dim: 2, index: safe.unsqueeze(-1)).squeeze(-1).clamp(min: eps)
        let weights = try Tensor(classWeights, device: probs.device)
        let w = try weights.indexSelect(dim: 0, index: safe.flatten()).reshape(labels.shape) * present
        return try (w * likelihood.log()).sum().neg() / w.sum().clamp(min: eps)
    }
}

/// A 3-D feature extractor: (B, C, D, H, W) → (B, featureCount). A backbone that does more than pool features (a
/// localizer, crops at its points) says so through the defaults it overrides: its forward's extra losses and points,
/// its head, its parameter groups, what it takes from the training studies.
public protocol Backbone: Module {
    /// Width of the pooled feature vector.
    var featureCount: Int { get }
    /// Pooled features of a batch.
    func features(_ x: Tensor) throws -> Tensor
    /// One forward pass: the features, and the extra losses and points of a backbone that locates.
    func forward(_ input: ModelInput) throws -> BackboneOutput
    /// The head over these features for `heads` outputs.
    func makeHead(heads: Int) throws -> any UnaryLayer
    /// Groups of the backbone's parameters with policies of their own (prefixes relative to the backbone).
    var parameterGroups: [ParameterGroup] { get }
    /// Whether it locates points (`TrainableModel.locates`).
    var locates: Bool { get }
    /// Sets what the backbone takes from the training studies' keypoints (`TrainableModel.prepare`).
    func prepare(trainingKeypoints: () throws -> [[Float]]) throws
}

/// A backbone's forward: features, plus what a locating backbone adds.
public struct BackboneOutput {
    /// (B, featureCount) features.
    public var features: Tensor
    /// The backbone's losses (`ModelOutput.extraLosses`).
    public var extraLosses: [ExtraLoss]
    /// The points it located (`ModelOutput.located`).
    public var located: Located?

    /// Features, with the extra losses and points of a backbone that locates.
    public init(features: Tensor, extraLosses: [ExtraLoss] = [], located: Located? = nil) {
        self.features = features
        self.extraLosses = extraLosses
        self.located = located
    }
}

extension Backbone {
    public func forward(_ input: ModelInput) throws -> BackboneOutput { BackboneOutput(features: try features(input.volumes)) }
    public func makeHead(heads: Int) throws -> any UnaryLayer { try Linear(featureCount, heads) }
    public var parameterGroups: [ParameterGroup] { [] }
    public var locates: Bool { false }
    public func prepare(trainingKeypoints: () throws -> [[Float]]) throws {}
}

/// Backbone → one logit per condition-level (`head`) → ordinal probabilities (`link`).
public final class OrdinalClassifier: Module, TrainableModel {
    /// Feature extractor.
    public let backbone: any Backbone
    /// Pooled features → one logit per head (a `Linear`, or a `LevelHead` over level crops' features).
    public let head: any UnaryLayer
    /// Logits → (B, heads, classes) probabilities.
    public let link: LogisticCumulativeLink

    /// A classifier with `heads` heads (25 RSNA condition-levels by default) of `classes` ordered classes.
    public init(backbone: any Backbone, heads: Int = 25, classes: Int = 3) throws {
        self.backbone = backbone
        head = try backbone.makeHead(heads: heads)
        link = try LogisticCumulativeLink(heads: heads, classes: classes)
    }

    /// (B, heads) logits.
    public func logits(_ x: Tensor) throws -> Tensor { try head(backbone.features(x)) }

    /// (B, heads, classes) probabilities.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try link(logits(x)) }

    public func forward(_ input: ModelInput) throws -> ModelOutput {
        let b = try backbone.forward(input)
        let logits = try head(b.features)
        return ModelOutput(logits: logits, probabilities: try link(logits), extraLosses: b.extraLosses, located: b.located)
    }

    /// The backbone's groups (under `backbone.`), then everything else: `model`, clipped and averaged.
    public var parameterGroups: [ParameterGroup] {
        backbone.parameterGroups.map { ParameterGroup(name: $0.name, prefix: "backbone." + $0.prefix, policy: $0.policy) }
            + [ParameterGroup(name: "model", prefix: "")]
    }

    public var locates: Bool { backbone.locates }

    public func prepare(trainingKeypoints: () throws -> [[Float]]) throws { try backbone.prepare(trainingKeypoints: trainingKeypoints) }

    public func afterStep(cutpointMargin: Double) throws { try link.ascend(margin: cutpointMargin) }
}
