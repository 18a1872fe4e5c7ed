import ArgumentParser
#if canImport(Glibc)
@preconcurrency import Glibc  // for `stdout`, a C global (set once at start); before Foundation, which imports it plainly
#endif
import Core
import Foundation
import Report
import Shards
import Train

/// `fuse3d train`: K-fold training on shards, with validation by the RSNA score, checkpoints and a report.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train ordinal 3D models on shards with K-fold cross-validation (RSNA 2024 score against the best constant baseline).",
        discussion: """
        Without a configuration it trains the recommended model: two stages (a localizer finds each lumbar level on
        the coarse grid; one 8×10×10 crop per label column at its condition's point, right-side crops mirrored, goes
        through one EfficientNet-3D b0 at width 0.25), 16 epochs, batch 8, AdamW 3e-3, EMA 0.95, left-right flips.
        Splits the studies into K folds (stratified on the worst spinal grade; RUN/splits.json, reused), trains each fold
        (AdamW, warm-up + cosine, gradient clipping, optional EMA and bf16 autocast), validates every epoch and writes
        RUN/config.yaml, RUN/fold-I/{metrics.csv,best.safetensors,last.safetensors}, RUN/summary.json and RUN/report.html.
        A killed run continues exactly where it stopped with --resume. A folder that already holds fold results is
        refused unless --resume (continue it) or --overwrite (delete the earlier run's files first) is given; nothing
        is written before the folds, the folder and the configuration are checked. Flags override the --config file.
        Started by torchrun or srun as several ranks (or with --nproc N), the ranks average gradients over c10d (Gloo on
        the CPU, NCCL on CUDA): --batch is the global batch, split across the ranks; rank 0 alone writes the run folder;
        --resume continues at any rank count (bit for bit at the same one). Multi-node examples: docs/slurm-train.sbatch, docs/k8s-train-indexed-job.yaml.

        """ + "\n" + configurationKeys + "\n\n" + """
        Example:
          fuse3d train demo-out/shards --out demo-out/run --fold 0
          fuse3d train /data/shards --out /data/run --config train.yaml --fold 0 --device cuda --resume
          fuse3d train demo-out/shards --out demo-out/run --epochs 30 --overwrite
          fuse3d train demo-out/shards --out demo-out/run --batch 8 --nproc 2       # two ranks on this machine
          torchrun --nproc-per-node 4 --no-python fuse3d train /data/shards --out /data/run --device cuda --batch 64
        """)

    /// The keys a --config file may hold, from the configuration's own key table.
    static var configurationKeys: String {
        (["Configuration keys (--config FILE, YAML; RUN/config.yaml lists them resolved):"] + TrainingConfig.keyHelp.map { "  " + $0 })
            .joined(separator: "\n")
    }

    @Argument(help: "The shard folder (with manifest.json) to train on.")
    var shards: String

    @Option(help: "The run folder (created).")
    var out: String

    @Option(help: "A training configuration (YAML); unknown keys are errors.")
    var config: String?

    @Option(help: "Model: efficientnet3d or vit3d.") var model: String?
    @Option(help: "EfficientNet width multiplier (e.g. 0.25 for a small model).") var width: Double?
    @Option(help: "Number of folds K.") var folds: Int?
    @Option(help: "Train only fold I (0-based); default: every fold.") var fold: Int?
    @Option(help: "Epochs per fold.") var epochs: Int?
    @Option(help: "Samples per batch.") var batch: Int?
    @Option(help: "Peak learning rate.") var lr: Double?
    @Option(help: "Seed of the split, the initialisation and the sample order.") var seed: UInt64?
    @Option(help: "cpu, cuda or cuda:N.", transform: SharedChecks.device) var device: DeviceSetting?
    @Option(help: "libtorch threads (default: all cores).") var threads: Int?
    @Flag(help: "Continue an interrupted run from its last checkpoints (finished folds are kept).") var resume = false
    @Flag(help: "Delete the earlier run's files in --out (fold results, checkpoints, split, summary) and train afresh.") var overwrite = false
    @Option(help: "Start N ranks on this machine (data-parallel over Gloo/NCCL; --batch stays the global batch). torchrun and srun start ranks themselves.")
    var nproc: Int?
    @Option(help: "Seconds a rank waits for the others (rendezvous and each collective) before it fails.") var distTimeout = 300
    @Option(help: .hidden) var stopAfterSteps: Int?

    func validate() throws {
        try SharedChecks.shardFolder(shards)
        if let model, !ModelSpec.names.contains(model) { throw ValidationError("--model must be one of \(ModelSpec.names.joined(separator: ", ")), not \(model)") }
        if let folds, folds < 2 { throw ValidationError("--folds must be at least 2.") }
        if let fold, fold < 0 { throw ValidationError("--fold must be 0 or more.") }
        if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1.") }
        if let batch, batch < 1 { throw ValidationError("--batch must be at least 1.") }
        if let lr, !(lr > 0) { throw ValidationError("--lr must be positive.") }
        if let width, !(width > 0) { throw ValidationError("--width must be positive.") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1.") }
        if let nproc, nproc < 1 { throw ValidationError("--nproc must be at least 1.") }
        if distTimeout < 1 { throw ValidationError("--dist-timeout must be at least 1 second.") }
        if resume && overwrite { throw ValidationError("--resume and --overwrite exclude each other: continue the run, or replace it.") }
    }

    /// The configuration: the --config file (or the run's own config.yaml when resuming), then the flags.
    func resolvedConfig() throws -> TrainingConfig {
        let runConfig = URL(fileURLWithPath: out).appendingPathComponent("config.yaml")
        var c: TrainingConfig
        if let config { c = try TrainingConfig.load(URL(fileURLWithPath: config)) }
        else if resume, FileManager.default.fileExists(atPath: runConfig.path) { c = try RunFolder(URL(fileURLWithPath: out)).config() }
        else { c = TrainingConfig() }
        if let model {
            c.model = model
            // As in a configuration file, vit3d takes the whole grid: the two-stage default is efficientnet3d's.
            if model == "vit3d" { c.twoStage = nil }
        }
        if let width { c.width = width }
        if let folds { c.folds = folds }
        if let epochs { c.epochs = epochs }
        if let batch { c.batchSize = batch }
        if let lr { c.learningRate = lr }
        if let seed { c.seed = seed }
        if let device { c.device = device }
        if let threads { c.threads = threads }
        return c
    }

    func run() throws {
        // Epoch lines reach a log file as they happen, not when the buffer fills.
        setvbuf(stdout, nil, _IOLBF, 0)
        if let nproc, nproc > 1 {
            guard try LaunchEnvironment.detect() == nil else {
                throw ValidationError("--nproc starts ranks itself: drop it when torchrun or srun starts fuse3d as several ranks.")
            }
            let status = try LocalRanks.run(count: nproc, arguments: LocalRanks.argumentsWithoutNproc())
            if status != 0 { throw ExitCode(status) }
            return
        }
        var config = try resolvedConfig()
        let ranks = try DistributedLaunch.join(config: &config, timeout: distTimeout)
        try Torch.validate(config.device.device)
        let runURL = URL(fileURLWithPath: out)
        let dataset = try ShardDataset(directory: URL(fileURLWithPath: shards))
        let trainer = try Trainer(config: config, dataset: dataset, run: runURL)
        trainer.stopAfterSteps = stopAfterSteps
        trainer.ranks = ranks
        // Checked before the banner and before any file is written.
        let foldList = try trainer.plan(folds: fold.map { [$0] }, resume: resume, overwrite: overwrite)
        guard ranks.writes else {
            // The other ranks train silently; rank 0 prints and writes.
            do { try trainer.train(folds: foldList, resume: resume, overwrite: overwrite) } catch is Trainer.Stopped { throw ExitCode(3) }
            return
        }
        print("training \(config.model)\(config.width.map { " width \($0)" } ?? "") on \(dataset.count) studies of \(dataset.manifest.shape): "
              + "folds \(foldList.map(String.init).joined(separator: ",")) of \(config.folds), \(config.epochs) epochs, batch \(config.batchSize)"
              + (ranks.count > 1 ? " (\(config.batchSize / ranks.count) on each of \(ranks.count) ranks)" : "") + ", device \(config.device)")
        if config.readsSourcePixels {
            // Stage two reads some groups from the source slices: say so when the shards cannot give them.
            let shards = dataset.manifest.shards.count
            let without = try (0..<shards).filter { try !dataset.reader($0).hasSourcePixels }.count
            if without > 0 {
                print("note: \(without) of \(shards) shard(s) hold no source slices (ingested with --no-source-pixels or before schema_version 2): "
                      + "their studies' stage-two crops are cut from the grid (two_stage.source_crops)")
            }
        }
        let line = TrainingLine(foldsAfter: { f in foldList.filter { $0 > f }.count })
        trainer.onProgress = { line.update($0) }
        trainer.onEpoch = { fold, r in
            line.clear()
            print(String(format: "fold %d epoch %d/%d: train loss %.4f, val loss %.4f, score %.4f (spinal %.3f foraminal %.3f subarticular %.3f any_severe %.3f), lr %.2e, %.1f samples/s",
                         fold, r.epoch, config.epochs, r.trainLoss, r.valLoss, r.valScore, r.spinal, r.foraminal, r.subarticular,
                         r.anySevereSpinal, r.lr, r.samplesPerSecond))
        }
        let summary: RunSummary
        do { summary = try trainer.train(folds: foldList, resume: resume, overwrite: overwrite) } catch let stopped as Trainer.Stopped {
            line.clear()
            print(stopped.description)
            throw ExitCode(3)
        }
        line.clear()
        for f in summary.folds {
            // The best epoch is chosen on the studies it is scored on; the last epoch's scores show how much that flatters it.
            var line = String(format: "fold %d: best score %.4f at epoch %d (baseline %.4f)", f.fold, f.valRsnaScore, f.bestEpoch, f.priorRsnaScore)
            if let last = f.last { line += String(format: "; last epoch %.4f", last.valRsnaScore) }
            if let raw = f.lastWithoutEma { line += String(format: ", without the EMA %.4f", raw.valRsnaScore) }
            print(line)
        }
        var mean = String(format: "mean validation score %.4f, baseline %.4f (ratio %.3f)", summary.meanValRsnaScore, summary.priorRsnaScore,
                          summary.meanValRsnaScore / summary.priorRsnaScore)
        if let last = summary.meanLastValRsnaScore { mean += String(format: "; last epoch %.4f (ratio %.3f)", last, last / summary.priorRsnaScore) }
        print(mean)
        let report = try RunReport.write(trainer.folder)
        print("wrote \(trainer.folder.summaryURL.path) and \(report.path)")
    }
}

/// The progress line of a training run: fold, epoch, step, running loss, samples/s and ETA, redrawn in
/// place on a terminal; in a log, one plain line every 30 seconds.
final class TrainingLine {
    private let line = ProgressLine(plainInterval: 30)
    private let foldsAfter: (Int) -> Int

    init(foldsAfter: @escaping (Int) -> Int) { self.foldsAfter = foldsAfter }

    func update(_ p: TrainingProgress) {
        // The folds still to come take as long as this whole fold: its ETA scaled by total over remaining steps.
        let eta = p.etaSeconds * (1 + Double(foldsAfter(p.fold)) * Double(p.epochs * p.batches) / Double(max(1, remainingSteps(p))))
        line.show(String(format: "fold %d epoch %d/%d step %d/%d loss %.4f %.1f samples/s ETA %@", p.fold, p.epoch, p.epochs, p.batch,
                         p.batches, p.runningLoss, p.samplesPerSecond, ProgressLine.clock(eta)))
    }

    private func remainingSteps(_ p: TrainingProgress) -> Int { (p.epochs - p.epoch) * p.batches + (p.batches - p.batch) }

    func clear() { line.clear() }
}
