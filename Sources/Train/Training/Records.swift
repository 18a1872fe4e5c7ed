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

    /// The CSV header, matching `csvRow`.
    public static let csvHeader = "epoch,lr,train_loss,val_loss,val_score,spinal,foraminal,subarticular,any_severe_spinal,samples_per_s,seconds,loader_wait_s"

    /// This record as a CSV row.
    public var csvRow: String {
        let values = [lr, trainLoss, valLoss, valScore, spinal, foraminal, subarticular, anySevereSpinal]
        return "\(epoch)," + values.map { String(format: "%.6g", $0) }.joined(separator: ",")
            + String(format: ",%.2f,%.1f,%.2f", samplesPerSecond, seconds, loaderSeconds ?? 0)
    }
}

/// What one fold achieved: its entry in `RUN/summary.json` (and `RUN/fold-I/result.json`).
public struct FoldResult: Codable, Equatable, Sendable {
    /// The fold, the best validation RSNA score, the baseline's score on the same studies, the best epoch (1-based).
    public var fold: Int, valRsnaScore: Double, priorRsnaScore: Double, bestEpoch: Int
    /// The best epoch's four group losses.
    public var spinal: Double, foraminal: Double, subarticular: Double, anySevereSpinal: Double
    /// The best epoch's full validation score (per-level losses, confusion matrices) and the baseline's.
    public var best: RSNAScore, prior: RSNAScore
    /// Studies trained on and validated on.
    public var trainStudies: Int, valStudies: Int

    /// The file name inside a fold folder.
    public static let fileName = "result.json"
}

/// `RUN/summary.json`: every fold's result, their mean score and the mean baseline score.
public struct RunSummary: Codable, Equatable, Sendable {
    /// Per fold, in fold order (the folds trained so far).
    public var folds: [FoldResult]
    /// Mean of the folds' best validation scores, and of their baselines' scores.
    public var meanValRsnaScore: Double, priorRsnaScore: Double
    /// The best constant prediction from every labelled study of the run (25 × 3): `evaluate`'s baseline.
    public var priorProbabilities: [Double]

    /// The file name inside a run folder.
    public static let fileName = "summary.json"

    /// Gathers `fold-I/result.json` for every fold of the split that has one.
    public static func gather(run: URL, split: FoldSplit, prior: [Double]) throws -> RunSummary {
        var folds: [FoldResult] = []
        for fold in 0..<split.k {
            let url = run.appendingPathComponent("fold-\(fold)").appendingPathComponent(FoldResult.fileName)
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            folds.append(try JSONDecoder.snakeCase.decode(FoldResult.self, from: Data(contentsOf: url)))
        }
        let n = Double(max(1, folds.count))
        return RunSummary(folds: folds, meanValRsnaScore: folds.map(\.valRsnaScore).reduce(0, +) / n,
                          priorRsnaScore: folds.map(\.priorRsnaScore).reduce(0, +) / n, priorProbabilities: prior)
    }

    /// Reads `run/summary.json`.
    public static func load(run: URL) throws -> RunSummary {
        let url = run.appendingPathComponent(fileName)
        do { return try JSONDecoder.snakeCase.decode(RunSummary.self, from: Data(contentsOf: url)) } catch {
            throw TorchError("\(url.path): cannot read the run's summary (\(error)); has `fuse3d train` finished a fold?")
        }
    }

    /// Writes `run/summary.json`.
    public func save(run: URL) throws {
        try JSONEncoder.pretty.encode(self).write(to: run.appendingPathComponent(Self.fileName), options: .atomic)
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

    /// The file name inside a run folder.
    public static let fileName = "source.json"

    /// Reads `run/source.json`.
    public static func load(run: URL) throws -> RunSource {
        let url = run.appendingPathComponent(fileName)
        do { return try JSONDecoder.snakeCase.decode(RunSource.self, from: Data(contentsOf: url)) } catch {
            throw TorchError("\(url.path): cannot read the run's source (\(error))")
        }
    }

    /// Writes `run/source.json`.
    public func save(run: URL) throws {
        try JSONEncoder.pretty.encode(self).write(to: run.appendingPathComponent(Self.fileName), options: .atomic)
    }
}
