import Core
import Foundation

/// Per-study ordinal predictions and their labels, in `RSNA.labelColumns` order: what the metric,
/// the report and `predict` share.
public struct StudyPredictions: Sendable {
    /// Study ids, one per row.
    public var studyIDs: [Int64]
    /// N × 25 × 3 probabilities (normal/mild, moderate, severe), row-major.
    public var probabilities: [Double]
    /// N × 25 classes 0/1/2, −1 where the label is missing.
    public var labels: [Int8]

    /// Predictions for `studyIDs` (probabilities N × 25 × 3, labels N × 25).
    public init(studyIDs: [Int64], probabilities: [Double], labels: [Int8]) {
        precondition(probabilities.count == studyIDs.count * 75 && labels.count == studyIDs.count * 25,
                     "predictions for \(studyIDs.count) studies need \(studyIDs.count * 75) probabilities and \(studyIDs.count * 25) labels")
        self.studyIDs = studyIDs
        self.probabilities = probabilities
        self.labels = labels
    }

    /// Number of studies.
    public var count: Int { studyIDs.count }

    /// P(class) of study `row`, column `column`.
    public func probability(_ row: Int, _ column: Int, _ k: Int) -> Double { probabilities[(row * 25 + column) * 3 + k] }

    /// The same studies with every row replaced by the constant `prior` (25 × 3): the baseline's predictions.
    public func replacing(with prior: [Double]) -> StudyPredictions {
        precondition(prior.count == 75, "a prior has 25 × 3 probabilities")
        return StudyPredictions(studyIDs: studyIDs, probabilities: Array((0..<count).map { _ in prior }.joined()), labels: labels)
    }
}

/// The RSNA 2024 Lumbar Spine competition metric, computed as Kaggle's scoring notebook does: for each
/// condition group (spinal canal; left+right neural foraminal; left+right subarticular) scikit-learn's
/// `log_loss` over the labelled rows with sample weights 1 / 2 / 4 by true class, plus `any_severe_spinal`
/// per study; the score is the unweighted mean of the four. Lower is better.
public struct RSNAScore: Codable, Sendable, Equatable {
    /// Mean of the four group losses.
    public var score: Double
    /// Weighted log loss of the spinal, foraminal and subarticular groups, and of any_severe_spinal.
    public var spinal: Double, foraminal: Double, subarticular: Double, anySevereSpinal: Double
    /// Weighted log loss over every labelled row of all 25 columns (the validation loss).
    public var loss: Double
    /// Weighted log loss per condition-level, in `RSNA.labelColumns` order (NaN where a column has no label).
    public var columnLosses: [Double]
    /// Confusion matrices per condition (`RSNA.conditions` order): [true class][argmax class] counts over its five levels.
    public var confusion: [[[Int]]]
    /// Labelled rows scored.
    public var labelledRows: Int

    /// Sample weight of a true class (Normal/Mild 1, Moderate 2, Severe 4).
    public static let classWeights: [Double] = [1, 2, 4]

    /// The four group names, in score order.
    public static let groupNames = ["spinal", "foraminal", "subarticular", "any_severe_spinal"]

    /// The group losses in `groupNames` order.
    public var groups: [Double] { [spinal, foraminal, subarticular, anySevereSpinal] }

    /// Condition group (0 spinal, 1 foraminal, 2 subarticular) of label column `column`.
    public static func group(ofColumn column: Int) -> Int { RSNA.conditionGroups[column / RSNA.levels.count] }

    /// Scores `predictions` against their own labels. Probabilities are clipped to [ε, 1 − ε] with ε the
    /// float64 machine epsilon, as scikit-learn does; unlabelled rows are left out.
    public init(_ predictions: StudyPredictions) {
        let eps = Double.ulpOfOne
        func nll(_ p: Double) -> Double { -Foundation.log(min(max(p, eps), 1 - eps)) }
        var groupSum = [Double](repeating: 0, count: 3), groupWeight = [Double](repeating: 0, count: 3)
        var columnSum = [Double](repeating: 0, count: 25), columnWeight = [Double](repeating: 0, count: 25)
        var confusion = [[[Int]]](repeating: [[Int]](repeating: [0, 0, 0], count: 3), count: 5)
        var severeSum = 0.0, severeWeight = 0.0
        var rows = 0
        for s in 0..<predictions.count {
            var spinalSevereLabel = false, spinalMaxWeight = 0.0, spinalMaxSevere = 0.0, spinalLabelled = false
            for column in 0..<25 {
                let y = Int(predictions.labels[s * 25 + column])
                guard (0...2).contains(y) else { continue }
                let p = (0..<3).map { predictions.probability(s, column, $0) }
                // scikit-learn renormalises each row after clipping; rows that already sum to 1 are unchanged.
                let clipped = p.map { min(max($0, eps), 1 - eps) }
                let total = clipped.reduce(0, +)
                let w = Self.classWeights[y]
                let loss = nll(clipped[y] / total)
                let g = Self.group(ofColumn: column)
                groupSum[g] += w * loss
                groupWeight[g] += w
                columnSum[column] += w * loss
                columnWeight[column] += w
                let predicted = p.indices.max { p[$0] < p[$1] }!
                confusion[column / 5][y][predicted] += 1
                rows += 1
                if g == 0 {
                    spinalLabelled = true
                    spinalSevereLabel = spinalSevereLabel || y == 2
                    spinalMaxWeight = max(spinalMaxWeight, w)
                    spinalMaxSevere = max(spinalMaxSevere, p[2])
                }
            }
            if spinalLabelled {
                let p = min(max(spinalMaxSevere, eps), 1 - eps)
                severeSum += spinalMaxWeight * (spinalSevereLabel ? nll(p) : nll(1 - p))
                severeWeight += spinalMaxWeight
            }
        }
        func ratio(_ a: Double, _ b: Double) -> Double { b > 0 ? a / b : .nan }
        spinal = ratio(groupSum[0], groupWeight[0])
        foraminal = ratio(groupSum[1], groupWeight[1])
        subarticular = ratio(groupSum[2], groupWeight[2])
        anySevereSpinal = ratio(severeSum, severeWeight)
        score = (spinal + foraminal + subarticular + anySevereSpinal) / 4
        loss = ratio(groupSum.reduce(0, +), groupWeight.reduce(0, +))
        columnLosses = (0..<25).map { ratio(columnSum[$0], columnWeight[$0]) }
        self.confusion = confusion
        labelledRows = rows
    }

    /// The best constant prediction under this metric, from training labels (N × 25, −1 missing): per column,
    /// the class counts times the weights 1/2/4, normalised. Each count starts at one (Laplace), so that a class
    /// a small training fold never saw costs a finite loss instead of −log ε ≈ 36 per row. Returns 25 × 3.
    public static func prior(labels: [Int8]) -> [Double] {
        var counts = [Double](repeating: 1, count: 75)
        for (i, y) in labels.enumerated() where (0...2).contains(y) { counts[(i % 25) * 3 + Int(y)] += 1 }
        var prior = [Double](repeating: 0, count: 75)
        for column in 0..<25 {
            let weighted = (0..<3).map { counts[column * 3 + $0] * classWeights[$0] }
            let total = weighted.reduce(0, +)
            for k in 0..<3 { prior[column * 3 + k] = weighted[k] / total }
        }
        return prior
    }
}
