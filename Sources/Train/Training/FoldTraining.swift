import Foundation
import Shards

/// What a fold's training takes from its run: the configuration, the shards, the fold's folder, the ranks, and whom
/// to tell about progress. Values only: the fold changes nothing of the run's (what it did, it returns).
public struct FoldContext {
    /// The configuration (resolved) and the shards trained on.
    public var config: TrainingConfig, dataset: ShardDataset
    /// The fold's folder in the run.
    public var folder: FoldFolder
    /// The ranks training together; rank 0 alone writes.
    public var ranks: TrainingRanks
    /// Called after every step with the progress, and after every epoch with the fold and its record.
    public var onProgress: ((TrainingProgress) -> Void)?, onEpoch: ((Int, EpochRecord) -> Void)?
    /// The optimiser steps this process may still take before it stops as if killed (`Trainer.Stopped`, after saving
    /// `last.safetensors`); nil: no limit.
    public var stepLimit: Int?

    /// The context of one fold's training.
    public init(config: TrainingConfig, dataset: ShardDataset, folder: FoldFolder, ranks: TrainingRanks = .single,
                onProgress: ((TrainingProgress) -> Void)? = nil, onEpoch: ((Int, EpochRecord) -> Void)? = nil, stepLimit: Int? = nil) {
        self.config = config
        self.dataset = dataset
        self.folder = folder
        self.ranks = ranks
        self.onProgress = onProgress
        self.onEpoch = onEpoch
        self.stepLimit = stepLimit
    }

    /// The device from the configuration.
    public var device: Device { config.device.device }
}

/// One fold's training, in the steps a trainer is made of (as nnU-Net's and timm's trainers are): `init`
/// sets up (seed, model, EMA, loaders, optimiser, schedule), `restore` continues from `last.safetensors`,
/// `trainEpoch` runs the steps of one epoch, `validate` scores it and keeps the best, `checkpoint` saves
/// everything an exact resume needs; `run` strings them together. The order of the set-up is part of the
/// contract: it decides what the seeded generators give, so a resumed fold ends bit-identical to an
/// uninterrupted one.
public final class FoldTraining {
    /// The fold, its folder, the split it is a fold of.
    public let fold: Int, folder: FoldFolder, split: FoldSplit
    /// The configuration and device.
    public let config: TrainingConfig, device: Device
    /// The model trained and, with `ema_decay` > 0, the exponential moving average of its weights (what is validated then).
    public let model: OrdinalClassifier, ema: OrdinalClassifier?
    /// The model's description (saved in checkpoints).
    public let spec: ModelSpec
    /// Training (shuffled, full batches) and validation loaders.
    public let trainLoader: ShardLoader, valLoader: ShardLoader
    /// Batches per epoch and optimiser steps of the whole fold.
    public let batchesPerEpoch: Int, totalSteps: Int
    /// The studies trained and validated on.
    public let trainStudies: Set<Int64>, valStudies: Set<Int64>
    /// Epochs finished so far (the next epoch's index, 0-based).
    public var epochsDone: Int { state.position.epoch }
    /// Every finished epoch's record.
    public var history: [EpochRecord] { state.history }
    /// Optimiser steps this process has taken in this fold (a resumed fold counts from the resume).
    public private(set) var stepsTaken = 0

    private let context: FoldContext
    private let optimizer: AdamW
    private let schedule: WarmupCosine
    private let step: TrainingStep
    private let augmenter: Augmenter
    private let prior: [Double]
    /// The validation studies in the order one process validates them (each rank scores every `ranks.count`-th).
    private let valOrder: [Int64]
    /// Every study's affine (two-stage models: the localizer's error is measured in patient millimetres).
    private let affines: [Int64: [Double]]
    private var state: TrainerState
    /// The EMA's tensors beside the model's, paired once (both are updated in place from here on).
    private let emaPairs: EMAPairs?
    private var ranks: TrainingRanks { context.ranks }

    /// Sets fold `fold` of `split` up: seeds libtorch with seed + fold, builds the model (what it takes from the training
    /// studies), the ranks' gradient reducer, the EMA, the loaders, the optimiser and the schedule, in that order.
    public init(_ context: FoldContext, fold: Int, split: FoldSplit) throws {
        let config = context.config, dataset = context.dataset, device = context.device
        self.context = context
        self.fold = fold
        self.split = split
        self.config = config
        self.device = device
        folder = context.folder
        if context.ranks.writes { try folder.create() }
        Torch.threads = config.threads > 0 ? config.threads : ProcessInfo.processInfo.activeProcessorCount
        Torch.manualSeed(config.seed &+ UInt64(fold))

        trainStudies = split.training(fold)
        valStudies = split.validation(fold)
        let (spec, model) = try Self.makeModel(config, dataset: dataset, trainStudies: trainStudies, device: device)
        self.spec = spec
        self.model = model
        let allReduce = try Self.makeAllReduce(model, config: config, ranks: context.ranks)
        let ema = try Self.makeEMA(of: model, spec: spec, config: config, device: device)
        self.ema = ema
        (trainLoader, valLoader, valOrder) = try Self.makeLoaders(config, dataset: dataset, ranks: context.ranks,
                                                                  trainStudies: trainStudies, valStudies: valStudies, fold: fold, device: device)
        batchesPerEpoch = trainLoader.batchesPerEpoch
        guard batchesPerEpoch > 0 else {
            throw TrainError(.configuration, "fold \(fold): \(trainLoader.samples.count) training samples make no full batch of \(config.batchSize); lower batch_size")
        }
        totalSteps = batchesPerEpoch * config.epochs
        (optimizer, schedule, step) = try Self.makeOptimization(model, config: config, batchesPerEpoch: batchesPerEpoch,
                                                                totalSteps: totalSteps, device: device)
        step.allReduce = allReduce
        augmenter = Augmenter(options: config.augmentation, seed: config.seed &+ UInt64(fold))
        augmenter.rankShare = context.ranks.share
        affines = model.locates ? try studyAffines(dataset) : [:]
        let labels = try studyLabels(dataset)
        prior = RSNAScore.prior(labels: Array(split.training(fold).sorted().compactMap { labels[$0] }.joined()))
        state = TrainerState(position: LoaderPosition(epoch: 0), step: 0, lossSum: 0, lossCount: 0, seconds: 0, samples: 0,
                             loaderSeconds: 0, history: [], bestScore: nil, bestEpoch: nil)
        emaPairs = ema.map { EMAPairs(ema: $0, model: model) }
    }

    /// The model of the configuration on `device`, with what it takes from the training studies (a level atlas, the
    /// conditions' offsets; saved with its weights). Its initial weights are the first draws from the seeded generator.
    private static func makeModel(_ config: TrainingConfig, dataset: ShardDataset, trainStudies: Set<Int64>,
                                  device: Device) throws -> (ModelSpec, OrdinalClassifier) {
        let spec = try config.modelSpec(gridSize: dataset.manifest.shape)
        let model = try spec.make()
        try model.prepare(trainingKeypoints: { try studyKeypoints(dataset, studies: trainStudies) })
        try model.move(to: device)
        return (spec, model)
    }

    /// In data-parallel training, the reducer of the ranks' gradients, after every rank has taken rank 0's model; nil for
    /// one process.
    private static func makeAllReduce(_ model: OrdinalClassifier, config: TrainingConfig, ranks: TrainingRanks) throws -> GradientAllReduce? {
        guard let group = ranks.group else { return nil }
        let bucketBytes = Int(config.bucketMegabytes * Double(1 << 20))
        let allReduce = try GradientAllReduce(group: group, parameters: model.namedParameters(), groups: model.parameterGroups,
                                              buffers: model.namedBuffers(),
                                              firstBucketBytes: min(GradientBuckets.firstBucketBytes, bucketBytes), bucketBytes: bucketBytes)
        try allReduce.synchronizeModel()
        return allReduce
    }

    /// With `ema_decay` > 0, the exponential moving average of `model`'s weights, starting as a copy of them (evaluation
    /// mode); nil otherwise. Made after the model, so its own initial draws do not change the model's.
    private static func makeEMA(of model: OrdinalClassifier, spec: ModelSpec, config: TrainingConfig, device: Device) throws -> OrdinalClassifier? {
        guard config.emaDecay > 0 else { return nil }
        let ema = try spec.make()
        try ema.move(to: device)
        try ema.update(parameters: model.stateDict())
        ema.eval()
        return ema
    }

    /// The training loader (shuffled by the fold's seed, full batches, this rank's share of every global batch) and the
    /// validation loader (this rank's share of the validation studies, in `valOrder`, one process's order).
    private static func makeLoaders(_ config: TrainingConfig, dataset: ShardDataset, ranks: TrainingRanks, trainStudies: Set<Int64>,
                                    valStudies: Set<Int64>, fold: Int, device: Device) throws
        -> (train: ShardLoader, validation: ShardLoader, valOrder: [Int64]) {
        let threads = config.loaderThreads > 0 ? config.loaderThreads : ProcessInfo.processInfo.activeProcessorCount
        // batch_size is the global batch: each rank reads its share of every batch one process would read.
        var trainOptions = LoaderOptions(batchSize: try ranks.localBatch(config.batchSize), shuffle: true,
                                         seed: config.seed &+ UInt64(fold) &* 7919, dropLast: true, threads: threads, prefetch: config.prefetch)
        trainOptions.rankShare = ranks.share
        trainOptions.sourcePixels = config.readsSourcePixels
        trainOptions.sourceChannels = config.sourceChannels
        let train = try ShardLoader(dataset: dataset, studies: trainStudies, options: trainOptions, device: device)
        let valOrder = dataset.studyIDs.filter { valStudies.contains($0) }
        var validationOptions = LoaderOptions(batchSize: config.batchSize, shuffle: false, dropLast: false, threads: threads, prefetch: config.prefetch)
        validationOptions.sourcePixels = config.readsSourcePixels
        validationOptions.sourceChannels = config.sourceChannels
        let validation = try ShardLoader(dataset: dataset, studies: ranks.validationShare(valOrder), options: validationOptions, device: device)
        return (train, validation, valOrder)
    }

    /// AdamW over `model`'s parameters, warm-up then cosine over the fold's `totalSteps`, and the step that uses them.
    private static func makeOptimization(_ model: OrdinalClassifier, config: TrainingConfig, batchesPerEpoch: Int, totalSteps: Int,
                                         device: Device) throws -> (AdamW, WarmupCosine, TrainingStep) {
        let optimizer = try AdamW(model.namedParameters(), learningRate: config.learningRate, betas: (config.beta1, config.beta2),
                                  eps: config.eps, weightDecay: config.weightDecay)
        let schedule = WarmupCosine(peak: config.learningRate, warmup: Int((config.warmupEpochs * Double(batchesPerEpoch)).rounded()),
                                    total: totalSteps, floor: config.minLearningRate)
        let step = TrainingStep(model: model, optimizer: optimizer, loss: CumulativeLinkLoss(classWeights: config.classWeights.map(Float.init)),
                                schedule: schedule, clipNorm: config.clipNorm > 0 ? config.clipNorm : nil,
                                mixedPrecision: config.bf16, device: device)
        return (optimizer, schedule, step)
    }

    /// Continues from `last.safetensors` when there is one (weights, optimiser, generators, EMA, loader position,
    /// history); returns whether it did.
    @discardableResult
    public func restore() throws -> Bool {
        guard FileManager.default.fileExists(atPath: folder.lastURL.path) else { return false }
        let saved = try Checkpoint.load(folder.lastURL, into: model, optimizer: optimizer, device: device)
        guard let json = saved.info[TrainerState.key],
              let restored = try? JSONDecoder.snakeCase.decode(TrainerState.self, from: Data(json.utf8)) else {
            throw TrainError(.runFolder, "\(folder.lastURL.path): holds no trainer state; train this fold again without --resume")
        }
        state = restored
        if let ema { try ema.update(parameters: Dictionary(uniqueKeysWithValues: saved.extra.compactMap { k, v in
            k.hasPrefix("ema/") ? (String(k.dropFirst(4)), v) : nil })) }
        step.step = state.step
        return true
    }

    /// Trains the rest of the current epoch (from the saved loader position), reporting progress after every step
    /// and saving `last.safetensors` every `checkpoint_every` steps.
    public func trainEpoch() throws {
        let epoch = state.position.epoch
        model.train()
        let batches = trainLoader.batches(from: state.position)
        var clock = Date()
        while let batch = try batches.next() {
            state.loaderSeconds = (state.loaderSeconds ?? 0) + Date().timeIntervalSince(clock)
            let augmented = try augmenter(batch, step: step.step)
            let loss = try step(config.modelInput(augmented.volumes, device: device), labels: augmented.labels, keypoints: augmented.keypoints,
                                sources: augmented.sources)
            guard loss.isFinite else {
                throw TrainError(.diverged, "fold \(fold), epoch \(epoch + 1), step \(step.step): the training loss is \(loss); lower the learning rate, or raise batch_size (BatchNorm needs 2 or more samples)")
            }
            if let emaPairs { try updateEMA(emaPairs) }
            let now = Date()
            state.seconds += now.timeIntervalSince(clock)
            clock = now
            state.lossSum += loss
            state.lossCount += 1
            state.samples += batch.count * ranks.count
            state.position = batches.position
            state.step = step.step
            stepsTaken += 1
            if let onProgress = context.onProgress {
                let rate = state.seconds > 0 ? Double(state.samples) / state.seconds : 0
                let stepsLeft = totalSteps - state.step
                onProgress(TrainingProgress(fold: fold, epoch: epoch + 1, epochs: config.epochs, batch: state.position.batch,
                                            batches: batchesPerEpoch, runningLoss: state.lossSum / Double(state.lossCount), samplesPerSecond: rate,
                                            etaSeconds: rate > 0 ? Double(stepsLeft * config.batchSize) / rate : 0))
            }
            if let limit = context.stepLimit, stepsTaken >= limit {
                try checkpoint()
                throw Trainer.Stopped(fold: fold, step: state.step)
            }
            if config.checkpointEvery > 0, state.step % config.checkpointEvery == 0 { try checkpoint() }
        }
    }

    /// Scores the epoch just trained on the validation studies (the EMA when there is one), appends its record to
    /// the history, keeps `best.safetensors` and `result.json` when it is the best so far, and moves to the next epoch.
    @discardableResult
    public func validate() throws -> EpochRecord {
        let epoch = state.position.epoch
        let evaluated = ema ?? model
        evaluated.eval()
        let (local, localPoints, _) = try predictLocating([evaluated], loader: valLoader, config: config)
        let predictions = try ranks.gather(local, ordered: valOrder)
        let points = try localPoints.map { try ranks.gather(located: $0, ordered: valOrder) }
        let score = RSNAScore(predictions)
        // No labelled point among the held-out studies: no error to record (rather than NaN millimetres).
        let located = points.map { localizationError($0, affines: affines) }
        let localization = located.flatMap { $0.points > 0 ? $0 : nil }
        let record = EpochRecord(epoch: epoch + 1, lr: schedule.learningRate(at: max(0, state.step - 1)),
                                 trainLoss: state.lossSum / Double(max(1, state.lossCount)), valLoss: score.loss, valScore: score.score,
                                 spinal: score.spinal, foraminal: score.foraminal, subarticular: score.subarticular,
                                 anySevereSpinal: score.anySevereSpinal,
                                 samplesPerSecond: state.seconds > 0 ? Double(state.samples) / state.seconds : 0, seconds: state.seconds,
                                 loaderSeconds: state.loaderSeconds ?? 0, localization: localization)
        state.history.append(record)
        if state.bestScore.map({ score.score < $0 }) ?? true {
            state.bestScore = score.score
            state.bestEpoch = epoch + 1
            let priorScore = RSNAScore(predictions.replacing(with: prior))
            if ranks.writes { try Checkpoint.saveWeights(evaluated, to: folder.bestURL) }
            if ranks.writes { try folder.save(FoldResult(fold: fold, valRsnaScore: score.score, priorRsnaScore: priorScore.score,
                                       bestEpoch: epoch + 1, spinal: score.spinal, foraminal: score.foraminal, subarticular: score.subarticular,
                                       anySevereSpinal: score.anySevereSpinal, best: score, prior: priorScore,
                                       trainStudies: trainStudies.count, valStudies: valStudies.count, localization: localization)) }
            if ranks.writes, let points { try folder.save(LocatedPoints(epoch: epoch + 1, located: points)) }
        }
        state.position = LoaderPosition(epoch: epoch + 1)
        state.lossSum = 0
        state.lossCount = 0
        state.seconds = 0
        state.loaderSeconds = 0
        state.samples = 0
        if ranks.writes { try folder.save(metrics: state.history) }
        return record
    }

    /// Saves `last.safetensors`: weights, optimiser, generators, EMA and the trainer state (loader position, running loss, history).
    public func checkpoint() throws {
        guard ranks.writes else { return }
        var extra: [String: Tensor] = [:]
        if let ema { for (k, v) in ema.stateDict() { extra["ema/" + k] = v } }
        let json = String(decoding: try JSONEncoder.pretty.encode(state), as: UTF8.self)
        try Checkpoint(epoch: state.position.epoch, step: state.step, info: [TrainerState.key: json, "model": spec.name], extra: extra)
            .save(model: model, optimizer: optimizer, to: folder.lastURL)
    }

    /// Trains the fold to its last epoch (continuing from `last.safetensors` with `resume`) and returns its result, with
    /// the last epoch's scores beside the best's (`finish`).
    @discardableResult
    public func run(resume: Bool) throws -> FoldResult {
        if resume { try restore() }
        while state.position.epoch < config.epochs {
            try trainEpoch()
            let record = try validate()
            try checkpoint()
            // The others wait until rank 0's files of this epoch are complete (they read them at the end or on resume).
            try ranks.barrier()
            context.onEpoch?(fold, record)
        }
        return try finish()
    }

    /// Adds the last epoch's held-out scores to the fold's result (`FoldResult.last`) and, with an EMA, those of the
    /// trained weights themselves (`lastWithoutEma`: one more pass over the held-out studies), so the best epoch's score,
    /// chosen on those studies, is read beside numbers no choice flattered. A result that has them already is returned as
    /// it is (a finished fold resumed).
    public func finish() throws -> FoldResult {
        var result = try folder.result()
        // Every rank decides from the file as it is before rank 0 rewrites it (else a slower rank could read the rewritten
        // result, skip the gather below and leave the others waiting in it).
        try ranks.barrier()
        guard result.last == nil, let record = state.history.last else { return result }
        result.last = EpochScores(record)
        if ema != nil {
            model.eval()
            let predictions = try ranks.gather(try predict([model], loader: valLoader, config: config), ordered: valOrder)
            result.lastWithoutEma = EpochScores(epoch: record.epoch, score: RSNAScore(predictions))
        }
        if ranks.writes { try folder.save(result) }
        try ranks.barrier()
        return result
    }

    /// The EMA's tensors paired with the model's: parameters of groups the model averages, and the rest (copied): buffers
    /// (BatchNorm statistics) and groups whose policy is `copied`, as a two-stage model's localizer. The localizer is not
    /// averaged: its heatmaps sharpen fast in the first epochs, and the average of its weights under the current BatchNorm statistics lags far behind (measured on
    /// the moving cohort after two epochs: the model's own localizer 7.0 mm held-out median, the EMA's 34 mm, a
    /// near-uniform heatmap), so validation would crop at the wrong levels while the classifier was already learning.
    private struct EMAPairs {
        var parameters: [(ema: Tensor, model: Tensor)] = [], copied: [(ema: Tensor, model: Tensor)] = []

        init(ema: Module, model: any TrainableModel) {
            let current = model.stateDict(), groups = model.parameterGroups
            let trainable = Set(model.namedParameters().map(\.0))
            for (name, target) in ema.stateDict().sorted(by: { $0.key < $1.key }) {
                guard let source = current[name] else { continue }
                if trainable.contains(name) && groups.group(of: name)?.policy.averaging == .averaged {
                    parameters.append((target, source))
                } else {
                    copied.append((target, source))
                }
            }
        }
    }

    /// EMA of the weights after a step: e ← d·e + (1 − d)·p for parameters; buffers (BatchNorm statistics) and the
    /// localizer copied.
    private func updateEMA(_ pairs: EMAPairs) throws {
        let d = config.emaDecay
        try Torch.noGrad {
            for (target, source) in pairs.parameters {
                try target.mul_(d)
                try target.add_(source, alpha: 1 - d)
            }
            for (target, source) in pairs.copied { try target.copy_(source) }
        }
    }

}
