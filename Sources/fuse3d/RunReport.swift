import Foundation
import Report
import Train

/// The training report of a run folder: Train's typed records handed to Report as plain values (Report
/// imports neither Train nor libtorch, and parses no run file itself).
enum RunReport {
    /// Reads `summary.json` and every finished fold's `metrics.csv`, writes `report.html` and returns its URL.
    @discardableResult
    static func write(_ folder: RunFolder) throws -> URL {
        let summary = try folder.summary()
        let folds = try summary.folds.map { f in
            TrainingReport.Fold(fold: f.fold, score: f.valRsnaScore, priorScore: f.priorRsnaScore, bestEpoch: f.bestEpoch,
                                spinal: f.spinal, foraminal: f.foraminal, subarticular: f.subarticular, anySevereSpinal: f.anySevereSpinal,
                                columnLosses: f.best.columnLosses, priorColumnLosses: f.prior.columnLosses, confusion: f.best.confusion,
                                epochs: try folder.fold(f.fold).metrics().map {
                                    TrainingReport.Epoch(epoch: $0.epoch, trainLoss: $0.trainLoss, valLoss: $0.valLoss, valScore: $0.valScore, lr: $0.lr,
                                                         localizerMedianMm: $0.localization?.medianMm, localizerP90Mm: $0.localization?.p90Mm,
                                                         localizerPerLevelMm: $0.localization?.perLevelMm)
                                })
        }
        let run = TrainingReport.Run(name: folder.url.lastPathComponent, meanScore: summary.meanValRsnaScore,
                                     priorScore: summary.priorRsnaScore, folds: folds)
        return try TrainingReport.write(run, to: folder.reportURL)
    }
}
