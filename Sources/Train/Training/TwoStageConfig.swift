import Foundation

/// The two-stage recipe's settings (`two_stage:` in the training configuration): the crops around each level, the
/// localizer, and how training places the crops. The defaults are the recommended model.
public struct TwoStageConfig: Equatable, Sendable {
    /// Each crop's size in crop voxels (D, H, W), at `cropScale` stored-grid voxels per crop voxel. By default one crop
    /// per label column (`conditionCrops`): at the 128³ pipelines' ~2.3 mm, 8 × 10 × 10 spans 19 × 23 × 23 mm around a
    /// canal, a foramen or a recess. With one crop per level (`condition_crops: false`), 20 × 16 × 14 spans 46 × 37 × 32 mm:
    /// both foramina (±23 mm), the recesses and the canal.
    public var crop = [8, 10, 10], cropScale = 1.0
    /// The localizer's first-stage channels, and the average pooling (d, h, w) of the stored grid it reads.
    public var localizerWidth = 8, localizerPool = [4, 2, 2]
    /// Training crops sit at the labels' spinal-canal points moved by up to ± this many stored-grid voxels per axis
    /// (the localizer's held-out error is of that order), never at the labels in validation, evaluate or predict.
    public var jitter = 2.0
    /// Weight of the localizer's loss (mean absolute error in voxels plus the heatmap cross-entropy) beside the classifier's.
    public var localizationWeight = 0.05
    /// Two crops per level, one per side (`TwoStageLayout.sideShift`), each `crop` in size and reaching 2 crop voxels
    /// across the midline, the right one mirrored, read by one network and a `CropKindHead`; false: one crop per level.
    public var sideCrops = false
    /// One crop per label column at its condition's point (`TwoStageLayout.conditionCrops`), each `crop` in size: the
    /// default. Measured on the moving phantom cohort (fold 0, 120 trained, 40 held out): with one crop per level,
    /// foraminal and subarticular stayed at their baseline after 30 epochs (1.00× and 0.95×, side crops no better
    /// after 7); with condition crops both learned within 8 epochs (docs/learning-on-the-phantom.md).
    public var conditionCrops = true

    /// The crop each layout was measured with (README, docs/learning-on-the-phantom.md): condition crops 8 × 10 × 10,
    /// side crops 14 × 16 × 14, one crop per level 20 × 16 × 14; what a configuration without `crop` gets.
    public var measuredCrop: [Int] { conditionCrops ? [8, 10, 10] : sideCrops ? [14, 16, 14] : [20, 16, 14] }

    /// How far each side crop's centre sits from the level's point (grid voxels): the crop reaches 2 crop voxels
    /// across the midline.
    public var sideShift: Double { (Double(crop[0] - 1) / 2 - 2) * cropScale }

    /// The defaults.
    public init() {}

    /// The model layout these settings describe.
    public func layout() throws -> TwoStageLayout {
        try TwoStageLayout(crops: PointCrops(size: crop, scale: cropScale), localizerWidth: localizerWidth, pool: localizerPool,
                           sideShift: sideCrops ? sideShift : nil, conditionCrops: conditionCrops, jitter: jitter,
                           localizationWeight: localizationWeight)
    }

    /// The `two_stage:` block of the resolved YAML.
    var yaml: [String] {
        func list(_ v: [Int]) -> String { "[\(v.map(String.init).joined(separator: ", "))]" }
        return ["two_stage:", "  crop: \(list(crop))", "  crop_scale: \(cropScale)", "  localizer_width: \(localizerWidth)",
                "  localizer_pool: \(list(localizerPool))", "  jitter: \(jitter)", "  localization_weight: \(localizationWeight)",
                "  side_crops: \(sideCrops)", "  condition_crops: \(conditionCrops)"]
    }
}
