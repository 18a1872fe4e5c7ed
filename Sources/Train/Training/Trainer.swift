import Foundation
import Shards

/// A snapshot of training progress for a progress line: fold, epoch, step, running loss, speed and ETA.
public struct TrainingProgress: Sendable {
    /// Fold, epoch (1-based) and epochs; batch (1-based) in the epoch and batches per epoch.
    public var fold: Int, epoch: Int, epochs: Int, batch: Int, batches: Int
    /// Mean training loss of the epoch so far, training samples per second, seconds left in this fold.
    public var runningLoss: Double, samplesPerSecond: Double, etaSeconds: Double
}

/// Trains the folds of a run on shards: K-fold split by study, each fold trained by a `FoldTraining`
/// (AdamW with warm-up + cosine, gradient clipping, optional EMA and bf16 autocast, validation every epoch
/// with the RSNA score against the weighted-prior baseline), all files written through the `RunFolder`.
/// A folder that already holds fold results is trained into only with `resume` (finished folds kept, an
/// interrupted one continued exactly) or `overwrite` (the earlier run's files deleted first).
public final class Trainer {
    /// The configuration (resolved).
    public let config: TrainingConfig
    /// The shards trained on.
    public let dataset: ShardDataset
    /// The run folder's location.
    public var run: URL { folder.url }
    /// The run folder.
    public let folder: RunFolder
    /// Called after every step with the progress.
    public var onProgress: ((TrainingProgress) -> Void)?
    /// Called after every epoch with its record.
    public var onEpoch: ((Int, EpochRecord) -> Void)?
    /// The ranks training together (one process by default); rank 0 alone writes the run folder.
    public var ranks = TrainingRanks.single
    /// Stops (as if killed, after saving `last.safetensors`) once this process has taken this many steps; for tests and demos of resume.
    public var stopAfterSteps: Int?

    /// Thrown when `stopAfterSteps` is reached.
    public struct Stopped: Error, CustomStringConvertible {
        /// The fold and the optimiser step where training stopped.
        public var fold: Int, step: Int
        /// A sentence saying where and how to go on.
        public var description: String { "stopped in fold \(fold) after step \(step); resume with --resume" }
    }

    /// Optimiser steps this process has taken (across folds), for `stopAfterSteps`.
    var stepsThisProcess = 0

    /// A trainer of `dataset` into the run folder `run`; nothing is written until `train`.
    public init(config: TrainingConfig, dataset: ShardDataset, run: URL) throws {
        self.config = config
        self.dataset = dataset
        folder = RunFolder(run)
    }

    /// The device from the configuration.
    public var device: Device { config.device.device }

    /// What `train(folds:resume:overwrite:)` will train, checked before anything is written: the folds exist
    /// (0..<K), a saved split fits the shards and K, and the folder holds no results unless `resume` or
    /// `overwrite` says what to do with them. Returns the folds (nil: all).
    public func plan(folds: [Int]? = nil, resume: Bool = false, overwrite: Bool = false) throws -> [Int] {
        let k = config.folds
        let list = folds ?? Array(0..<k)
        if let bad = list.first(where: { !(0..<k).contains($0) }) {
            throw TrainError(.configuration, "fold \(bad) does not exist: the run has folds 0..<\(k)")
        }
        if overwrite { return list }
        if !resume, folder.holdsResults {
            let found = folder.foldsWithResults().map { "fold-\($0)" } + (FileManager.default.fileExists(atPath: folder.summaryURL.path) ? [RunFolder.summaryName] : [])
            throw TrainError(.runFolder, "\(folder.url.path) already holds results of a training run (\(found.joined(separator: ", "))): "
                             + "continue it with --resume, replace it with --overwrite, or give another --out")
        }
        if let saved = try folder.split(studies: Set(try studyLabels(dataset).keys)), saved.k != k {
            throw TrainError(.configuration, "\(folder.splitsURL.path) has \(saved.k) folds, the configuration \(k); train with --overwrite to split again")
        }
        return list
    }

    /// The run's split: `splits.json` when present (checked against the shards), otherwise made and saved.
    public func split() throws -> FoldSplit {
        let labels = try studyLabels(dataset)
        if let saved = try folder.split(studies: Set(labels.keys)) {
            guard saved.k == config.folds else {
                throw TrainError(.configuration, "\(folder.splitsURL.path) has \(saved.k) folds, the configuration \(config.folds); train with --overwrite to split again")
            }
            return saved
        }
        let split = try FoldSplit(labels: labels, k: config.folds, seed: config.seed)
        try folder.save(split)
        return split
    }

    /// Trains the given folds (nil: all), then writes `summary.json`. Checks `plan` first (nothing is written
    /// when it throws). With `resume`, folds already finished are kept and an interrupted fold continues from
    /// its `last.safetensors`; with `overwrite`, the run's earlier files are deleted first (a failed delete is an error).
    @discardableResult
    public func train(folds: [Int]? = nil, resume: Bool = false, overwrite: Bool = false) throws -> RunSummary {
        let list = try plan(folds: folds, resume: resume, overwrite: overwrite)
        if ranks.writes {
            if overwrite { try folder.clear() }
            try folder.create()
            try folder.save(RunSource(shards: dataset.directory.path, parameters: dataset.manifest.parameters, shape: dataset.manifest.shape))
            try folder.save(config)
            _ = try split()
        }
        // The other ranks read the split rank 0 saved.
        try ranks.barrier()
        let split = try split()
        for fold in list { try train(fold: fold, split: split, resume: resume) }
        let labels = try studyLabels(dataset)
        let summary = try folder.gatherSummary(split: split, prior: RSNAScore.prior(labels: Array(labels.values.joined())))
        if ranks.writes { try folder.save(summary) }
        return summary
    }

    /// The folder of fold `fold`.
    public func foldDirectory(_ fold: Int) -> URL { folder.fold(fold).url }

    /// Trains one fold to the end (or continues it with `resume`; without it, the fold's files are deleted
    /// first) and returns its result.
    @discardableResult
    public func train(fold: Int, split: FoldSplit, resume: Bool) throws -> FoldResult {
        if !resume && ranks.writes { try folder.fold(fold).clear() }
        try ranks.barrier()
        let context = FoldContext(config: config, dataset: dataset, folder: folder.fold(fold), ranks: ranks, onProgress: onProgress,
                                  onEpoch: onEpoch, stepLimit: stopAfterSteps.map { $0 - stepsThisProcess })
        let training = try FoldTraining(context, fold: fold, split: split)
        // Counted also when the fold stops early (`Stopped`), as the steps were taken.
        defer { stepsThisProcess += training.stepsTaken }
        return try training.run(resume: resume)
    }
}

/// Probabilities of every sample `loader` yields, averaged over `models` (evaluation mode, no gradients); the
/// volumes are prepared as `config` says (`TrainingConfig.modelInput`). With `flip`, each model also reads every
/// volume mirrored left-right (the d axis reversed, as the training flips do), its left and right label columns are
/// swapped back (`Augmenter.flipPermutation`) and the two readings averaged: test-time augmentation.
public func predict(_ models: [any TrainableModel], loader: ShardLoader, config: TrainingConfig, flip: Bool = false) throws -> StudyPredictions {
    try predictLocating(models, loader: loader, config: config, flip: flip).predictions
}

/// `predict`, and for models that locate also the label columns' points they found in the same forward passes (study id →
/// 25 × 3 voxels (d, h, w) averaged over the models, from the unmirrored readings, beside the samples' 75 keypoint values;
/// nil for other models): validation, evaluate and predict --keypoints read the shards once.
public func predictLocating(_ models: [any TrainableModel], loader: ShardLoader, config: TrainingConfig, flip: Bool = false) throws
    -> (predictions: StudyPredictions, located: [Int64: (points: [Float], keypoints: [Float])]?, sourceCrops: SourceCropTally?) {
    precondition(!models.isEmpty, "predict needs at least one model")
    for m in models { m.eval() }
    let locating = models.allSatisfy(\.locates)
    var ids: [Int64] = [], probs: [Double] = [], labels: [Int8] = []
    var located: [Int64: (points: [Float], keypoints: [Float])] = [:]
    var tally: SourceCropTally? = nil
    let batches = loader.batches(from: LoaderPosition(epoch: 0))
    let swap = try flip ? Tensor(Augmenter.flipPermutation.map(Int64.init), device: loader.device) : nil
    let readings = Double(models.count * (flip ? 2 : 1))
    try Torch.noGrad {
        while let batch = try batches.next() {
            let x = try config.modelInput(batch.volumes, device: loader.device)
            let mirrored = try swap.map { _ in try x.flip([2]) }
            let mirroredSources = try swap.flatMap { _ in try batch.sources?.mirrored(depth: x.shape[2]) }
            var sum: [Double]? = nil, pointSum: [Float]? = nil
            func add(_ p: Tensor) throws {
                let values = try p.to(.float32, device: .cpu).toArray(Float.self).map(Double.init)
                sum = sum.map { zip($0, values).map(+) } ?? values
            }
            for (n, m) in models.enumerated() {
                let output = try m.forward(ModelInput(x, sources: batch.sources))
                try add(output.probabilities)
                if n == 0, let fromSlices = output.located?.fromSlices {
                    let groups = ((m as? OrdinalClassifier)?.backbone as? TwoStageBackbone)?.layout.sourceCrops?.groups ?? [0, 1, 2]
                    tally = (tally ?? SourceCropTally(groups: groups)).adding(try fromSlices.to(.float32, device: .cpu).toArray(Float.self).map { $0 > 0 })
                }
                if let mirrored, let swap {
                    // Column k of the original is column flipPermutation[k] of the mirror image.
                    try add(try m.forward(ModelInput(mirrored, sources: mirroredSources)).probabilities.indexSelect(dim: 1, index: swap))
                }
                if locating, let points = output.located?.columns {
                    let q = try points.to(.float32, device: .cpu).toArray(Float.self)
                    pointSum = pointSum.map { zip($0, q).map(+) } ?? q
                }
            }
            probs += sum!.map { $0 / readings }
            ids += batch.studyIDs
            labels += try batch.labels.to(device: .cpu).toArray(Int64.self).map { Int8(clamping: $0) }
            if let pointSum { try recordLocated(pointSum, models: models.count, batch: batch, into: &located) }
        }
    }
    return (StudyPredictions(studyIDs: ids, probabilities: probs, labels: labels), locating ? located : nil, tally)
}

/// How many stage-two crops a model that crops source slices cut from them, per condition group (the spinal canal, the
/// neural foramina, the subarticular recesses); the others fell back to the grid (their series missing, or no slice of
/// it within reach of the point). Groups the model reads from the grid (`SourceCrops.groups`) are counted apart.
public struct SourceCropTally: Codable, Equatable, Sendable {
    /// Per group: crops from the slices, and all crops.
    public var fromSlices = [0, 0, 0], crops = [0, 0, 0]
    /// The groups the model reads from their series' slices.
    public var groups: [Int]

    /// None yet, for a model reading `groups` from the slices.
    public init(groups: [Int] = [0, 1, 2]) { self.groups = groups }

    /// With a batch's (B · 25) flags, label-column order, added.
    func adding(_ flags: [Bool]) -> SourceCropTally {
        var out = self
        for (i, flag) in flags.enumerated() {
            let group = RSNAScore.group(ofColumn: i % 25)
            out.crops[group] += 1
            if flag { out.fromSlices[group] += 1 }
        }
        return out
    }

    /// "stage-two crops from the source slices: recesses 71/80 (the rest from the grid: their series missing, or no slice
    /// of it near the point); canal, foramina read from the grid (two_stage.source_crop_groups)".
    public var description: String {
        let names = ["canal", "foramina", "recesses"]
        let read = groups.sorted(), fromGrid = (0..<3).filter { !groups.contains($0) }
        if read.isEmpty { return "stage-two crops: every group read from the grid (two_stage.source_crop_groups)" }
        var text = "stage-two crops from the source slices: " + read.map { "\(names[$0]) \(fromSlices[$0])/\(crops[$0])" }.joined(separator: ", ")
        if read.contains(where: { fromSlices[$0] < crops[$0] }) { text += " (the rest from the grid: their series missing, or no slice of it near the point)" }
        if !fromGrid.isEmpty { text += "; " + fromGrid.map { names[$0] }.joined(separator: ", ") + " read from the grid (two_stage.source_crop_groups)" }
        return text
    }
}
