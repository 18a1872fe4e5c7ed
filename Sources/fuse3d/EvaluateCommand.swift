import ArgumentParser
import Core
import Foundation
import Shards
import Train

/// `fuse3d evaluate`: a trained run's folds averaged, scored on other shards against the baseline.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Score a trained run (its folds' best checkpoints averaged) on labelled shards: RSNA score, groups, baseline, per-level losses, confusion matrices.",
        discussion: """
        The baseline is the best constant prediction from the run's training labels (class counts × weights 1/2/4, normalised).

        Example:
          fuse3d evaluate demo-out/run demo-out/test-shards --out evaluation.json
        """)

    @OptionGroup var runOptions: TrainedRunOptions
    @Argument(help: "A shard folder with labels.") var shards: String
    @Option(help: "Also write the score and the baseline's as JSON to this file.") var out: String?

    func validate() throws {
        try SharedChecks.shardFolder(shards)
    }

    func run() throws {
        let trained = try runOptions.load()
        let dataset = try ShardDataset(directory: URL(fileURLWithPath: shards))
        let (predictions, located, sourceCrops) = try trained.predictLocating(dataset, device: runOptions.device, flip: runOptions.flipTta)
        // Two-stage runs: the localizers' error against the shards' keypoints (none when the shards hold no keypoints).
        let localization = try located.map { localizationError($0, affines: try studyAffines(dataset)) }.flatMap { $0.points > 0 ? $0 : nil }
        let score = RSNAScore(predictions)
        let prior = RSNAScore(predictions.replacing(with: trained.summary.priorProbabilities))
        print("\(trained.summary.folds.count) fold model(s) averaged over \(predictions.count) studies\(runOptions.flipTta ? ", each also read mirrored left-right" : "")")
        print(ScoreTable.text(score, prior: prior))
        if let l = localization {
            // Two-stage runs: how far the localizers' points are from the labels' (every labelled point of the shards).
            print(String(format: "localizer: %d labelled points, median %.2f mm, p90 %.2f mm", l.points, l.medianMm, l.p90Mm))
            for (g, name) in ["spinal canal", "neural foramina", "subarticular recesses"].enumerated() {
                if let m = l.perGroupMedianMm?[g], let p = l.perGroupP90Mm?[g] { print("  \(name): " + String(format: "median %.2f mm, p90 %.2f mm", m, p)) }
            }
        }
        if let sourceCrops { print(sourceCrops.description) }
        if let out {
            struct Evaluation: Encodable {
                var score: RSNAScore, prior: RSNAScore, studies: Int, folds: Int, flipTta: Bool, localization: LocalizationError?
                var sourceCrops: SourceCropTally?
            }
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            e.keyEncodingStrategy = .convertToSnakeCase
            e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try AtomicFile.write(try e.encode(Evaluation(score: score, prior: prior, studies: predictions.count, folds: trained.summary.folds.count,
                                                                 flipTta: runOptions.flipTta, localization: localization, sourceCrops: sourceCrops)),
                                 to: URL(fileURLWithPath: out))
            print("wrote \(out)")
        }
    }
}
