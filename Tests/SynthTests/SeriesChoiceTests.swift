import Foundation
import Ingest
import Synth
import TestSupport
import XCTest

/// The rule that chooses a study's series (data-schema.md, "Choosing a study's series") and the files at one
/// position, on synth archives altered with pydicom the way real exports go wrong: another patient's Sagittal T1
/// filed in the study's folder, a slice saved twice under another instance number, a re-acquired slice.
final class SeriesChoiceTests: XCTestCase {
    /// Copies the DICOM files of `from` into `to`, rewriting their UIDs (and, per file, InstanceNumber and pixels).
    static let rewrite = """
    import sys, os, pydicom
    src, dst, study, instance, pixels = sys.argv[1:6]
    os.makedirs(os.path.dirname(dst) if src.endswith(".dcm") else dst, exist_ok=True)
    files = [src] if src.endswith(".dcm") else [os.path.join(src, n) for n in sorted(os.listdir(src))]
    for f in files:
        d = pydicom.dcmread(f)
        if study != "-":
            d.StudyInstanceUID = study
            d.SeriesInstanceUID = study + ".7"
        d.SOPInstanceUID = d.SOPInstanceUID + "." + (instance if instance != "-" else "9")
        d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
        if instance != "-":
            d.InstanceNumber = int(instance)
        if pixels == "halved":
            d.PixelData = (d.pixel_array // 2).astype(d.pixel_array.dtype).tobytes()
        d.save_as(dst if dst.endswith(".dcm") else os.path.join(dst, os.path.basename(f)))
    """

    static func copy(_ from: URL, to: URL, studyUID: String = "-", instance: Int? = nil, halvePixels: Bool = false) throws {
        let r = try Fixtures.python(rewrite, [from.path, to.path, studyUID, instance.map(String.init) ?? "-", halvePixels ? "halved" : "same"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    static func ingest(_ root: URL, into out: URL) throws -> IngestReport {
        var pipeline = PipelineConfig()
        pipeline.fusion.size = 16
        return try IngestRunner.run(IngestOptions(archive: root.path, output: out, pipeline: pipeline, workers: 1)).report
    }

    static func cohort(_ root: URL) throws -> PhantomStudy {
        try SynthCohort.write(SynthOptions(studies: 1, seed: 23, sagittalMatrix: 40, axialMatrix: 32,
                                           sagittalSlices: 7...7, axialSlicesPerStack: 2...2), to: root).studies[0]
    }

    func testAnotherStudysSagittalT1InTheFolderIsANamedProblemAndTheStudyKeepsItsOwnListedSeries() throws {
        let scratch = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let root = scratch.appendingPathComponent("archive")
        let study = try Self.cohort(root)
        let a = String(study.studyID), own = String(try XCTUnwrap(study.seriesIDs[.sagittalT1]))
        let folder = root.appendingPathComponent("train_images/\(a)")
        // Another patient's Sagittal T1 (not in train_series_descriptions.csv) in a folder whose id sorts first: with the
        // same extent and slice count, the old rule (most of the spine, then the smallest id) fused it in place of `own`.
        let foreignUID = "1.2.826.0.1.3680043.99"
        try Self.copy(folder.appendingPathComponent(own), to: folder.appendingPathComponent("1"), studyUID: foreignUID)

        let catalog = CatalogScanner.scan(root: root.path)
        let scanned = try XCTUnwrap(catalog.study(a))
        XCTAssertEqual(scanned.studyInstanceUID, a)
        XCTAssertEqual(scanned.seriesToFuse(.sagittalT1).map(\.seriesID), [own])
        let intruder = try XCTUnwrap(scanned.series.first { $0.seriesID == "1" })
        XCTAssertEqual(intruder.kind, .sagittalT1, "classified from its tags")
        XCTAssertEqual(intruder.studyInstanceUID, foreignUID)
        XCTAssertEqual(intruder.ignoredBecause,
                       "another study's series: its Study Instance UID \(foreignUID) is not the study's own (\(a)); never fused")
        let reason = "series 1 (Sagittal T1, 7 files) carries Study Instance UID \(foreignUID), not the study's own \(a): another study's "
            + "series filed here; not fused"
        let problems = catalog.problems.filter { $0.path.hasPrefix("train_images/\(a)/1") }
        XCTAssertEqual(problems.map(\.path), ["train_images/\(a)/1"])
        XCTAssertEqual(problems.map(\.reason), [reason])

        // `fuse3d scan`'s summary counts the series by kind and names the problem.
        let summary = catalog.summary()
        XCTAssertTrue(summary.contains("1 studies, 4 series, "), summary)
        XCTAssertTrue(summary.contains("  Sagittal T1: 2 (1 to fuse, 1 left out)\n"), summary)
        XCTAssertTrue(summary.contains("  explicit VR little endian: 4 series ("), summary)
        XCTAssertTrue(summary.contains("1 problem(s), 0 warning(s); the first:\n  train_images/\(a)/1: \(reason)\n"), summary)

        let report = try Self.ingest(root, into: scratch.appendingPathComponent("shards"))
        XCTAssertEqual(report.headline, ["1 of 1 studies fused into 1 samples in 1 shard(s); 0 failed",
                                         "\(report.summary.filesFound) files found: \(report.summary.filesUsed) used, 0 skipped, 7 ignored "
                                            + "(1 series left out: ignoredSeries)",
                                         "1 problem(s) in files, series and tables; first: train_images/\(a)/1: \(reason)"])
        let written = try String(contentsOf: scratch.appendingPathComponent("shards/ingest-report.json"), encoding: .utf8)
        XCTAssertTrue(written.hasPrefix("{\n  \"headline\" : [\n    \"1 of 1 studies fused"), String(written.prefix(200)))
        XCTAssertTrue(written.contains("\"path\" : \"train_images/\(a)/1\""), "paths relative to the archive, slashes unescaped")
        let decoded = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(written.utf8)) as? [String: Any])
        XCTAssertEqual((decoded["summary"] as? [String: Any])?["filesIgnored"] as? Int, 7)
        let fused = try XCTUnwrap(report.studies.first)
        XCTAssertEqual(fused.channels["sagittal_t1"], own)
        XCTAssertEqual(fused.fusion?.unresolvedCoordinates, [])
        let labelled = Set(study.labelCoordinates.map { "\($0.condition) \($0.level)" })
        XCTAssertEqual(fused.fusion?.keypointsPlaced, labelled.count)
        XCTAssertEqual(labelled.count, 25, "every label column has a point on its own series")
        XCTAssertEqual(report.files.filter { $0.path == "train_images/\(a)/1" }.map(\.reason), [reason],
                       "the intruder is a problem of the run, not a note")
        XCTAssertTrue(report.ignoredSeries.contains { $0.seriesID == "1" && $0.files == 7 && $0.reason == intruder.ignoredBecause })
    }

    func testEveryLabelRowOnADuplicatedSliceIsPlacedAndAReacquisitionIsReported() throws {
        let scratch = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let root = scratch.appendingPathComponent("archive")
        let study = try Self.cohort(root)
        let a = String(study.studyID), t2 = try XCTUnwrap(study.seriesIDs[.sagittalT2])
        let before = try Self.ingest(root, into: scratch.appendingPathComponent("before"))
        XCTAssertEqual(before.studies[0].fusion?.unresolvedCoordinates, [])

        // The slice that the first spinal-canal row names, saved again as instance 1000 under a name that sorts first (the
        // old rule kept that file and left the rows naming the original unresolved), and a row naming the copy.
        let rows = study.labelCoordinates.filter { $0.seriesID == t2 }
        let named = rows[0], other = rows[rows.count - 1]
        XCTAssertEqual(named.instanceNumber, other.instanceNumber, "the spinal canal's points lie on the mid-sagittal slice")
        let series = root.appendingPathComponent("train_images/\(a)/\(t2)")
        try Self.copy(series.appendingPathComponent("\(named.instanceNumber).dcm"), to: series.appendingPathComponent("0.dcm"), instance: 1000)
        // The same slice re-acquired (other pixels) as instance 2000, its name sorting last, and a row naming it (another
        // level's): three files at one position, of which 0.dcm (first in path order) is fused.
        try Self.copy(series.appendingPathComponent("\(other.instanceNumber).dcm"), to: series.appendingPathComponent("z.dcm"),
                      instance: 2000, halvePixels: true)
        let csv = root.appendingPathComponent("train_label_coordinates.csv")
        var text = try String(contentsOf: csv, encoding: .utf8)
        for (row, instance) in [(named, 1000), (other, 2000)] {
            text += "\(a),\(t2),\(instance),\(row.condition),\(row.level)," + String(format: "%.3f,%.3f", row.x, row.y) + "\n"
        }
        try Data(text.utf8).write(to: csv)

        let catalog = CatalogScanner.scan(root: root.path)
        let scanned = try XCTUnwrap(catalog.study(a)?.primarySeries(.sagittalT2))
        XCTAssertEqual(scanned.sliceCount, 7, "files at one position are one slice of the scan")
        XCTAssertEqual(scanned.imageFiles.count, 9)
        XCTAssertEqual(scanned.droppedFiles, [])

        let after = try Self.ingest(root, into: scratch.appendingPathComponent("after"))
        let fused = try XCTUnwrap(after.studies.first)
        XCTAssertEqual(fused.fusion?.unresolvedCoordinates, [], "rows naming the original, its copy and the re-acquisition are all placed")
        XCTAssertEqual(fused.fusion?.keypointsPlaced, before.studies[0].fusion?.keypointsPlaced)
        let reacquired = "train_images/\(a)/\(t2)/z.dcm"
        XCTAssertEqual(fused.problems.map(\.path), [reacquired])
        XCTAssertEqual(fused.problems.map(\.reason), ["a re-acquisition: at the position of train_images/\(a)/\(t2)/0.dcm with other "
            + "pixels; train_images/\(a)/\(t2)/0.dcm is fused (the first file in path order), this file's label rows are placed on its "
            + "own geometry"])
        XCTAssertTrue(after.files.contains { $0.path == reacquired }, "the re-acquisition is among the run's skipped files")
        XCTAssertEqual(after.summary.filesSkipped, before.summary.filesSkipped + 1)
        XCTAssertEqual(after.summary.filesUsed, before.summary.filesUsed + 1, "the same-pixel copy is used: it is the slice")
        // Same pixels fused, same keypoints (each added row lands on its twin's point): the same shard bytes.
        XCTAssertEqual(try Data(contentsOf: scratch.appendingPathComponent("after/shard-00000.h5")),
                       try Data(contentsOf: scratch.appendingPathComponent("before/shard-00000.h5")))
    }
}
