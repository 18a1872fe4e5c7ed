import Core
import Foundation

/// A training run's folder, the one owner of its file names and typed records:
///
///     RUN/source.json            RunSource     the shards trained on and their pipeline parameters
///     RUN/splits.json            FoldSplit     the K-fold split by study
///     RUN/config.yaml            TrainingConfig (resolved)
///     RUN/fold-I/metrics.csv     [EpochRecord] one row per finished epoch
///     RUN/fold-I/result.json     FoldResult    the fold's best epoch
///     RUN/fold-I/best.safetensors, last.safetensors   best weights; everything an exact resume needs
///     RUN/summary.json           RunSummary    every finished fold
///     RUN/report.html            drawn from the above
///     RUN/localizer-fold-I.png   the report's picture of fold I's located points (drawn by Report)
///
/// The trainer, the report, `evaluate` and `predict` read and write the run only through it. Every file is
/// written complete-or-absent and fsynced (`AtomicFile`), so a killed run never leaves a half file to resume from.
public struct RunFolder: Sendable, Equatable {
    /// The folder.
    public let url: URL

    /// The run folder at `url` (nothing is read or created).
    public init(_ url: URL) { self.url = url }

    /// File names inside a run folder.
    public static let sourceName = "source.json", splitsName = "splits.json", configName = "config.yaml",
                      summaryName = "summary.json", reportName = "report.html"

    /// `source.json`.
    public var sourceURL: URL { url.appendingPathComponent(Self.sourceName) }
    /// `splits.json`.
    public var splitsURL: URL { url.appendingPathComponent(Self.splitsName) }
    /// `config.yaml`.
    public var configURL: URL { url.appendingPathComponent(Self.configName) }
    /// `summary.json`.
    public var summaryURL: URL { url.appendingPathComponent(Self.summaryName) }
    /// `report.html`.
    public var reportURL: URL { url.appendingPathComponent(Self.reportName) }

    /// `localizer-fold-I.png`.
    public func localizerPictureURL(fold: Int) -> URL { url.appendingPathComponent("localizer-fold-\(fold).png") }

    /// The localizer pictures in the folder (`localizer-fold-I.png`, I a whole number), whichever folds they are of.
    func localizerPictures() -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.sorted().compactMap { name in
            guard name.hasPrefix("localizer-fold-"), name.hasSuffix(".png"),
                  let i = Int(name.dropFirst("localizer-fold-".count).dropLast(".png".count)), i >= 0 else { return nil }
            return localizerPictureURL(fold: i)
        }
    }

    /// The folder of fold `index`.
    public func fold(_ index: Int) -> FoldFolder { FoldFolder(fold: index, url: url.appendingPathComponent("fold-\(index)")) }

    /// The folds whose folders hold any result or checkpoint (`fold-I` with I a whole number), sorted.
    public func foldsWithResults() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.compactMap { name -> Int? in
            guard name.hasPrefix("fold-"), let i = Int(name.dropFirst(5)), i >= 0 else { return nil }
            return fold(i).holdsResults ? i : nil
        }.sorted()
    }

    /// Whether the folder holds anything a training run made and would lose: a fold's results or checkpoints, or a summary.
    public var holdsResults: Bool {
        !foldsWithResults().isEmpty || FileManager.default.fileExists(atPath: summaryURL.path)
    }

    /// Deletes everything a training run writes (every fold's files, the split, summary, report and its localizer
    /// pictures; source and config too), and nothing else: a folder given by mistake loses no file of its own. A
    /// failed delete is an error.
    public func clear(fileManager: FileManager = .default) throws {
        for i in foldsWithResults() { try fold(i).clear(fileManager: fileManager) }
        for file in [sourceURL, splitsURL, configURL, summaryURL, reportURL] + localizerPictures() {
            try Self.remove(file, fileManager: fileManager)
        }
    }

    /// Creates the folder (and its parents) if needed.
    public func create() throws {
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw TrainError(.runFolder, "\(url.path): cannot create the run folder (\(error.localizedDescription))")
        }
    }

    // MARK: Records

    /// Reads `source.json`.
    public func source() throws -> RunSource { try Self.decode(RunSource.self, from: sourceURL, what: "the run's source") }

    /// Writes `source.json`.
    public func save(_ source: RunSource) throws { try Self.write(try JSONEncoder.pretty.encode(source), to: sourceURL) }

    /// The split in `splits.json`, or nil when there is none; refused when its studies are not `studies`.
    public func split(studies: Set<Int64>) throws -> FoldSplit? {
        guard FileManager.default.fileExists(atPath: splitsURL.path) else { return nil }
        let split = try Self.decode(FoldSplit.self, from: splitsURL, what: "a fold split")
        guard Set(split.folds.joined()) == studies, split.folds.count == split.k else {
            throw TrainError(.runFolder, "\(splitsURL.path): its studies differ from the shards' (train on the shards the run was made from, or use a new --out)")
        }
        return split
    }

    /// Writes `splits.json`.
    public func save(_ split: FoldSplit) throws { try Self.write(try JSONEncoder.pretty.encode(split), to: splitsURL) }

    /// Reads `config.yaml`.
    /// A run written before `two_stage.condition_points` existed has no such key in its `config.yaml` and located the levels'
    /// canal points only (5 heatmaps): it is read with `condition_points: false`, so its checkpoints load and resume as
    /// they were trained (a configuration a user writes gets the default, on). Likewise a run from before
    /// `two_stage.source_crops` cut its crops from the grid: it is read with `source_crops: false`.
    public func config() throws -> TrainingConfig {
        var config = try TrainingConfig.load(configURL)
        if config.twoStage != nil, let text = try? String(contentsOf: configURL, encoding: .utf8) {
            if !text.contains("condition_points:") { config.twoStage?.conditionPoints = false }
            if !text.contains("source_crops:") { config.twoStage?.sourceCrops = false }
        }
        return config
    }

    /// Writes `config.yaml` (resolved).
    public func save(_ config: TrainingConfig) throws { try Self.write(Data(config.yaml.utf8), to: configURL) }

    /// Reads `summary.json`.
    public func summary() throws -> RunSummary {
        try Self.decode(RunSummary.self, from: summaryURL, what: "the run's summary", hint: "; has `fuse3d train` finished a fold?")
    }

    /// Writes `summary.json`.
    public func save(_ summary: RunSummary) throws { try Self.write(try JSONEncoder.pretty.encode(summary), to: summaryURL) }

    /// Writes `localizer-fold-I.png` (a PNG file's bytes, which Report draws).
    public func save(localizerPicture png: Data, fold: Int) throws { try Self.write(png, to: localizerPictureURL(fold: fold)) }

    /// The summary of the folds of `split` that have a `result.json`; `prior` is the baseline of every labelled study.
    /// A result that does not belong to the split (other study counts) is refused, never summarised.
    public func gatherSummary(split: FoldSplit, prior: [Double]) throws -> RunSummary {
        var folds: [FoldResult] = []
        for i in 0..<split.k {
            let folder = fold(i)
            guard FileManager.default.fileExists(atPath: folder.resultURL.path) else { continue }
            let result = try folder.result()
            guard result.fold == i, result.trainStudies == split.training(i).count, result.valStudies == split.validation(i).count else {
                throw TrainError(.runFolder, "\(folder.resultURL.path): belongs to another split (fold \(result.fold), \(result.trainStudies)/\(result.valStudies) studies); train with --overwrite")
            }
            folds.append(result)
        }
        let n = Double(max(1, folds.count))
        func mean(_ scores: [EpochScores?]) -> Double? {
            let known = scores.compactMap { $0?.valRsnaScore }
            return known.count == folds.count && !known.isEmpty ? known.reduce(0, +) / n : nil
        }
        return RunSummary(folds: folds, meanValRsnaScore: folds.map(\.valRsnaScore).reduce(0, +) / n,
                          priorRsnaScore: folds.map(\.priorRsnaScore).reduce(0, +) / n,
                          meanLastValRsnaScore: mean(folds.map(\.last)), meanLastWithoutEmaValRsnaScore: mean(folds.map(\.lastWithoutEma)),
                          priorProbabilities: prior)
    }

    // MARK: Helpers shared with FoldFolder

    /// Writes `data` to `url` complete-or-absent and fsynced, creating the folder first.
    static func write(_ data: Data, to url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try AtomicFile.write(data, to: url)
        } catch let error as FileError {
            throw TrainError(.runFolder, "\(error)")
        } catch {
            throw TrainError(.runFolder, "\(url.path): cannot write (\(error.localizedDescription))")
        }
    }

    /// Decodes a run file, with an error naming it.
    static func decode<T: Decodable>(_ type: T.Type, from url: URL, what: String, hint: String = "") throws -> T {
        do { return try JSONDecoder.snakeCase.decode(T.self, from: Data(contentsOf: url)) } catch {
            throw TrainError(.runFolder, "\(url.path): cannot read \(what) (\(error))\(hint)")
        }
    }

    /// Removes `url` when it exists; a failed delete is an error naming it.
    static func remove(_ url: URL, fileManager: FileManager) throws {
        guard fileManager.fileExists(atPath: url.path) else { return }
        do { try fileManager.removeItem(at: url) } catch {
            throw TrainError(.runFolder, "\(url.path): cannot delete (\(error.localizedDescription)); nothing is trained into a folder that still holds an earlier run's files")
        }
    }
}

/// One fold's folder in a run: `fold-I/{metrics.csv,result.json,best.safetensors,last.safetensors}` and, for two-stage
/// models, `points.json`.
public struct FoldFolder: Sendable, Equatable {
    /// The fold and its folder.
    public let fold: Int, url: URL

    /// File names inside a fold folder.
    public static let metricsName = "metrics.csv", resultName = "result.json", bestName = "best.safetensors", lastName = "last.safetensors",
                      pointsName = "points.json"

    /// `metrics.csv`: one row per finished epoch.
    public var metricsURL: URL { url.appendingPathComponent(Self.metricsName) }
    /// `result.json`: the best epoch's result.
    public var resultURL: URL { url.appendingPathComponent(Self.resultName) }
    /// `best.safetensors`: the best epoch's weights (PyTorch names).
    public var bestURL: URL { url.appendingPathComponent(Self.bestName) }
    /// `last.safetensors`: everything an exact resume needs.
    public var lastURL: URL { url.appendingPathComponent(Self.lastName) }

    /// `points.json`: the localizer's held-out points at the best epoch (two-stage models).
    public var pointsURL: URL { url.appendingPathComponent(Self.pointsName) }

    /// The files a fold writes.
    public var files: [URL] { [lastURL, bestURL, resultURL, metricsURL, pointsURL] }

    /// Whether any of them exists.
    public var holdsResults: Bool { files.contains { FileManager.default.fileExists(atPath: $0.path) } }

    /// Deletes the fold's files; a failed delete is an error.
    public func clear(fileManager: FileManager = .default) throws {
        for file in files { try RunFolder.remove(file, fileManager: fileManager) }
    }

    /// Creates the folder if needed.
    public func create() throws {
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw TrainError(.runFolder, "\(url.path): cannot create the fold folder (\(error.localizedDescription))")
        }
    }

    /// Reads `result.json`.
    public func result() throws -> FoldResult { try RunFolder.decode(FoldResult.self, from: resultURL, what: "a fold result") }

    /// Writes `result.json`.
    public func save(_ result: FoldResult) throws { try RunFolder.write(try JSONEncoder.pretty.encode(result), to: resultURL) }

    /// Reads `points.json`, or nil when the fold has none (not a two-stage model).
    public func points() throws -> LocatedPoints? {
        guard FileManager.default.fileExists(atPath: pointsURL.path) else { return nil }
        return try RunFolder.decode(LocatedPoints.self, from: pointsURL, what: "the localizer's points")
    }

    /// Writes `points.json`.
    public func save(_ points: LocatedPoints) throws { try RunFolder.write(try JSONEncoder.pretty.encode(points), to: pointsURL) }

    /// Reads `metrics.csv`.
    public func metrics() throws -> [EpochRecord] {
        guard let text = try? String(contentsOf: metricsURL, encoding: .utf8) else {
            throw TrainError(.runFolder, "\(metricsURL.path): cannot be read")
        }
        do { return try EpochRecord.parse(csv: text) } catch let error as TrainError {
            throw TrainError(.runFolder, "\(metricsURL.path): \(error.message)")
        }
    }

    /// Writes `metrics.csv`.
    public func save(metrics history: [EpochRecord]) throws {
        try RunFolder.write(Data(EpochRecord.csv(history).utf8), to: metricsURL)
    }
}
