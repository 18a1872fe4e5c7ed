import Foundation
import Ingest
import Synth
import TestSupport
import XCTest

/// Two studies that would share one sample id: a study folder that also holds a series of another study
/// (a merged or re-sent export), and one Study Instance UID under two folders. One rule (the RSNA folder
/// is the study), the same bytes at any worker count, and a note on each study concerned.
final class StudyGroupingTests: XCTestCase {
    func testAFolderIsOneStudyWhateverUIDsItsFilesCarryAndEveryRunAgrees() throws {
        let scratch = try Fixtures.scratch()
        let root = scratch.appendingPathComponent("archive")
        let summary = try SynthCohort.write(SynthOptions(studies: 2, seed: 11, sagittalMatrix: 40, axialMatrix: 32,
                                                         sagittalSlices: 5...5, axialSlicesPerStack: 2...2), to: root)
        let (a, b) = (String(summary.studies[0].studyID), String(summary.studies[1].studyID))
        let images = root.appendingPathComponent("train_images")
        let fm = FileManager.default
        let moved = try XCTUnwrap(summary.studies[1].seriesIDs[.sagittalT1])
        try fm.copyItem(at: images.appendingPathComponent("\(b)/\(moved)"), to: images.appendingPathComponent("\(a)/\(moved)"))
        try fm.copyItem(at: images.appendingPathComponent(a), to: images.appendingPathComponent("12345"))

        let catalog = CatalogScanner.scan(root: root.path)
        XCTAssertEqual(catalog.studies.map(\.studyID), ["12345", a, b].sorted { Int($0)! < Int($1)! })
        let merged = try XCTUnwrap(catalog.study(a))
        XCTAssertEqual(merged.studyInstanceUID, a, "the UID most of the folder's files carry")
        XCTAssertTrue(merged.notes.contains { $0.hasPrefix("study folder holds 2 Study Instance UIDs (\(a): series ") && $0.contains("; \(b): series \(moved))") },
                      "\(merged.notes)")
        XCTAssertTrue(merged.notes.contains("Study Instance UID \(a) is also under study folder(s) 12345; each folder is its own study (RSNA layout)"),
                      "\(merged.notes)")
        XCTAssertEqual(catalog.study(b)!.notes,
                       ["Study Instance UID \(b) is also under study folder(s) \(["12345", a].sorted().joined(separator: ", ")); each folder is its own study (RSNA layout)"])
        XCTAssertTrue(catalog.report().contains("  note: study folder holds 2 Study Instance UIDs"))

        var shards: [Data] = []
        for workers in [1, 2] {
            let out = scratch.appendingPathComponent("shards-\(workers)")
            var pipeline = PipelineConfig()
            pipeline.fusion.size = 12
            let outcome = try IngestRunner.run(IngestOptions(archive: root.path, output: out, pipeline: pipeline, workers: workers))
            XCTAssertEqual(outcome.report.summary.fused, 3)
            XCTAssertEqual(outcome.report.summary.samples, 3)
            XCTAssertEqual(outcome.report.studies.first { $0.studyID == a }?.notes, merged.notes)
            shards.append(try Data(contentsOf: out.appendingPathComponent("shard-00000.h5")))
        }
        XCTAssertEqual(shards[0], shards[1], "the same bytes with 1 and 2 workers")
    }
}
