import Core
import Foundation
import Shards

/// A finished (or partly finished) training run read from its folder: the configuration, the summary and
/// every fold's best checkpoint, averaged for `evaluate` and `predict`.
public struct TrainedRun {
    /// The run folder.
    public var run: URL { folder.url }
    /// The run folder, typed.
    public let folder: RunFolder
    /// Its resolved configuration (`config.yaml`).
    public let config: TrainingConfig
    /// Its summary (`summary.json`).
    public let summary: RunSummary

    /// Reads `run/config.yaml` and `run/summary.json`.
    public init(run: URL) throws {
        folder = RunFolder(run)
        config = try folder.config()
        summary = try folder.summary()
        guard !summary.folds.isEmpty else { throw TrainError(.runFolder, "\(run.path): no fold has finished an epoch; nothing to predict with") }
    }

    /// One model per finished fold, loaded from `fold-I/best.safetensors`, on `device`.
    public func models(inputSize: [Int], device: Device = .cpu) throws -> [OrdinalClassifier] {
        try summary.folds.map { fold in
            let model = try config.modelSpec(gridSize: inputSize).make()
            try Checkpoint.loadWeights(folder.fold(fold.fold).bestURL, into: model)
            try model.move(to: device)
            model.eval()
            return model
        }
    }

    /// Every sample of `dataset`, its probabilities averaged over the folds' best models (and, with `flip`, over each
    /// study read as it is and mirrored left-right: `predictLocating`).
    public func predict(_ dataset: ShardDataset, device: Device = .cpu, flip: Bool = false) throws -> StudyPredictions {
        try predictLocating(dataset, device: device, flip: flip).predictions
    }

    /// `predict`, and for a two-stage run also the points its localizers found in the same passes (`Train.predictLocating`;
    /// nil for other runs).
    public func predictLocating(_ dataset: ShardDataset, device: Device = .cpu, flip: Bool = false) throws
        -> (predictions: StudyPredictions, located: [Int64: (points: [Float], keypoints: [Float])]?, sourceCrops: SourceCropTally?) {
        var options = LoaderOptions(batchSize: config.batchSize, shuffle: false, dropLast: false, prefetch: config.prefetch)
        options.sourcePixels = config.readsSourcePixels
        options.sourceChannels = config.sourceChannels
        let loader = try ShardLoader(dataset: dataset, options: options, device: device)
        return try Train.predictLocating(models(inputSize: dataset.manifest.shape, device: device), loader: loader, config: config, flip: flip)
    }
}

/// Kaggle's submission format for the RSNA 2024 competition.
public enum Submission {
    /// The header line.
    public static let header = "row_id,normal_mild,moderate,severe"

    /// 25 rows per study (`{study_id}_{condition}_{level}`), each row's three probabilities normalised to sum to 1.
    public static func csv(_ predictions: StudyPredictions) -> String {
        var lines = [header]
        lines.reserveCapacity(1 + predictions.count * 25)
        for s in 0..<predictions.count {
            for (c, column) in RSNA.labelColumns.enumerated() {
                lines.append(line(study: String(predictions.studyIDs[s]), column: c, (0..<3).map { predictions.probability(s, c, $0) }))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The rows `order` asks for (study id, label column index), in its order (Kaggle's sample_submission.csv):
    /// a study `predictions` holds gets its probabilities, any other study `fallback`'s (25 × 3, the run's best
    /// constant prediction), so that the file always holds every row asked for. Also returns the studies filled so.
    public static func csv(_ predictions: StudyPredictions, order: [(study: String, column: Int)],
                           fallback: [Double]) -> (text: String, filled: [String]) {
        precondition(fallback.count == 75, "a fallback has 25 × 3 probabilities")
        let rowOf = Dictionary(predictions.studyIDs.enumerated().map { (String($1), $0) }, uniquingKeysWith: { first, _ in first })
        var lines = [header], filled: [String] = [], seen: Set<String> = []
        lines.reserveCapacity(1 + order.count)
        for (study, c) in order {
            let p: [Double]
            if let s = rowOf[study] {
                p = (0..<3).map { predictions.probability(s, c, $0) }
            } else {
                p = Array(fallback[(c * 3)..<(c * 3 + 3)])
                if seen.insert(study).inserted { filled.append(study) }
            }
            lines.append(line(study: study, column: c, p))
        }
        return (lines.joined(separator: "\n") + "\n", filled)
    }

    /// One row: the id and the three probabilities normalised to sum to 1 (a third each when they sum to nothing).
    private static func line(study: String, column: Int, _ p: [Double]) -> String {
        let total = p.reduce(0, +)
        let q = total > 0 && total.isFinite ? p.map { $0 / total } : [1.0 / 3, 1.0 / 3, 1.0 / 3]
        return "\(study)_\(RSNA.labelColumns[column])," + q.map { String(format: "%.9f", $0) }.joined(separator: ",")
    }
}

/// Plain-text tables of a score: the four groups against the baseline, per condition-level losses, and
/// confusion matrices per condition; what `evaluate` prints.
public enum ScoreTable {
    /// The whole table for `score` read against `prior` (the baseline's score on the same studies).
    public static func text(_ score: RSNAScore, prior: RSNAScore) -> String {
        var out = [String(format: "RSNA score %.4f (baseline %.4f, ratio %.3f) over %d labelled rows", score.score, prior.score,
                          score.score / prior.score, score.labelledRows)]
        out.append("group".padding(toLength: 20, withPad: " ", startingAt: 0) + "     loss  baseline")
        for (name, (a, b)) in zip(RSNAScore.groupNames, zip(score.groups, prior.groups)) {
            out.append(name.padding(toLength: 20, withPad: " ", startingAt: 0) + String(format: " %8.4f  %8.4f", a, b))
        }
        out.append("")
        out.append("per level (weighted log loss; baseline)")
        out.append("condition".padding(toLength: 34, withPad: " ", startingAt: 0) + RSNA.levels.map { $0.padding(toLength: 16, withPad: " ", startingAt: 0) }.joined())
        for (c, condition) in RSNA.conditions.enumerated() {
            let cells = (0..<5).map { l -> String in
                String(format: "%.3f (%.3f)", score.columnLosses[c * 5 + l], prior.columnLosses[c * 5 + l]).padding(toLength: 16, withPad: " ", startingAt: 0)
            }
            out.append(condition.padding(toLength: 34, withPad: " ", startingAt: 0) + cells.joined())
        }
        out.append("")
        out.append("confusion matrices (rows: true normal/mild, moderate, severe; columns: predicted)")
        for (c, condition) in RSNA.conditions.enumerated() {
            out.append(condition)
            for row in score.confusion[c] { out.append("  " + row.map { String(format: "%6d", $0) }.joined()) }
        }
        return out.joined(separator: "\n")
    }
}
