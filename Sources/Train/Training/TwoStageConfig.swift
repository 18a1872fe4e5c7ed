import Config
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
    /// The localizer predicts every label column's point (`TwoStageLayout.conditionPoints`): the default. false: the
    /// levels' canal points, each condition at the training studies' mean offset from its level's.
    public var conditionPoints = true
    /// Cut the condition crops from each condition's own series' source slices at the scanner's resolution
    /// (`SourceCrops`: the canal on the sagittal T2/STIR, the foramina on the sagittal T1, the recesses on the axial T2),
    /// `sourceSlices` slices of `sourceCropSize`² pixels of `sourceCropMm` mm, instead of from the stored grid; a crop
    /// whose series is missing or does not reach its point falls back to the grid. Needs shards with source pixels
    /// (schema_version 2; older shards fall back everywhere).
    public var sourceCrops = true
    public var sourceSlices = 5, sourceCropSize = 24, sourceCropMm = 1.0
    /// The condition groups read from their series' slices (`SourceCrops.groups`); the others' crops are the grid's at
    /// the same millimetres. By default the subarticular recesses alone (the axial T2): measured on the moving phantom
    /// cohort at 0.5–0.8 mm pixels (docs/learning-on-the-phantom.md, two training seeds), the recesses read from the
    /// slices beat the grid's crops at both seeds (fresh subarticular 0.49× and 0.56× against 0.56× and 0.64×), while
    /// the foramina read from the sagittal T1 slices did worse than from the grid (0.70× and 0.87× against 0.66× and
    /// 0.68×); held-out and fresh scores overall were best with the recesses alone.
    public var sourceCropGroups = [2]
    /// The groups' names in the configuration, as the metric names them.
    static let groupNames = ["spinal", "foraminal", "subarticular"]

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
                           sideShift: sideCrops ? sideShift : nil, conditionCrops: conditionCrops, conditionPoints: conditionPoints, jitter: jitter,
                           localizationWeight: localizationWeight,
                           sourceCrops: readsSourcePixels ? SourceCrops(slices: sourceSlices, size: sourceCropSize, millimetres: sourceCropMm,
                                                                        groups: sourceCropGroups) : nil)
    }

    /// Whether the model cuts its crops from source slices (source crops of condition crops), so its loaders read them.
    public var readsSourcePixels: Bool { sourceCrops && conditionCrops
    }

    /// The `two_stage:` keys, in the resolved YAML's order (read in it too: `condition_crops` after `side_crops`).
    static let keys: [ConfigKey<TwoStageConfig>] = [
        ConfigKey(name: "crop", help: "each crop's size in crop voxels, by default the layout's measured one [three whole numbers D, H, W]",
                  read: { (s: ConfigSection, t: inout TwoStageConfig) in if let x = try s.voxelSize("crop") { t.crop = x } },
                  write: { (t: TwoStageConfig) in ["crop: \(yamlList(t.crop))"] }),
        .double("crop_scale", \.cropScale, above: 0, "stored-grid voxels per crop voxel"),
        .int("localizer_width", \.localizerWidth, min: 1, "the localizer's first-stage channels"),
        ConfigKey(name: "localizer_pool", help: "average pooling of the grid the localizer reads [three whole numbers d, h, w]",
                  read: { (s: ConfigSection, t: inout TwoStageConfig) in if let x = try s.voxelSize("localizer_pool") { t.localizerPool = x } },
                  write: { (t: TwoStageConfig) in ["localizer_pool: \(yamlList(t.localizerPool))"] }),
        .double("jitter", \.jitter, min: 0, "training crops sit at the labels' points moved by up to ± this many grid voxels"),
        .double("localization_weight", \.localizationWeight, min: 0, "weight of the localizer's loss"),
        .bool("side_crops", \.sideCrops, "two crops per level, one per side"),
        ConfigKey(name: "condition_crops", help: "one crop per label column at its condition's point, by default unless side_crops [true or false]",
                  read: { (s: ConfigSection, t: inout TwoStageConfig) in
                      let conditionCrops = try s.bool("condition_crops")
                      // Side crops replace the default condition crops; asking for both is an error.
                      if t.sideCrops, conditionCrops == true { throw s.error("condition_crops", "side_crops and condition_crops exclude each other: set one") }
                      t.conditionCrops = conditionCrops ?? !t.sideCrops
                  },
                  write: { (t: TwoStageConfig) in ["condition_crops: \(t.conditionCrops)"] }),
        .bool("condition_points", \.conditionPoints, "the localizer predicts every label column's point, not each level's canal point plus the training studies' mean offset"),
        .bool("source_crops", \.sourceCrops, "cut the condition crops from each condition's own series' source slices (shards of schema_version 2), not the stored grid"),
        ConfigKey(name: "source_slices", help: "slices across each source crop, centred on the nearest [an odd whole number 1 to 15]",
                  read: { (s: ConfigSection, t: inout TwoStageConfig) in
                      guard let n = try s.int("source_slices", in: 1...15) else { return }
                      guard n % 2 == 1 else { throw s.error("source_slices", "expected an odd number (the window is centred on the nearest slice), got \(n)") }
                      t.sourceSlices = n
                  },
                  write: { (t: TwoStageConfig) in ["source_slices: \(t.sourceSlices)"] }),
        .int("source_crop_size", \.sourceCropSize, in: 4...128, "pixels along each in-plane side of a source crop"),
        .double("source_crop_mm", \.sourceCropMm, above: 0, below: 10, "millimetres per source-crop pixel"),
        ConfigKey(name: "source_crop_groups", help: "the condition groups whose crops are read from their series' slices, the others' from the grid [a list from spinal, foraminal, subarticular]",
                  read: { (s: ConfigSection, t: inout TwoStageConfig) in
                      if let names = try s.strings("source_crop_groups", oneOf: TwoStageConfig.groupNames) {
                          t.sourceCropGroups = names.compactMap { TwoStageConfig.groupNames.firstIndex(of: $0) }.sorted()
                      }
                  },
                  write: { (t: TwoStageConfig) in ["source_crop_groups: [" + t.sourceCropGroups.map { TwoStageConfig.groupNames[$0] }.joined(separator: ", ") + "]"] }),
    ]

    /// Reads a `two_stage:` mapping; a layout without `crop` gets its measured crop.
    static func read(_ section: ConfigSection) throws -> TwoStageConfig {
        var t = TwoStageConfig()
        for key in keys { try key.read(section, &t) }
        if section.value("crop") == nil { t.crop = t.measuredCrop }
        try section.finish()
        return t
    }
}
