import Core
import Foundation
import Report
import Shards
import Train

/// The training report of a run folder: Train's typed records handed to Report as plain values (Report
/// imports neither Train nor libtorch, and parses no run file itself).
enum RunReport {
    /// Reads `summary.json` and every finished fold's `metrics.csv`, writes `report.html` and returns its URL.
    @discardableResult
    static func write(_ folder: RunFolder) throws -> URL {
        let summary = try folder.summary()
        let folds = try summary.folds.map { f in
            try TrainingReport.Fold(fold: f.fold, score: f.valRsnaScore, priorScore: f.priorRsnaScore, bestEpoch: f.bestEpoch,
                                spinal: f.spinal, foraminal: f.foraminal, subarticular: f.subarticular, anySevereSpinal: f.anySevereSpinal,
                                columnLosses: f.best.columnLosses, priorColumnLosses: f.prior.columnLosses, confusion: f.best.confusion,
                                epochs: try folder.fold(f.fold).metrics().map {
                                    var e = TrainingReport.Epoch(epoch: $0.epoch, trainLoss: $0.trainLoss, valLoss: $0.valLoss, valScore: $0.valScore, lr: $0.lr,
                                                                 localizerMedianMm: $0.localization?.medianMm, localizerP90Mm: $0.localization?.p90Mm,
                                                                 localizerPerLevelMm: $0.localization?.perLevelMm)
                                    e.localizerGroupMedianMm = $0.localization?.perGroupMedianMm
                                    e.localizerGroupP90Mm = $0.localization?.perGroupP90Mm
                                    return e
                                },
                                localizerPicture: localizerPicture(folder, fold: f.fold))
        }
        var withLast = folds
        for (i, f) in summary.folds.enumerated() {
            withLast[i].lastScore = f.last?.valRsnaScore
            withLast[i].lastWithoutEmaScore = f.lastWithoutEma?.valRsnaScore
        }
        let run = TrainingReport.Run(name: folder.url.lastPathComponent, meanScore: summary.meanValRsnaScore,
                                     priorScore: summary.priorRsnaScore, folds: withLast)
        return try TrainingReport.write(run, to: folder.reportURL)
    }

    /// Held-out studies drawn per picture.
    static let pictureStudies = 4

    /// Draws the first held-out studies of a two-stage fold with the localizer's points and the labels' into
    /// `RUN/localizer-fold-I.png` (written by the run folder, which `--overwrite` clears) and returns its name; nil for a fold without `points.json`. A shard folder that cannot
    /// be read any more (moved since training) leaves the picture out with a warning: the report is still written.
    static func localizerPicture(_ folder: RunFolder, fold: Int) throws -> String? {
        // The canal's points (the first five columns): the picture is one mid-sagittal image per study.
        guard let points = try folder.fold(fold).points(), !points.studies.isEmpty else { return nil }
        do {
            let dataset = try ShardDataset(directory: URL(fileURLWithPath: try folder.source().shards))
            let index = Dictionary(uniqueKeysWithValues: dataset.studyIDs.enumerated().map { ($1, $0) })
            let studies = try points.studies.prefix(pictureStudies).compactMap { s in
                try index[s.studyId].map { LocalizerPicture.Study(sample: try dataset.read($0), predicted: Array(s.predicted.prefix(RSNA.levels.count)),
                                                              truth: Array(s.truth.prefix(RSNA.levels.count))) }
            }
            guard !studies.isEmpty else { return nil }
            try folder.save(localizerPicture: try LocalizerPicture.png(studies), fold: fold)
            return folder.localizerPictureURL(fold: fold).lastPathComponent
        } catch {
            FileHandle.standardError.write(Data("warning: fold \(fold)'s localizer picture left out: \(error)\n".utf8))
            return nil
        }
    }
}
