import Core
import Foundation
import Ingest
import Synchronization

/// How far a cohort has come, for a progress line.
public struct SynthProgress: Sendable, CustomStringConvertible {
    /// Studies written so far.
    public var done: Int
    /// Studies in the cohort.
    public var total: Int
    /// Seconds since the cohort started.
    public var elapsed: Double

    /// Seconds left at the rate so far (nil before the first study is done).
    public var eta: Double? { done > 0 ? elapsed / Double(done) * Double(total - done) : nil }

    /// One line: "synth: 12/48 studies, 5.1 s, ETA 15 s".
    public var description: String {
        let eta = self.eta.map { String(format: ", ETA %.0f s", $0) } ?? ""
        return String(format: "synth: %d/%d studies, %.1f s", done, total, elapsed) + eta
    }
}

/// What a finished cohort holds.
public struct SynthSummary: Sendable {
    /// The studies, in study-id order (train.csv's order).
    public var studies: [PhantomStudy]
    /// Every train_label_coordinates.csv row.
    public var coordinates: [SynthLabelPoint]
    /// Files written under train_images (including quirk files) and their total size.
    public var files: Int
    /// Total size of those files.
    public var bytes: Int
}

/// A phantom lumbar-spine cohort in the RSNA 2024 layout: `train_images/{study}/{series}/{instance}.dcm`,
/// `train.csv`, `train_series_descriptions.csv` and `train_label_coordinates.csv`.
public enum SynthCohort {
    /// The studies `options` describes, planned but not rendered (ids, labels, series ids).
    public static func plan(_ options: SynthOptions) -> [PhantomStudy] {
        var rng = SynthRandom(seed: options.seed, 0)
        var used = Set<Int>()
        return (0..<options.studies).map { index in
            var id: Int
            repeat { id = rng.integer(in: 1_000_000...4_280_999_999) } while used.contains(id)
            used.insert(id)
            return PhantomStudy(index: index, studyID: id, options: options)
        }
    }

    /// Renders and writes the cohort under `out` (created if needed), studies in parallel; calls
    /// `progress` after each study (from any thread). Same options → same bytes.
    @discardableResult
    public static func write(_ options: SynthOptions, to out: URL,
                             progress: (@Sendable (SynthProgress) -> Void)? = nil) throws -> SynthSummary {
        guard options.studies > 0 else { throw SynthError(path: out.path, message: "a cohort needs at least one study") }
        guard options.sagittalMatrix >= 32, options.axialMatrix >= 32 else {
            throw SynthError(path: out.path, message: "matrix sizes must be at least 32")
        }
        guard options.sagittalSlices.lowerBound >= 1, options.axialSlicesPerStack.lowerBound >= 1 else {
            throw SynthError(path: out.path, message: "every series needs at least one slice per stack")
        }
        let images = out.appendingPathComponent("train_images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        let studies = plan(options)
        // Same seed into the same folder rewrites identical files; a study left by another cohort would
        // make the CSVs disagree with train_images, so refuse rather than delete the user's files.
        let planned = Set(studies.map { String($0.studyID) })
        let present = (try? FileManager.default.contentsOfDirectory(atPath: images.path)) ?? []
        if let stranger = present.sorted().first(where: { !planned.contains($0) }) {
            throw SynthError(path: images.appendingPathComponent(stranger).path,
                             message: "not a study of this cohort (another seed or study count?); write to an empty folder")
        }
        let start = Date()
        let state = CohortState()
        let workers = options.threads > 0 ? options.threads : ProcessInfo.processInfo.activeProcessorCount
        let next = Counter()
        DispatchQueue.concurrentPerform(iterations: min(workers, studies.count)) { _ in
            while let i = next.take(below: studies.count), !state.failed {
                do {
                    let written = try studies[i].write(to: images)
                    let done = state.finish(files: written.files, bytes: written.bytes)
                    progress?(SynthProgress(done: done, total: studies.count, elapsed: Date().timeIntervalSince(start)))
                } catch {
                    state.fail(error)
                }
            }
        }
        if let error = state.error { throw error }

        let ordered = studies.sorted { $0.studyID < $1.studyID }
        let coordinates = ordered.flatMap(\.labelCoordinates)
        try writeCSVs(ordered, coordinates, to: out)
        return SynthSummary(studies: ordered, coordinates: coordinates, files: state.files, bytes: state.bytes)
    }

    /// train.csv, train_series_descriptions.csv and train_label_coordinates.csv, Kaggle's columns and spellings.
    static func writeCSVs(_ studies: [PhantomStudy], _ coordinates: [SynthLabelPoint], to out: URL) throws {
        var train = "study_id," + RSNA.labelColumns.joined(separator: ",") + "\n"
        var series = "study_id,series_id,series_description\n"
        for study in studies {
            train += "\(study.studyID)," + study.trainCells.joined(separator: ",") + "\n"
            let described = study.seriesIDs.filter { study.isDescribed($0.key) }.sorted { $0.value < $1.value }
            for (kind, id) in described { series += "\(study.studyID),\(id),\(kind.rawValue)\n" }
        }
        // Kaggle's columns; a cohort of multi-frame files adds the frame each point is on (data-schema.md).
        let frames = coordinates.contains { $0.frameNumber != nil }
        var coords = "study_id,series_id,instance_number,condition,level,x,y" + (frames ? "," + LabelCoordinate.frameColumn : "") + "\n"
        for c in coordinates {
            coords += "\(c.studyID),\(c.seriesID),\(c.instanceNumber),\(c.condition),\(c.level),"
                + String(format: "%.3f,%.3f", c.x, c.y) + (frames ? ",\(c.frameNumber.map(String.init) ?? "")" : "") + "\n"
        }
        try AtomicFile.write(Data(train.utf8), to: out.appendingPathComponent("train.csv"))
        try AtomicFile.write(Data(series.utf8), to: out.appendingPathComponent("train_series_descriptions.csv"))
        try AtomicFile.write(Data(coords.utf8), to: out.appendingPathComponent("train_label_coordinates.csv"))
    }
}

/// An error making a synthetic cohort, with the path it concerns.
public struct SynthError: Error, CustomStringConvertible {
    /// The file or folder concerned.
    public var path: String
    /// What is wrong and what to do.
    public var message: String
    /// "path: message".
    public var description: String { "\(path): \(message)" }
}

/// Hands out study indices to worker threads.
private final class Counter: Sendable {
    private let value = Mutex(0)
    func take(below limit: Int) -> Int? {
        value.withLock { value in
            guard value < limit else { return nil }
            value += 1
            return value - 1
        }
    }
}

/// Totals and the first error, shared by the worker threads.
private final class CohortState: Sendable {
    private let state = Mutex<(done: Int, files: Int, bytes: Int, error: Error?)>((0, 0, 0, nil))
    var files: Int { state.withLock { $0.files } }
    var bytes: Int { state.withLock { $0.bytes } }
    var error: Error? { state.withLock { $0.error } }
    var failed: Bool { error != nil }

    func finish(files: Int, bytes: Int) -> Int {
        state.withLock { state in
            state.files += files
            state.bytes += bytes
            state.done += 1
            return state.done
        }
    }

    func fail(_ e: Error) {
        state.withLock { state in if state.error == nil { state.error = e } }
    }
}
