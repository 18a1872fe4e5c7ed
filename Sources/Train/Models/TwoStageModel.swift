import Foundation

/// The recommended model: find the levels, then look closely. The localizer reads the stored grid average-pooled by
/// `pool` (the coarse grid) and predicts each level's spinal-canal point; the classifier cuts a crop around each
/// point from the stored grid itself (finer voxels) and grades the five levels with one shared network.
/// Weights are named as the PyTorch twin `TwoStage` (`localizer.…`, `classifier.…`).
public final class TwoStageModel: Module {
    /// Stage one.
    public let localizer: LevelLocalizer
    /// Stage two.
    public let classifier: LevelCropClassifier
    /// Average-pooling factor from the stored grid to the localizer's input.
    public let pool: Int

    /// A model of these two stages; the localizer sees the grid pooled by `pool` (1: the grid itself).
    public init(localizer: LevelLocalizer, classifier: LevelCropClassifier, pool: Int) throws {
        guard pool >= 1 else { throw TorchError("the localizer's pooling must be 1 or more, not \(pool)") }
        self.localizer = localizer
        self.classifier = classifier
        self.pool = pool
    }

    /// `x` (B, C, D, H, W), float32 → (B, levels, 3) predicted points (d, h, w) in voxels of `x`.
    public func locate(_ x: Tensor) throws -> Tensor {
        let k = [pool, pool, pool]
        let coarse = pool > 1 ? try Functional.avgPool3d(x, kernel: k, stride: k, padding: [0, 0, 0]) : x
        return try LevelLocalizer.softArgmax(try localizer(coarse), gridSize: Array(x.shape[2...]))
    }

    /// Probabilities (B, heads, classes) of crops at the predicted points, and those points (what validation,
    /// evaluate and predict use: never the labels).
    public func callAsFunction(_ x: Tensor) throws -> (probabilities: Tensor, points: Tensor) {
        let points = try locate(x)
        return (try classifier(x, points: points), points)
    }
}

/// What to build for the two-stage model: the classifier's backbone (an EfficientNet-3D spec), the crops, and the
/// localizer's width and pooling.
public struct TwoStageSpec: Sendable, Equatable {
    /// The backbone shared by the level crops ("efficientnet3d"; its input size is the crop size).
    public var backbone: ModelSpec
    /// Crops around each level.
    public var crops: PointCrops
    /// The localizer's first-stage channels, and the pooling from the stored grid to its input.
    public var localizerWidth: Int, pool: Int

    /// A spec; `backbone.inputSize` is taken from the crops.
    public init(backbone: ModelSpec, crops: PointCrops, localizerWidth: Int = 8, pool: Int = 2) {
        var backbone = backbone
        backbone.inputSize = crops.size
        self.backbone = backbone
        self.crops = crops
        self.localizerWidth = localizerWidth
        self.pool = pool
    }

    /// Builds the model (weights freshly initialised from libtorch's generator: the classifier first).
    public func make() throws -> TwoStageModel {
        guard backbone.name == "efficientnet3d" else { throw TorchError("the two-stage model's crops go through efficientnet3d, not \(backbone.name)") }
        guard var config = EfficientNetConfig.named(backbone.variant) else {
            throw TorchError("efficientnet3d has variants b0, b1, b2, b3, not \(backbone.variant)")
        }
        if let width = backbone.width { config.width = width }
        let classifier = try LevelCropClassifier(backbone: try EfficientNet3D(config), crops: crops, heads: backbone.heads,
                                                 classes: backbone.classes)
        return try TwoStageModel(localizer: try LevelLocalizer(width: localizerWidth), classifier: classifier, pool: pool)
    }
}
