import Foundation

/// The two-stage recipe's settings (`two_stage:` in the training configuration): the crops around each level, the
/// localizer, and how training places the crops. The defaults are the recommended model.
public struct TwoStageConfig: Equatable, Sendable {
    /// One crop of this many crop voxels (D, H, W) per level, at `cropScale` stored-grid voxels per crop voxel. At the
    /// 128³ pipelines' ~2.3 mm it spans 46 × 37 × 32 mm: both foramina (±23 mm), the recesses and the canal of a level.
    public var crop = [20, 16, 14], cropScale = 1.0
    /// The localizer's first-stage channels, and the average pooling (d, h, w) of the stored grid it reads.
    public var localizerWidth = 8, localizerPool = [4, 2, 2]
    /// Training crops sit at the labels' spinal-canal points moved by up to ± this many stored-grid voxels per axis
    /// (the localizer's held-out error is of that order), never at the labels in validation, evaluate or predict.
    public var jitter = 2.0
    /// Weight of the localizer's loss (mean absolute error in voxels) beside the classifier's.
    public var localizationWeight = 0.05
    /// Two crops per level, one per side (`TwoStageLayout.sideShift`), each `crop` in size and reaching 2 crop voxels
    /// across the midline, the right one mirrored, read by one network and a `SideHead`; false: one crop per level.
    public var sideCrops = false

    /// How far each side crop's centre sits from the level's point (grid voxels): the crop reaches 2 crop voxels
    /// across the midline.
    public var sideShift: Double { (Double(crop[0] - 1) / 2 - 2) * cropScale }

    /// The defaults.
    public init() {}

    /// The model layout these settings describe.
    public func layout() throws -> TwoStageLayout {
        try TwoStageLayout(crops: PointCrops(size: crop, scale: cropScale), localizerWidth: localizerWidth, pool: localizerPool,
                           sideShift: sideCrops ? sideShift : nil)
    }

    /// The `two_stage:` block of the resolved YAML.
    var yaml: [String] {
        func list(_ v: [Int]) -> String { "[\(v.map(String.init).joined(separator: ", "))]" }
        return ["two_stage:", "  crop: \(list(crop))", "  crop_scale: \(cropScale)", "  localizer_width: \(localizerWidth)",
                "  localizer_pool: \(list(localizerPool))", "  jitter: \(jitter)", "  localization_weight: \(localizationWeight)",
                "  side_crops: \(sideCrops)"]
    }
}
