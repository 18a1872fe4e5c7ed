import Foundation

/// The RSNA 2024 Lumbar Spine label space: 5 conditions × 5 levels, in train.csv's column order.
public enum RSNA {
    /// Conditions in train.csv's order.
    public static let conditions = [
        "spinal_canal_stenosis",
        "left_neural_foraminal_narrowing",
        "right_neural_foraminal_narrowing",
        "left_subarticular_stenosis",
        "right_subarticular_stenosis",
    ]
    /// Disc levels, cranial to caudal.
    public static let levels = ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"]
    /// The 25 label columns `{condition}_{level}`, condition-major (train.csv's order).
    public static let labelColumns: [String] = conditions.flatMap { c in levels.map { "\(c)_\($0)" } }
    /// Severity names as train.csv spells them; index = class (0, 1, 2).
    public static let severities = ["Normal/Mild", "Moderate", "Severe"]
    /// Class probabilities per study: every label column's three severities, column-major (75).
    public static let probabilitiesPerStudy = labelColumns.count * severities.count
    /// Keypoint values per study: every label column's point (d, h, w) (75).
    public static let keypointValuesPerStudy = labelColumns.count * 3
    /// Each condition's scoring group, in `conditions` order: 0 spinal canal, 1 neural foramina, 2 subarticular
    /// recesses (a side's left and right conditions share one group, and a model may share one output for them).
    public static let conditionGroups = [0, 1, 1, 2, 2]
    /// Kaggle's spellings in train_label_coordinates.csv ("Spinal Canal Stenosis", "L1/L2").
    public static let conditionTitles = [
        "Spinal Canal Stenosis",
        "Left Neural Foraminal Narrowing",
        "Right Neural Foraminal Narrowing",
        "Left Subarticular Stenosis",
        "Right Subarticular Stenosis",
    ]
    /// Level spellings in train_label_coordinates.csv, in `levels` order.
    public static let levelTitles = ["L1/L2", "L2/L3", "L3/L4", "L4/L5", "L5/S1"]

    /// Class index of a train.csv cell: 0, 1, 2, or -1 for an empty or unknown cell.
    public static func severityClass(_ cell: String) -> Int8 {
        switch cell.trimmingCharacters(in: .whitespaces).lowercased() {
        case "normal/mild": return 0
        case "moderate": return 1
        case "severe": return 2
        default: return -1
        }
    }
}
