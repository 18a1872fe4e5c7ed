import Foundation

/// How the two-stage model is laid out: the crops around each level, and the localizer's width and input pooling.
public struct TwoStageLayout: Sendable, Equatable {
    /// Crops cut around each level's point from the stored grid.
    public var crops: PointCrops
    /// The localizer's first-stage channels.
    public var localizerWidth: Int
    /// Average-pooling factors (d, h, w) from the stored grid to the localizer's input (the coarse grid).
    public var pool: [Int]
    /// One crop per side of each level instead of one per level: the left crop's centre sits `sideShift` grid voxels
    /// to the patient's left of the level's point (+d), the right crop's as far to the right, cut mirrored, so both
    /// look alike (midline at the same crop voxel, the side's recess and foramen beyond it) and one network reads both.
    /// nil: one crop per level centred on its point.
    public var sideShift: Double?
    /// One crop per label column instead: at each condition's point (its level's point plus the training studies' mean
    /// offset, `TwoStageBackbone.offsets`), the right side's crops mirrored, all read by one network and a
    /// `CropKindHead`.
    public var conditionCrops: Bool
    /// The localizer predicts every label column's point (25 heatmaps: the canal, each foramen and each recess at each
    /// level, as train_label_coordinates.csv gives them) instead of the levels' canal points alone, whose conditions then
    /// sit at the training studies' mean offset from them (which misses when a spine is larger, smaller or tilted).
    public var conditionPoints: Bool
    /// Training: the crops' centres are the labels' spinal-canal points moved by up to ± `jitter` grid voxels along each
    /// axis (uniform, from libtorch's generator, so a resumed run draws the same); the localizer's loss (mean absolute
    /// error in voxels plus the heatmap cross-entropy against a Gaussian of `heatmapSigma` heatmap cells) weighs
    /// `localizationWeight` beside the classifier's.
    public var jitter: Double, localizationWeight: Double, heatmapSigma: Double
    /// With condition crops: cut them from each condition's own series' source slices (`SourceCrops`) instead of the
    /// stored grid (`crops`); the model's input must then carry the batch's `SourceBatch`. nil: the grid's crops.
    public var sourceCrops: SourceCrops?

    /// A layout; three `pool` factors ≥ 1, `localizerWidth` ≥ 1; source crops only with condition crops.
    public init(crops: PointCrops, localizerWidth: Int = 8, pool: [Int] = [4, 2, 2], sideShift: Double? = nil,
                conditionCrops: Bool = false, conditionPoints: Bool = false, jitter: Double = 0, localizationWeight: Double = 0.05, heatmapSigma: Double = 1,
                sourceCrops: SourceCrops? = nil) throws {
        guard pool.count == 3, pool.allSatisfy({ $0 >= 1 }), localizerWidth >= 1 else {
            throw TrainError(.configuration, "the localizer needs a width of 1 or more and three pooling factors of 1 or more, not \(localizerWidth) and \(pool)")
        }
        self.crops = crops
        self.localizerWidth = localizerWidth
        self.pool = pool
        self.sideShift = sideShift
        self.conditionCrops = conditionCrops
        self.conditionPoints = conditionPoints
        self.jitter = jitter
        self.localizationWeight = localizationWeight
        self.heatmapSigma = heatmapSigma
        self.sourceCrops = sourceCrops
        guard !(conditionCrops && sideShift != nil) else { throw TrainError(.configuration, "side crops and condition crops exclude each other") }
        guard sourceCrops == nil || conditionCrops else { throw TrainError(.configuration, "source crops are cut per label column: they need condition crops") }
    }

    /// Crops per level: five with condition crops, two with side crops, else one.
    public var cropsPerLevel: Int { conditionCrops ? 5 : sideShift == nil ? 1 : 2 }

    /// The localizer's points per level: five with condition points, else one (the canal's).
    public var pointsPerLevel: Int { conditionPoints ? 5 : 1 }
}

/// The recommended backbone: find the levels, then look closely. The localizer reads the stored grid average-pooled
/// by `pool` (the coarse grid) and predicts every label column's point (`TwoStageLayout.conditionPoints`, the default)
/// or each level's spinal-canal point; crops are resampled around the points from the stored grid itself (its finer
/// voxels) and go through one shared network: one per label column (the default, for a `CropKindHead`), two per level
/// (side crops) or one per level (for a `LevelHead`).
///
/// The crops sit at the localizer's predictions, except in a training step, whose input carries the labels' keypoints:
/// there they sit at the labels' points moved by the jitter, and the localizer learns those points (its loss is the
/// output's extra loss). So validation, evaluate and predict never see labels. Weights are named as the PyTorch twin's
/// `TwoStageBackbone` (`localizer.…`, `inner.…`).
public final class TwoStageBackbone: Module, Backbone {
    /// The name of the localizer's loss among a forward's extra losses.
    public static let localizationLoss = "localization"
    /// Stage one.
    public let localizer: LevelLocalizer
    /// The network every crop goes through.
    public let inner: any Backbone
    /// Crops, localizer width and pooling.
    public let layout: TwoStageLayout
    /// Number of levels.
    public let levels: Int
    /// (levels · 5 conditions, 3): each label column's mean offset (voxels) from its level's spinal-canal point in the
    /// training studies, so the points of every condition follow from the localizer's (set by the trainer, saved); not
    /// read with condition points (the localizer gives every column's), but saved all the same.
    @Buffer public var offsets: Tensor

    /// A two-stage backbone over `inner`, as `layout` says.
    public init(inner: any Backbone, layout: TwoStageLayout, levels: Int = 5) throws {
        localizer = try LevelLocalizer(levels: levels * layout.pointsPerLevel, width: layout.localizerWidth)
        self.inner = inner
        self.layout = layout
        self.levels = levels
        _offsets = Buffer(wrappedValue: try Tensor.zeros([5 * levels, 3]))
    }

    public var featureCount: Int { levels * layout.cropsPerLevel * inner.featureCount }

    /// The localizer's own group: clipped on its own, copied by the EMA (`FoldTraining`'s EMA explains why), and in
    /// data-parallel training weighed by the ranks' shares of the labelled points its loss averages.
    public var parameterGroups: [ParameterGroup] {
        [ParameterGroup(name: "localizer", prefix: "localizer.",
                        policy: ParameterPolicy(clipped: true, averaging: .copied, reducedBy: Self.localizationLoss))]
    }

    public var locates: Bool { true }

    /// Without condition points, every condition's point is its level's canal point plus the training studies' mean offset
    /// (saved as `offsets`).
    public func prepare(trainingKeypoints: () throws -> [[Float]]) throws {
        let mean = conditionOffsets(keypoints: try trainingKeypoints())
        try Torch.noGrad { try offsets.copy_(try Tensor(mean, shape: [25, 3])) }
    }

    /// The head for the crops: a `CropKindHead` over condition or side crops, a `LevelHead` over one crop per level
    /// (the 25 RSNA columns); a `Linear` for other head counts.
    public func makeHead(heads: Int) throws -> any UnaryLayer {
        guard heads == 25 else { return try Linear(featureCount, heads) }
        if layout.conditionCrops { return try CropKindHead(features: inner.featureCount, levels: levels, crops: .conditions) }
        if layout.sideShift != nil { return try CropKindHead(features: inner.featureCount, levels: levels, crops: .sides) }
        return try LevelHead(features: inner.featureCount, levels: levels, conditions: heads / levels)
    }

    /// `x` (B, C, D, H, W), float32 → the heatmap logits and the points (d, h, w) in voxels of `x` they give.
    public func locateWithHeatmaps(_ x: Tensor) throws -> (heat: Tensor, points: Tensor) {
        let k = layout.pool
        let coarse = k.contains { $0 > 1 } ? try Functional.avgPool3d(x, kernel: k, stride: k, padding: [0, 0, 0]) : x
        let heat = try localizer(coarse)
        return (heat, try LevelLocalizer.softArgmax(heat, gridSize: Array(x.shape[2...])))
    }

    public func features(_ x: Tensor) throws -> Tensor { try forward(ModelInput(x)).features }

    /// Locates the levels (or every label column's point), cuts the crops (at the input's keypoints, jittered, where it
    /// has them) and reads them; with keypoints, also the localizer's loss against them.
    public func forward(_ input: ModelInput) throws -> BackboneOutput {
        let x = input.volumes
        let count = levels * layout.pointsPerLevel
        // The labels' points the localizer learns (B, count, 3) on the input's device (the canal's, or every column's), and
        // the crops' centres: them moved by the jitter, drawn before any other random number of the step, from the CPU
        // generator whatever the device (the draws of a seed stay the same), then sent to the device; nothing comes back
        // to the host.
        let truth = try input.keypoints.map { try $0.to(.float32, device: x.device).narrow(1, start: 0, length: count).contiguous() }
        let guide = try truth.map { try $0 + ((try Tensor.rand($0.shape).to(device: x.device) * 2 - 1) * layout.jitter) }
        let (heat, predicted) = try locateWithHeatmaps(x)
        var points = try predicted.detach()
        if let guide {
            // The labelled points replace the predictions, the rest stay.
            points = try Tensor.where(try guide.isFinite(), guide, points)
        }
        let (features, fromSlices) = try cropFeatures(x, points: points, sources: input.sources)
        let located = Located(columns: try columnPoints(predicted), fromSlices: fromSlices)
        guard let truth else { return BackboneOutput(features: features, located: located) }
        let localization = try LocalizationLoss()(predicted, truth)
            + HeatmapLoss(sigma: layout.heatmapSigma)(heat, truth, gridSize: Array(x.shape[2...]))
        // Labelled points: the loss is a mean over them (a point's three coordinates are labelled together).
        let terms = try truth.isFinite().to(.float64).sum() / 3.0
        return BackboneOutput(features: features, extraLosses: [ExtraLoss(name: Self.localizationLoss, value: localization,
                                                                          weight: layout.localizationWeight, terms: terms)],
                              located: located)
    }

    /// The localizer's points (B, levels or 25, 3) → every label column's (B, 25, 3): as they are with condition points,
    /// else each level's point plus the column's mean offset (`offsets`).
    func columnPoints(_ points: Tensor) throws -> Tensor {
        if layout.conditionPoints { return points }
        let b = points.shape[0]
        // (B, 5 conditions, levels, 3) + offsets (25, 3) → (B, 25, 3), column = condition · levels + level.
        let expanded = try points.reshape([b, 1, levels, 3]).expand([b, 5, levels, 3]).reshape([b, 5 * levels, 3])
        return try expanded + (try offsets.to(.float32, device: points.device)).reshape([1, 5 * levels, 3])
    }

    /// `x` (B, C, D, H, W) and the crops' points (B, levels or 25, 3: the localizer's) → features (B, featureCount), and
    /// with source crops which columns' crops came from source slices (B, 25).
    func cropFeatures(_ x: Tensor, points: Tensor, sources: SourceBatch? = nil) throws -> (Tensor, Tensor?) {
        if let sourceCrops = layout.sourceCrops {
            guard let sources else {
                throw TrainError(.configuration, "this model cuts its crops from the source slices: its input must carry them (the loader's sourcePixels)")
            }
            return try sourceFeatures(x, columns: try columnPoints(points), sources: sources, crops: sourceCrops)
        }
        return (try gridCropFeatures(x, points: points), nil)
    }

    /// `cropFeatures` from the stored grid.
    func gridCropFeatures(_ x: Tensor, points: Tensor) throws -> Tensor {
        let b = x.shape[0]
        if layout.conditionCrops { return try conditionFeatures(x, columns: try columnPoints(points)) }
        let points = try points.narrow(1, start: 0, length: levels)
        guard let shift = layout.sideShift else {
            let f = try inner.features(try layout.crops(x, points: points))  // (levels · B, F), level-major
            return try f.reshape([levels, b, inner.featureCount]).transpose(0, 1).contiguous().reshape([b, levels * inner.featureCount])
        }
        // Left (+d) and right (−d, mirrored) crops of every level through the one network: (2 · levels · B, F), side-major.
        let along = try Tensor([Float(shift), 0, 0], shape: [1, 1, 3], device: points.device)
        let left = try layout.crops(x, points: points + along), right = try layout.crops(x, points: points - along, mirrored: true)
        let f = try inner.features(try Tensor.cat([left, right], dim: 0))
        // (B, levels, side, F)
        return try f.reshape([2, levels, b, inner.featureCount]).permute([2, 1, 0, 3]).contiguous()
            .reshape([b, levels * 2 * inner.featureCount])
    }

    /// Label columns whose crops are cut mirrored (the right foramina and recesses), and the others, in RSNA order.
    static let mirroredColumns = Array(10..<15) + Array(20..<25), plainColumns = Array(0..<10) + Array(15..<20)
    /// For each label column, its crop's position in the crops' order (plain columns, then mirrored ones).
    static let columnOrder: [Int64] = (0..<25).map { c in Int64((plainColumns + mirroredColumns).firstIndex(of: c)!) }

    /// Source crops: (B, 25, 3) label columns' points → features (B, 25 · F) in label-column order, and which crops came
    /// from the slices (B, 25). Each group of five columns is read as `SourceCrops.columnReadings` says, in the crops'
    /// order (plain columns, then mirrored ones).
    func sourceFeatures(_ x: Tensor, columns: Tensor, sources: SourceBatch, crops: SourceCrops) throws -> (Tensor, Tensor) {
        let b = x.shape[0], device = columns.device
        var pieces: [Tensor] = [], taken: [Tensor] = []
        for group in [0, 1, 3, 2, 4] {  // canal, left foramina, left recesses, then the mirrored right foramina and recesses
            let cut = try crops(x, sources: sources, points: try columns.narrow(1, start: 5 * group, length: 5).contiguous(),
                                reading: SourceCrops.columnReadings[group],
                                useSlices: crops.groups.contains(RSNAScore.group(ofColumn: 5 * group)))
            pieces.append(cut.crops)
            taken.append(cut.fromSlices)
        }
        let order = try Tensor(Self.columnOrder, device: device)
        let f = try inner.features(try Tensor.cat(pieces, dim: 0)).reshape([5 * levels, b, inner.featureCount]).transpose(0, 1)
        let fromSlices = try Tensor.cat(taken, dim: 1).indexSelect(dim: 1, index: order)
        return (try f.indexSelect(dim: 1, index: order).contiguous().reshape([b, 5 * levels * inner.featureCount]), fromSlices)
    }

    /// Condition crops: (B, 25, 3) label columns' points → features (B, 25 · F) in label-column order.
    func conditionFeatures(_ x: Tensor, columns: Tensor) throws -> Tensor {
        let b = x.shape[0], device = columns.device
        let plain = try Tensor(Self.plainColumns.map(Int64.init), device: device)
        let mirrored = try Tensor(Self.mirroredColumns.map(Int64.init), device: device)
        let crops = try Tensor.cat([try layout.crops(x, points: try columns.indexSelect(dim: 1, index: plain).contiguous()),
                                    try layout.crops(x, points: try columns.indexSelect(dim: 1, index: mirrored).contiguous(), mirrored: true)],
                                   dim: 0)  // (25 · B, C, crop…): plain columns then mirrored ones, column-major
        let f = try inner.features(crops).reshape([5 * levels, b, inner.featureCount]).transpose(0, 1)  // (B, 25 in crop order, F)
        // Back to label-column order.
        return try f.indexSelect(dim: 1, index: try Tensor(Self.columnOrder, device: device)).contiguous()
            .reshape([b, 5 * levels * inner.featureCount])
    }
}
