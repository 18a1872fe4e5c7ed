import Foundation

/// One epoch of one fold: a row of `RUN/fold-I/metrics.csv`.
public struct EpochRecord: Codable, Equatable, Sendable {
    /// Epoch (1-based), the learning rate of its last step, the mean training loss.
    public var epoch: Int, lr: Double, trainLoss: Double
    /// Validation: weighted log loss over all labelled rows, the RSNA score and its four group losses.
    public var valLoss: Double, valScore: Double, spinal: Double, foraminal: Double, subarticular: Double, anySevereSpinal: Double
    /// Training samples per second and the epoch's training seconds (this process's share after a resume).
    public var samplesPerSecond: Double, seconds: Double
    /// Of `seconds`, those the training loop spent waiting for the loader's next batch (nil in runs made before
    /// it was recorded): what reading, decoding and batching did not hide behind the steps.
    public var loaderSeconds: Double?
    /// Two-stage models: the localizer's held-out error (mm) this epoch; nil for other models.
    public var localization: LocalizationError? = nil

    /// The localizer's columns: median and p90 over all points, then the median per level (empty cells for other models).
    static let localizationColumns = ["loc_median_mm", "loc_p90_mm"] + ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"].map { "loc_\($0)_mm" }
    /// Then the median and p90 per condition group (missing in runs made before they were recorded).
    static let localizationGroupColumns = ["canal", "foramen", "recess"].flatMap { ["loc_\($0)_median_mm", "loc_\($0)_p90_mm"] }

    /// The CSV header, matching `csvRow`.
    public static let csvHeader = "epoch,lr,train_loss,val_loss,val_score,spinal,foraminal,subarticular,any_severe_spinal,samples_per_s,seconds,loader_wait_s,"
        + (localizationColumns + localizationGroupColumns).joined(separator: ",")

    /// This record as a CSV row.
    public var csvRow: String {
        let values = [lr, trainLoss, valLoss, valScore, spinal, foraminal, subarticular, anySevereSpinal]
        return "\(epoch)," + values.map { String(format: "%.6g", $0) }.joined(separator: ",")
            + String(format: ",%.2f,%.1f,%.2f,", samplesPerSecond, seconds, loaderSeconds ?? 0)
            + (localization.map { l in
                let groups = zip(l.perGroupMedianMm ?? [.nan, .nan, .nan], l.perGroupP90Mm ?? [.nan, .nan, .nan]).flatMap { [$0, $1] }
                return ([l.medianMm, l.p90Mm] + l.perLevelMm + groups).map { String(format: "%.2f", $0) }
            } ?? Array(repeating: "", count: Self.localizationColumns.count + Self.localizationGroupColumns.count)).joined(separator: ",")
    }

    /// `metrics.csv`'s text: the header, then one row per record.
    public static func csv(_ history: [EpochRecord]) -> String { ([csvHeader] + history.map(\.csvRow)).joined(separator: "\n") + "\n" }

    /// The records of a `metrics.csv` text, read by column name (`loader_wait_s` may be missing, as in older runs).
    public static func parse(csv text: String) throws -> [EpochRecord] {
        let lines = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        guard let header = lines.first else { throw TrainError(.runFolder, "is empty") }
        return try lines.dropFirst().enumerated().map { index, row in
            guard row.count == header.count else { throw TrainError(.runFolder, "line \(index + 2): \(row.count) cells under \(header.count) columns") }
            let cells = Dictionary(zip(header, row), uniquingKeysWith: { a, _ in a })
            func number(_ column: String) throws -> Double {
                guard let cell = cells[column], let x = Double(cell) else { throw TrainError(.runFolder, "line \(index + 2): no number in column \(column)") }
                return x
            }
            return EpochRecord(epoch: Int(try number("epoch")), lr: try number("lr"), trainLoss: try number("train_loss"),
                               valLoss: try number("val_loss"), valScore: try number("val_score"), spinal: try number("spinal"),
                               foraminal: try number("foraminal"), subarticular: try number("subarticular"),
                               anySevereSpinal: try number("any_severe_spinal"), samplesPerSecond: try number("samples_per_s"),
                               seconds: try number("seconds"), loaderSeconds: cells["loader_wait_s"].flatMap(Double.init),
                               localization: Self.localizationColumns.allSatisfy({ cells[$0].flatMap(Double.init) != nil })
                                   ? LocalizationError(columns: Self.localizationColumns.map { Double(cells[$0]!)! },
                                                       groups: Self.localizationGroupColumns.allSatisfy({ cells[$0].flatMap(Double.init) != nil })
                                                           ? Self.localizationGroupColumns.map { Double(cells[$0]!)! } : nil) : nil)
        }
    }
}

/// One epoch's held-out scores: the RSNA score and its four group losses.
public struct EpochScores: Codable, Equatable, Sendable {
    /// The epoch (1-based), the RSNA score and its group losses.
    public var epoch: Int, valRsnaScore: Double, spinal: Double, foraminal: Double, subarticular: Double, anySevereSpinal: Double

    /// The scores of `score` at `epoch`.
    public init(epoch: Int, score: RSNAScore) {
        self.epoch = epoch
        valRsnaScore = score.score
        spinal = score.spinal
        foraminal = score.foraminal
        subarticular = score.subarticular
        anySevereSpinal = score.anySevereSpinal
    }

    /// The scores of an epoch's record.
    public init(_ record: EpochRecord) {
        epoch = record.epoch
        valRsnaScore = record.valScore
        spinal = record.spinal
        foraminal = record.foraminal
        subarticular = record.subarticular
        anySevereSpinal = record.anySevereSpinal
    }
}

/// What one fold achieved: its entry in `RUN/summary.json` (and `RUN/fold-I/result.json`).
///
/// The best epoch is chosen on the held-out studies it is scored on, so its score flatters the model; `last` (the epoch
/// training ended on, the same weights: the EMA's when `ema_decay` > 0) and `lastWithoutEma` (the trained weights
/// themselves at that epoch) show by how much. `evaluate` on studies no fold saw is the figure to quote.
public struct FoldResult: Codable, Equatable, Sendable {
    /// The fold, the best validation RSNA score, the baseline's score on the same studies, the best epoch (1-based).
    public var fold: Int, valRsnaScore: Double, priorRsnaScore: Double, bestEpoch: Int
    /// The best epoch's four group losses.
    public var spinal: Double, foraminal: Double, subarticular: Double, anySevereSpinal: Double
    /// The best epoch's full validation score (per-level losses, confusion matrices) and the baseline's.
    public var best: RSNAScore, prior: RSNAScore
    /// Studies trained on and validated on.
    public var trainStudies: Int, valStudies: Int
    /// Two-stage models: the localizer's held-out error (mm) at the best epoch.
    public var localization: LocalizationError? = nil
    /// The last epoch's held-out scores (nil until the fold has trained its last epoch, and in runs made before they were
    /// recorded).
    public var last: EpochScores? = nil
    /// With an EMA: the held-out scores of the trained weights themselves (not their moving average) at the last epoch.
    public var lastWithoutEma: EpochScores? = nil
}

/// `RUN/summary.json`: every fold's result, their mean score and the mean baseline score.
public struct RunSummary: Codable, Equatable, Sendable {
    /// Per fold, in fold order (the folds trained so far).
    public var folds: [FoldResult]
    /// Mean of the folds' best validation scores, and of their baselines' scores.
    public var meanValRsnaScore: Double, priorRsnaScore: Double
    /// Mean of the folds' last-epoch scores, and of those without the EMA (nil unless every fold has one).
    public var meanLastValRsnaScore: Double? = nil, meanLastWithoutEmaValRsnaScore: Double? = nil
    /// The best constant prediction from every labelled study of the run (25 × 3): `evaluate`'s baseline.
    public var priorProbabilities: [Double]
}

/// `fold-I/points.json` (two-stage models): the localizer's points of every label column (`RSNA.labelColumns` order:
/// the canal, the foramina and the recesses at each level) for every held-out study at the fold's best epoch, beside the
/// labels' (voxels (d, h, w) of the stored grid; null where a label has no point). The report draws a few studies' canal
/// points on their sagittal images.
public struct LocatedPoints: Codable, Equatable, Sendable {
    /// One held-out study.
    public struct Study: Codable, Equatable, Sendable {
        /// The study, its 25 predicted points and its 25 labelled points (null where absent).
        public var studyId: Int64, predicted: [[Double]], truth: [[Double]?]

        /// A study's points.
        public init(studyId: Int64, predicted: [[Double]], truth: [[Double]?]) {
            self.studyId = studyId
            self.predicted = predicted
            self.truth = truth
        }
    }
    /// The epoch (1-based) the points are from.
    public var epoch: Int
    /// Every held-out study, by study id.
    public var studies: [Study]

    /// From `predictLocating`'s located points (75 point and 75 keypoint values per study).
    public init(epoch: Int, located: [Int64: (points: [Float], keypoints: [Float])]) {
        self.epoch = epoch
        studies = located.keys.sorted().map { id in
            let v = located[id]!
            let columns = v.points.count / 3
            return Study(studyId: id, predicted: (0..<columns).map { l in (0..<3).map { Double(v.points[3 * l + $0]) } },
                         truth: (0..<columns).map { l in
                             let t = (0..<3).map { Double(v.keypoints[3 * l + $0]) }
                             return t.allSatisfy(\.isFinite) ? t : nil
                         })
        }
    }
}

/// Where a fold's training stands: stored in every resumable checkpoint, so a resumed run continues
/// exactly (same batches, same running loss, same history and best score).
struct TrainerState: Codable, Equatable {
    /// The next batch to train on, and optimiser steps taken.
    var position: LoaderPosition, step: Int
    /// Sum and count of batch losses in the current epoch, and its training seconds so far.
    var lossSum: Double, lossCount: Int, seconds: Double, samples: Int
    /// Of `seconds`, those spent waiting for the loader (nil in states saved before it was recorded).
    var loaderSeconds: Double?
    /// Finished epochs.
    var history: [EpochRecord]
    /// Best validation score so far and its epoch (1-based).
    var bestScore: Double?, bestEpoch: Int?

    static let key = "trainer.state"
}

/// `RUN/source.json`: the shards a run was trained on and their pipeline parameters, so that `predict`
/// can ingest a DICOM archive the same way.
public struct RunSource: Codable, Equatable, Sendable {
    /// The training shard folder, the pipeline parameters its manifest records, the grid shape (D, H, W).
    public var shards: String, parameters: [String: String], shape: [Int]

    /// A record of the training shards.
    public init(shards: String, parameters: [String: String], shape: [Int]) {
        self.shards = shards
        self.parameters = parameters
        self.shape = shape
    }
}
