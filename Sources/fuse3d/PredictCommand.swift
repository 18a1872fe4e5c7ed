import ArgumentParser
import Core
import Foundation
import Ingest
import Shards
import Train

/// `fuse3d predict`: a Kaggle submission from a trained run, on shards or on a DICOM archive.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Write a Kaggle submission (row_id,normal_mild,moderate,severe; 25 rows per study) from a trained run's folds averaged.",
        discussion: """
        SOURCE is a shard folder, or a DICOM archive (RSNA layout or any tree) that is first ingested into a temporary
        folder with the pipeline parameters of the run's training shards (run/source.json); --pipeline gives them
        explicitly when they are not the defaults at the run's grid size.

        --keypoints FILE (two-stage runs) also writes the points the localizers found, one row per study, condition and \
        level: study_id,condition,level,x,y,z (patient LPS mm),series_id,instance_number,pixel_x,pixel_y (the series the \
        condition is read on, its nearest slice and the pixel there; empty when SOURCE is a shard folder).

        Example:
          fuse3d predict demo-out/run demo-out/shards --out submission.csv
          fuse3d predict demo-out/run /data/test_images_root --out submission.csv --keypoints points.csv
        """)

    @OptionGroup var runOptions: TrainedRunOptions
    @Argument(help: "A shard folder (with manifest.json) or a DICOM archive folder.") var source: String
    @Option(help: "The submission CSV to write.") var out: String
    @Option(help: "The pipeline (YAML) the run's shards were made with, for a DICOM SOURCE.") var pipeline: String?
    @Option(help: "Also write the predicted points (two-stage runs) to this CSV.") var keypoints: String?

    func validate() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDir), isDir.boolValue else {
            throw ValidationError("'\(source)' is not a folder: give a shard folder or a DICOM archive folder.")
        }
    }

    func run() throws {
        let runURL = runOptions.runURL
        var shardFolder = URL(fileURLWithPath: source)
        var temporary: URL?
        defer { if let temporary { try? FileManager.default.removeItem(at: temporary) } }
        if !FileManager.default.fileExists(atPath: shardFolder.appendingPathComponent(Manifest.fileName).path) {
            let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("fuse3d-predict-\(UUID().uuidString.prefix(8))")
            temporary = tmp
            try ingest(archive: shardFolder, into: tmp, like: try RunFolder(runURL).source())
            shardFolder = tmp
        }
        let trained = try runOptions.load()
        let dataset = try ShardDataset(directory: shardFolder)
        // One pass gives the probabilities and, for a two-stage run, the points --keypoints writes.
        let (predictions, located, sourceCrops) = try trained.predictLocating(dataset, device: runOptions.device, flip: runOptions.flipTta)
        if let sourceCrops { print(sourceCrops.description) }
        // A DICOM SOURCE with Kaggle's sample_submission.csv: its rows, in its order (what the scorer expects); else every
        // predicted study in sample order.
        let sample = temporary == nil ? nil : sampleSubmission()
        if let sample, !sample.isEmpty {
            let (text, filled) = Submission.csv(predictions, order: sample.map { ($0.study, $0.label) },
                                                fallback: trained.summary.priorProbabilities)
            try AtomicFile.write(Data(text.utf8), to: URL(fileURLWithPath: out))
            let asked = Set(sample.map(\.study))
            let extra = predictions.studyIDs.map { String($0) }.filter { !asked.contains($0) }
            print("wrote \(out): the \(sample.count) rows of \(SampleSubmission.name) in its order (\(asked.count) studies), "
                  + "\(trained.summary.folds.count) fold model(s) averaged")
            if !filled.isEmpty {
                print("\(filled.count) of them have no prediction and get the run's best constant prediction: "
                      + filled.prefix(10).joined(separator: ", ") + (filled.count > 10 ? ", …" : ""))
            }
            if !extra.isEmpty {
                print("\(extra.count) predicted studies are not in \(SampleSubmission.name) and are left out: "
                      + extra.prefix(10).joined(separator: ", ") + (extra.count > 10 ? ", …" : ""))
            }
        } else {
            try AtomicFile.write(Data(Submission.csv(predictions).utf8), to: URL(fileURLWithPath: out))
            print("wrote \(out): \(predictions.count) studies × 25 rows, \(trained.summary.folds.count) fold model(s) averaged")
        }
        if let keypoints {
            guard let located else {
                throw ValidationError("--keypoints needs a two-stage run; \(runURL.path) was trained without two_stage")
            }
            let points = try patientPoints(located, dataset: dataset)
            let archive = temporary == nil ? nil : source
            let table = KeypointsTable.csv(points: points, catalog: archive.map { CatalogScanner.scan(root: $0, isolation: .thisExecutable) }, root: archive)
            try AtomicFile.write(Data(table.utf8), to: URL(fileURLWithPath: keypoints))
            print("wrote \(keypoints): \(points.count) studies × 25 points\(archive == nil ? " (no DICOM at hand: series columns empty)" : "")")
        }
    }

    /// A DICOM SOURCE's sample_submission.csv (Kaggle's list of the row ids a submission must hold, in the order it
    /// holds them), read by the tables' reader; its problems are printed, one line each. nil when there is none.
    private func sampleSubmission() -> [SampleSubmission.Row]? {
        let path = URL(fileURLWithPath: source).appendingPathComponent(SampleSubmission.name).path
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let (rows, problems) = SampleSubmission.rows(path)
        for p in problems { print("\(p.path): \(p.reason)") }
        return rows
    }

    /// Ingests a DICOM archive with the training shards' pipeline parameters (refusing to guess when they differ).
    private func ingest(archive: URL, into output: URL, like training: RunSource) throws {
        var config = try pipeline.map(PipelineConfig.load) ?? PipelineConfig()
        if pipeline == nil, let size = training.parameters["fusion.size"].flatMap(Int.init) { config.fusion.size = size }
        let differing = config.attributes.filter { key, value in
            key != "shards.zstd_level" && key != "pipeline" && training.parameters[key].map { $0 != value } ?? false
        }.keys.sorted()
        guard differing.isEmpty else {
            throw ValidationError("the run's shards were made with other pipeline parameters (\(differing.joined(separator: ", "))); give that pipeline with --pipeline FILE")
        }
        print("ingesting \(archive.path) at \(config.fusion.size)³ into a temporary folder")
        let progress = CountProgress(label: "ingest", unit: "studies")
        var options = IngestOptions(archive: archive.path, output: output, pipeline: config,
                                    workers: ProcessInfo.processInfo.activeProcessorCount)
        options.isolation = .thisExecutable
        let report = try IngestRunner.run(options,
                                          scanProgress: { _, _ in }) { state in progress.update(state.done, state.total) }.report
        progress.finish()
        for s in report.studies where s.status != .fused { print("study \(s.studyID): \(s.error ?? "failed") (no predictions)") }
        // The series tables' problems (test_series_descriptions.csv), named with file, line and column.
        for p in report.files where CatalogScanner.metadataNames.contains(p.path) { print("\(p.path): \(p.reason)") }
    }
}
