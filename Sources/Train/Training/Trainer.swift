import Foundation
import Shards

/// A snapshot of training progress for a progress line: fold, epoch, step, running loss, speed and ETA.
public struct TrainingProgress: Sendable {
    /// Fold, epoch (1-based) and epochs; batch (1-based) in the epoch and batches per epoch.
    public var fold: Int, epoch: Int, epochs: Int, batch: Int, batches: Int
    /// Mean training loss of the epoch so far, training samples per second, seconds left in this fold.
    public var runningLoss: Double, samplesPerSecond: Double, etaSeconds: Double
}

/// Trains the folds of a run on shards: K-fold split by study, AdamW with warm-up + cosine, gradient
/// clipping, optional EMA and bf16 autocast; validates every epoch with the RSNA score against the
/// weighted-prior baseline; writes `fold-I/{metrics.csv,result.json,best.safetensors,last.safetensors}`.
/// `last.safetensors` holds everything an exact resume needs (weights, optimiser moments and step,
/// loader position, RNG, EMA, history).
public final class Trainer {
    /// The configuration (resolved).
    public let config: TrainingConfig
    /// The shards trained on.
    public let dataset: ShardDataset
    /// The run folder.
    public let run: URL
    /// Called after every step with the progress.
    public var onProgress: ((TrainingProgress) -> Void)?
    /// Called after every epoch with its record.
    public var onEpoch: ((Int, EpochRecord) -> Void)?
    /// Stops (as if killed, after saving `last.safetensors`) once this process has taken this many steps; for tests and demos of resume.
    public var stopAfterSteps: Int?

    /// Thrown when `stopAfterSteps` is reached.
    public struct Stopped: Error, CustomStringConvertible {
        /// The fold and the optimiser step where training stopped.
        public var fold: Int, step: Int
        /// A sentence saying where and how to go on.
        public var description: String { "stopped in fold \(fold) after step \(step); resume with --resume" }
    }

    private var stepsThisProcess = 0

    /// A trainer of `dataset` into the run folder `run` (created if needed).
    public init(config: TrainingConfig, dataset: ShardDataset, run: URL) throws {
        self.config = config
        self.dataset = dataset
        self.run = run
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
    }

    /// The device from the configuration (checked when the configuration is read).
    public var device: Device { Device(config.device) ?? .cpu }

    /// The run's split: `splits.json` when present (checked against the shards), otherwise made and saved.
    public func split() throws -> FoldSplit {
        let labels = try studyLabels(dataset)
        if let saved = try FoldSplit.load(run: run, studies: Set(labels.keys)) {
            guard saved.k == config.folds else {
                throw TorchError("\(run.appendingPathComponent(FoldSplit.fileName).path) has \(saved.k) folds, the configuration \(config.folds)")
            }
            return saved
        }
        let split = try FoldSplit(labels: labels, k: config.folds, seed: config.seed)
        try split.save(run: run)
        return split
    }

    /// Trains the given folds (nil: all), then writes `summary.json`. With `resume`, folds already finished are
    /// kept and an interrupted fold continues from its `last.safetensors`.
    @discardableResult
    public func train(folds: [Int]? = nil, resume: Bool = false) throws -> RunSummary {
        try config.yaml.write(to: run.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
        let split = try split()
        for fold in folds ?? Array(0..<split.k) {
            guard (0..<split.k).contains(fold) else { throw TorchError("fold \(fold) does not exist: the run has folds 0..<\(split.k)") }
            try train(fold: fold, split: split, resume: resume)
        }
        let labels = try studyLabels(dataset)
        let summary = try RunSummary.gather(run: run, split: split, prior: RSNAScore.prior(labels: Array(labels.values.joined())))
        try summary.save(run: run)
        return summary
    }

    /// The folder of fold `fold`.
    public func foldDirectory(_ fold: Int) -> URL { run.appendingPathComponent("fold-\(fold)") }

    /// Trains one fold to the end (or continues it with `resume`) and returns its result.
    @discardableResult
    public func train(fold: Int, split: FoldSplit, resume: Bool) throws -> FoldResult {
        let dir = foldDirectory(fold)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let lastURL = dir.appendingPathComponent("last.safetensors"), resultURL = dir.appendingPathComponent(FoldResult.fileName)
        if !resume {
            for name in ["last.safetensors", "best.safetensors", FoldResult.fileName, "metrics.csv"] {
                try? FileManager.default.removeItem(at: dir.appendingPathComponent(name))
            }
        }
        Torch.threads = config.threads > 0 ? config.threads : ProcessInfo.processInfo.activeProcessorCount
        Torch.manualSeed(config.seed &+ UInt64(fold))

        let spec = try config.modelSpec(gridSize: dataset.manifest.shape)
        let model = try spec.make()
        if let levels = model.backbone as? LevelCropBackbone {
            // The crops sit at the training studies' mean spinal keypoints (saved with the weights as `backbone.atlas`).
            let atlas = try LevelAtlas.mean(keypoints: try studyKeypoints(dataset, studies: Set(split.training(fold))))
            try Torch.noGrad { try levels.atlas.copy_(try Tensor(atlas, shape: [5, 3])) }
        }
        try model.move(to: device)
        let ema = config.emaDecay > 0 ? try spec.make() : nil
        if let ema {
            try ema.move(to: device)
            try ema.update(parameters: model.stateDict())
            ema.eval()
        }
        let trainStudies = split.training(fold), valStudies = split.validation(fold)
        let threads = config.loaderThreads > 0 ? config.loaderThreads : ProcessInfo.processInfo.activeProcessorCount
        let trainLoader = try ShardLoader(dataset: dataset, studies: trainStudies,
                                          options: LoaderOptions(batchSize: config.batchSize, shuffle: true, seed: config.seed &+ UInt64(fold) &* 7919,
                                                                 dropLast: true, threads: threads, prefetch: config.prefetch),
                                          device: device)
        let valLoader = try ShardLoader(dataset: dataset, studies: valStudies,
                                        options: LoaderOptions(batchSize: config.batchSize, shuffle: false, dropLast: false,
                                                               threads: threads, prefetch: config.prefetch),
                                        device: device)
        let perEpoch = trainLoader.batchesPerEpoch
        guard perEpoch > 0 else {
            throw TorchError("fold \(fold): \(trainLoader.samples.count) training samples make no full batch of \(config.batchSize); lower batch_size")
        }
        let total = perEpoch * config.epochs
        let optimizer = try AdamW(model.namedParameters(), learningRate: config.learningRate, betas: (config.beta1, config.beta2),
                                  eps: config.eps, weightDecay: config.weightDecay)
        let schedule = WarmupCosine(peak: config.learningRate, warmup: Int((config.warmupEpochs * Double(perEpoch)).rounded()),
                                    total: total, floor: config.minLearningRate)
        let step = TrainingStep(model: model, optimizer: optimizer, loss: CumulativeLinkLoss(classWeights: config.classWeights.map(Float.init)),
                                schedule: schedule, clipNorm: config.clipNorm > 0 ? config.clipNorm : nil,
                                mixedPrecision: config.bf16, device: device)
        let augmenter = Augmenter(options: config.augmentation, seed: config.seed &+ UInt64(fold))

        let labels = try studyLabels(dataset)
        let prior = RSNAScore.prior(labels: Array(trainStudies.sorted().compactMap { labels[$0] }.joined()))
        var state = TrainerState(position: LoaderPosition(epoch: 0), step: 0, lossSum: 0, lossCount: 0, seconds: 0, samples: 0,
                                 loaderSeconds: 0, history: [], bestScore: nil, bestEpoch: nil)
        if resume, FileManager.default.fileExists(atPath: lastURL.path) {
            let saved = try Checkpoint.load(lastURL, into: model, optimizer: optimizer, device: device)
            guard let json = saved.info[TrainerState.key],
                  let restored = try? JSONDecoder.snakeCase.decode(TrainerState.self, from: Data(json.utf8)) else {
                throw TorchError("\(lastURL.path): holds no trainer state; train this fold again without --resume")
            }
            state = restored
            if let ema { try ema.update(parameters: Dictionary(uniqueKeysWithValues: saved.extra.compactMap { k, v in
                k.hasPrefix("ema/") ? (String(k.dropFirst(4)), v) : nil })) }
            step.step = state.step
        }

        func save() throws {
            var extra: [String: Tensor] = [:]
            if let ema { for (k, v) in ema.stateDict() { extra["ema/" + k] = v } }
            let json = String(decoding: try JSONEncoder.pretty.encode(state), as: UTF8.self)
            try Checkpoint(epoch: state.position.epoch, step: state.step, info: [TrainerState.key: json, "model": spec.name], extra: extra)
                .save(model: model, optimizer: optimizer, to: lastURL)
        }

        // The EMA's tensors beside the model's, paired once (both are updated in place from here on).
        let emaPairs = ema.map { EMAPairs(ema: $0, model: model) }
        while state.position.epoch < config.epochs {
            let epoch = state.position.epoch
            model.train()
            let batches = trainLoader.batches(from: state.position)
            var clock = Date()
            while let batch = try batches.next() {
                state.loaderSeconds = (state.loaderSeconds ?? 0) + Date().timeIntervalSince(clock)
                let augmented = try augmenter(batch, step: step.step)
                let loss = try step(config.modelInput(augmented.volumes, device: device), labels: augmented.labels)
                guard loss.isFinite else {
                    throw TorchError("fold \(fold), epoch \(epoch + 1), step \(step.step): the training loss is \(loss); lower the learning rate, or raise batch_size (BatchNorm needs 2 or more samples)")
                }
                if let emaPairs { try updateEMA(emaPairs) }
                let now = Date()
                state.seconds += now.timeIntervalSince(clock)
                clock = now
                state.lossSum += loss
                state.lossCount += 1
                state.samples += batch.count
                state.position = batches.position
                state.step = step.step
                stepsThisProcess += 1
                if let onProgress {
                    let rate = state.seconds > 0 ? Double(state.samples) / state.seconds : 0
                    let stepsLeft = total - state.step
                    onProgress(TrainingProgress(fold: fold, epoch: epoch + 1, epochs: config.epochs, batch: state.position.batch,
                                                batches: perEpoch, runningLoss: state.lossSum / Double(state.lossCount), samplesPerSecond: rate,
                                                etaSeconds: rate > 0 ? Double(stepsLeft * config.batchSize) / rate : 0))
                }
                if let stop = stopAfterSteps, stepsThisProcess >= stop {
                    try save()
                    throw Stopped(fold: fold, step: state.step)
                }
                if config.checkpointEvery > 0, state.step % config.checkpointEvery == 0 { try save() }
            }
            let evaluated = ema ?? model
            evaluated.eval()
            let predictions = try predict([evaluated], loader: valLoader, config: config)
            let score = RSNAScore(predictions)
            let record = EpochRecord(epoch: epoch + 1, lr: schedule.learningRate(at: max(0, state.step - 1)),
                                     trainLoss: state.lossSum / Double(max(1, state.lossCount)), valLoss: score.loss, valScore: score.score,
                                     spinal: score.spinal, foraminal: score.foraminal, subarticular: score.subarticular,
                                     anySevereSpinal: score.anySevereSpinal,
                                     samplesPerSecond: state.seconds > 0 ? Double(state.samples) / state.seconds : 0, seconds: state.seconds,
                                     loaderSeconds: state.loaderSeconds ?? 0)
            state.history.append(record)
            if state.bestScore.map({ score.score < $0 }) ?? true {
                state.bestScore = score.score
                state.bestEpoch = epoch + 1
                try Checkpoint.saveWeights(evaluated, to: dir.appendingPathComponent("best.safetensors"))
                let result = FoldResult(fold: fold, valRsnaScore: score.score, priorRsnaScore: RSNAScore(predictions.replacing(with: prior)).score,
                                        bestEpoch: epoch + 1, spinal: score.spinal, foraminal: score.foraminal, subarticular: score.subarticular,
                                        anySevereSpinal: score.anySevereSpinal, best: score, prior: RSNAScore(predictions.replacing(with: prior)),
                                        trainStudies: trainStudies.count, valStudies: valStudies.count)
                try JSONEncoder.pretty.encode(result).write(to: resultURL, options: .atomic)
            }
            state.position = LoaderPosition(epoch: epoch + 1)
            state.lossSum = 0
            state.lossCount = 0
            state.seconds = 0
            state.loaderSeconds = 0
            state.samples = 0
            try writeMetrics(state.history, to: dir.appendingPathComponent("metrics.csv"))
            try save()
            onEpoch?(fold, record)
        }
        return try JSONDecoder.snakeCase.decode(FoldResult.self, from: Data(contentsOf: resultURL))
    }

    /// The EMA's tensors paired with the model's: parameters (averaged) and buffers (BatchNorm statistics, copied).
    private struct EMAPairs {
        var parameters: [(ema: Tensor, model: Tensor)] = [], buffers: [(ema: Tensor, model: Tensor)] = []

        init(ema: Module, model: Module) {
            let current = model.stateDict()
            let trainable = Set(model.namedParameters().map(\.0))
            for (name, target) in ema.stateDict().sorted(by: { $0.key < $1.key }) {
                guard let source = current[name] else { continue }
                if trainable.contains(name) { parameters.append((target, source)) } else { buffers.append((target, source)) }
            }
        }
    }

    /// EMA of the weights after a step: e ← d·e + (1 − d)·p for parameters; buffers (BatchNorm statistics) copied.
    private func updateEMA(_ pairs: EMAPairs) throws {
        let d = config.emaDecay
        try Torch.noGrad {
            for (target, source) in pairs.parameters {
                try target.mul_(d)
                try target.add_(source, alpha: 1 - d)
            }
            for (target, source) in pairs.buffers { try target.copy_(source) }
        }
    }

    private func writeMetrics(_ history: [EpochRecord], to url: URL) throws {
        let text = ([EpochRecord.csvHeader] + history.map(\.csvRow)).joined(separator: "\n") + "\n"
        try text.write(to: url, atomically: true, encoding: .utf8)
    }
}

/// Probabilities of every sample `loader` yields, averaged over `models` (evaluation mode, no gradients); the
/// volumes are prepared as `config` says (`TrainingConfig.modelInput`).
public func predict(_ models: [OrdinalClassifier], loader: ShardLoader, config: TrainingConfig) throws -> StudyPredictions {
    precondition(!models.isEmpty, "predict needs at least one model")
    for m in models { m.eval() }
    var ids: [Int64] = [], probs: [Double] = [], labels: [Int8] = []
    let batches = loader.batches(from: LoaderPosition(epoch: 0))
    try Torch.noGrad {
        while let batch = try batches.next() {
            let x = try config.modelInput(batch.volumes, device: loader.device)
            var sum: [Double]? = nil
            for m in models {
                let p = try m(x).to(.float32, device: .cpu).toArray(Float.self).map(Double.init)
                sum = sum.map { zip($0, p).map(+) } ?? p
            }
            probs += sum!.map { $0 / Double(models.count) }
            ids += batch.studyIDs
            labels += try batch.labels.to(device: .cpu).toArray(Int64.self).map { Int8(clamping: $0) }
        }
    }
    return StudyPredictions(studyIDs: ids, probabilities: probs, labels: labels)
}
