import Foundation
import Shards

/// One fold's training, in the steps a trainer is made of (as nnU-Net's and timm's trainers are): `init`
/// sets up (seed, model, EMA, loaders, optimiser, schedule), `restore` continues from `last.safetensors`,
/// `trainEpoch` runs the steps of one epoch, `validate` scores it and keeps the best, `checkpoint` saves
/// everything an exact resume needs; `run` strings them together. The order of the set-up is part of the
/// contract: it decides what the seeded generators give, so a resumed fold ends bit-identical to an
/// uninterrupted one.
public final class FoldTraining {
    /// The fold, its folder, the split it is a fold of.
    public let fold: Int, folder: FoldFolder, split: FoldSplit
    /// The configuration and device (the trainer's).
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

    private unowned let trainer: Trainer
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

    /// Sets fold `fold` of `split` up for `trainer`: seeds libtorch with seed + fold, builds the model (its level
    /// atlas from the training studies), the EMA, the loaders, the optimiser and the schedule.
    public init(trainer: Trainer, fold: Int, split: FoldSplit) throws {
        let config = trainer.config, dataset = trainer.dataset, device = trainer.device
        self.trainer = trainer
        self.fold = fold
        self.split = split
        self.config = config
        self.device = device
        folder = trainer.folder.fold(fold)
        if trainer.ranks.writes { try folder.create() }
        Torch.threads = config.threads > 0 ? config.threads : ProcessInfo.processInfo.activeProcessorCount
        Torch.manualSeed(config.seed &+ UInt64(fold))

        let spec = try config.modelSpec(gridSize: dataset.manifest.shape)
        self.spec = spec
        let model = try spec.make()
        self.model = model
        // What the model takes from the training studies (a level atlas, the conditions' offsets) is saved with its weights.
        try model.prepare(trainingKeypoints: { try studyKeypoints(dataset, studies: Set(split.training(fold))) })
        try model.move(to: device)
        // Every rank starts from rank 0's model and sums its gradients into the global batch's during backward.
        let bucketBytes = Int(config.bucketMegabytes * Double(1 << 20))
        let allReduce = try trainer.ranks.group.map {
            try GradientAllReduce(group: $0, parameters: model.namedParameters(), groups: model.parameterGroups, buffers: model.namedBuffers(),
                                  firstBucketBytes: min(GradientBuckets.firstBucketBytes, bucketBytes), bucketBytes: bucketBytes)
        }
        try allReduce?.synchronizeModel()
        let ema = config.emaDecay > 0 ? try spec.make() : nil
        self.ema = ema
        if let ema {
            try ema.move(to: device)
            try ema.update(parameters: model.stateDict())
            ema.eval()
        }
        let trainStudies = split.training(fold), valStudies = split.validation(fold)
        self.trainStudies = trainStudies
        self.valStudies = valStudies
        let threads = config.loaderThreads > 0 ? config.loaderThreads : ProcessInfo.processInfo.activeProcessorCount
        // batch_size is the global batch: each rank reads its share of every batch one process would read.
        var trainOptions = LoaderOptions(batchSize: try trainer.ranks.localBatch(config.batchSize), shuffle: true,
                                         seed: config.seed &+ UInt64(fold) &* 7919, dropLast: true, threads: threads, prefetch: config.prefetch)
        trainOptions.rankShare = trainer.ranks.share
        trainLoader = try ShardLoader(dataset: dataset, studies: trainStudies, options: trainOptions, device: device)
        valOrder = dataset.studyIDs.filter { valStudies.contains($0) }
        valLoader = try ShardLoader(dataset: dataset, studies: trainer.ranks.validationShare(valOrder),
                                    options: LoaderOptions(batchSize: config.batchSize, shuffle: false, dropLast: false,
                                                           threads: threads, prefetch: config.prefetch),
                                    device: device)
        let batchesPerEpoch = trainLoader.batchesPerEpoch
        self.batchesPerEpoch = batchesPerEpoch
        guard batchesPerEpoch > 0 else {
            throw TrainError(.configuration, "fold \(fold): \(trainLoader.samples.count) training samples make no full batch of \(config.batchSize); lower batch_size")
        }
        let totalSteps = batchesPerEpoch * config.epochs
        self.totalSteps = totalSteps
        let optimizer = try AdamW(model.namedParameters(), learningRate: config.learningRate, betas: (config.beta1, config.beta2),
                              eps: config.eps, weightDecay: config.weightDecay)
        self.optimizer = optimizer
        let schedule = WarmupCosine(peak: config.learningRate, warmup: Int((config.warmupEpochs * Double(batchesPerEpoch)).rounded()),
                                total: totalSteps, floor: config.minLearningRate)
        self.schedule = schedule
        step = TrainingStep(model: model, optimizer: optimizer, loss: CumulativeLinkLoss(classWeights: config.classWeights.map(Float.init)),
                            schedule: schedule, clipNorm: config.clipNorm > 0 ? config.clipNorm : nil,
                            mixedPrecision: config.bf16, device: device)
        step.allReduce = allReduce
        let augmenter = Augmenter(options: config.augmentation, seed: config.seed &+ UInt64(fold))
        augmenter.rankShare = trainer.ranks.share
        self.augmenter = augmenter
        affines = model.locates ? try studyAffines(dataset) : [:]

        let labels = try studyLabels(dataset)
        prior = RSNAScore.prior(labels: Array(trainStudies.sorted().compactMap { labels[$0] }.joined()))
        state = TrainerState(position: LoaderPosition(epoch: 0), step: 0, lossSum: 0, lossCount: 0, seconds: 0, samples: 0,
                             loaderSeconds: 0, history: [], bestScore: nil, bestEpoch: nil)
        emaPairs = ema.map { EMAPairs(ema: $0, model: model) }
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
            let loss = try step(config.modelInput(augmented.volumes, device: device), labels: augmented.labels, keypoints: augmented.keypoints)
            guard loss.isFinite else {
                throw TrainError(.diverged, "fold \(fold), epoch \(epoch + 1), step \(step.step): the training loss is \(loss); lower the learning rate, or raise batch_size (BatchNorm needs 2 or more samples)")
            }
            if let emaPairs { try updateEMA(emaPairs) }
            let now = Date()
            state.seconds += now.timeIntervalSince(clock)
            clock = now
            state.lossSum += loss
            state.lossCount += 1
            state.samples += batch.count * trainer.ranks.count
            state.position = batches.position
            state.step = step.step
            trainer.stepsThisProcess += 1
            if let onProgress = trainer.onProgress {
                let rate = state.seconds > 0 ? Double(state.samples) / state.seconds : 0
                let stepsLeft = totalSteps - state.step
                onProgress(TrainingProgress(fold: fold, epoch: epoch + 1, epochs: config.epochs, batch: state.position.batch,
                                            batches: batchesPerEpoch, runningLoss: state.lossSum / Double(state.lossCount), samplesPerSecond: rate,
                                            etaSeconds: rate > 0 ? Double(stepsLeft * config.batchSize) / rate : 0))
            }
            if let stop = trainer.stopAfterSteps, trainer.stepsThisProcess >= stop {
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
        let (local, localPoints) = try predictLocating([evaluated], loader: valLoader, config: config)
        let predictions = try trainer.ranks.gather(local, ordered: valOrder)
        let points = try localPoints.map { try trainer.ranks.gather(located: $0, ordered: valOrder) }
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
            if trainer.ranks.writes { try Checkpoint.saveWeights(evaluated, to: folder.bestURL) }
            if trainer.ranks.writes { try folder.save(FoldResult(fold: fold, valRsnaScore: score.score, priorRsnaScore: priorScore.score,
                                       bestEpoch: epoch + 1, spinal: score.spinal, foraminal: score.foraminal, subarticular: score.subarticular,
                                       anySevereSpinal: score.anySevereSpinal, best: score, prior: priorScore,
                                       trainStudies: trainStudies.count, valStudies: valStudies.count, localization: localization)) }
            if trainer.ranks.writes, let points { try folder.save(LocatedPoints(epoch: epoch + 1, located: points)) }
        }
        state.position = LoaderPosition(epoch: epoch + 1)
        state.lossSum = 0
        state.lossCount = 0
        state.seconds = 0
        state.loaderSeconds = 0
        state.samples = 0
        if trainer.ranks.writes { try folder.save(metrics: state.history) }
        return record
    }

    /// Saves `last.safetensors`: weights, optimiser, generators, EMA and the trainer state (loader position, running loss, history).
    public func checkpoint() throws {
        guard trainer.ranks.writes else { return }
        var extra: [String: Tensor] = [:]
        if let ema { for (k, v) in ema.stateDict() { extra["ema/" + k] = v } }
        let json = String(decoding: try JSONEncoder.pretty.encode(state), as: UTF8.self)
        try Checkpoint(epoch: state.position.epoch, step: state.step, info: [TrainerState.key: json, "model": spec.name], extra: extra)
            .save(model: model, optimizer: optimizer, to: folder.lastURL)
    }

    /// Trains the fold to its last epoch (continuing from `last.safetensors` with `resume`) and returns its result.
    @discardableResult
    public func run(resume: Bool) throws -> FoldResult {
        if resume { try restore() }
        while state.position.epoch < config.epochs {
            try trainEpoch()
            let record = try validate()
            try checkpoint()
            // The others wait until rank 0's files of this epoch are complete (they read them at the end or on resume).
            try trainer.ranks.barrier()
            trainer.onEpoch?(fold, record)
        }
        return try folder.result()
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
