import Foundation
@testable import Ingest
import TestSupport
import XCTest

/// Every file under an archive has one fate (used, skipped with a reason, or ignored with a reason),
/// hostile headers are caught by the scan, and the series chosen for fusion follow the written rules.
final class FileAccountingTests: XCTestCase {
    /// `CatalogTests.makeArchive(rsna: true)` plus: a 65535×65535 "Sagittal T1" file with 512 bytes of
    /// pixel data (series 505), a 64×64 file whose pixel data is 512 bytes (series 808, Axial T2),
    /// a second Axial T2 series at another level (606, 3 slices), a second Sagittal T1 series with
    /// fewer slices (707, 3 slices) and a DICOM file outside train_images/{study}/{series}/.
    static func makeHostileArchive() throws -> URL {
        let root = try CatalogTests.makeArchive(rsna: true)
        let r = try Fixtures.python("""
        import sys, os, numpy as np
        from pydicom import dcmread
        from pydicom.uid import generate_uid
        root = sys.argv[1]
        base = os.path.join(root, "train_images", "4242")
        template = dcmread(os.path.join(base, "202", "8.dcm"))
        def fresh(series_uid):
            d = dcmread(os.path.join(base, "202", "8.dcm"))
            d.SeriesInstanceUID = series_uid
            d.SOPInstanceUID = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
            d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
            return d
        def save(d, series, name):
            os.makedirs(os.path.join(base, series), exist_ok=True)
            d.save_as(os.path.join(base, series, name))
        # 65535 x 65535 pixels promised, 512 bytes present, alone in its series.
        d = fresh(generate_uid(prefix="1.2.826.0.1.3680043.8.498."))
        d.Rows = 65535; d.Columns = 65535; d.PixelData = bytes(512)
        d.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        save(d, "505", "1.dcm")
        # A sane matrix with pixel data shorter than the image.
        d = fresh(generate_uid(prefix="1.2.826.0.1.3680043.8.498."))
        d.PixelData = bytes(512)
        save(d, "808", "1.dcm")
        # A second Axial T2 series, three slices above the first one's upper stack.
        uid = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
        for s in range(3):
            d = fresh(uid)
            d.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            d.ImagePositionPatient = [-16, -16, 6 + 3 * s]
            d.InstanceNumber = s + 1
            d.PixelData = np.full((64, 64), 300 + s, dtype=np.int16).tobytes()
            save(d, "606", f"{s}.dcm")
        # A second Sagittal T1 series with fewer slices than 303.
        uid = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
        for k in range(3):
            d = fresh(uid)
            d.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
            d.ImagePositionPatient = [-6 + 4 * k, -16, 16]
            d.InstanceNumber = k + 1
            save(d, "707", f"{k}.dcm")
        # A DICOM file outside the layout.
        os.makedirs(os.path.join(root, "train_images", "odd"), exist_ok=True)
        fresh(generate_uid(prefix="1.2.826.0.1.3680043.8.498.")).save_as(os.path.join(root, "train_images", "odd", "x.dcm"))
        # Hidden files: a Finder leftover at the root and a DICOM file below a hidden folder.
        open(os.path.join(root, ".DS_Store"), "wb").write(bytes(64))
        os.makedirs(os.path.join(base, ".thumbs"), exist_ok=True)
        fresh(generate_uid(prefix="1.2.826.0.1.3680043.8.498.")).save_as(os.path.join(base, ".thumbs", "x.dcm"))
        with open(os.path.join(root, "train_series_descriptions.csv"), "a") as f:
            f.write("4242,505,Sagittal T1\\n4242,606,Axial T2\\n4242,707,Sagittal T1\\n4242,808,Axial T2\\n")
        """, [root.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        return root
    }

    /// Regular files under `root` (hidden ones included), counted independently of the scanner.
    private func regularFiles(under root: URL) -> Int {
        let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey], options: [])!
        var n = 0
        for case let url as URL in e where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true { n += 1 }
        return n
    }

    func testScanGivesEveryFileAFateAndNamesTheHostileOnes() throws {
        let root = try Self.makeHostileArchive()
        let catalog = CatalogScanner.scan(root: root.path)
        let a = catalog.accounting

        // 6 sagittal T2 + 1 duplicate + notes.txt, 6 axial, 4 T1, 1 localizer, 505, 808, 3 axial (606),
        // 3 T1 (707), the stray x.dcm, the CSV and two hidden files.
        XCTAssertEqual(a.filesFound, 31)
        XCTAssertEqual(a.filesFound, regularFiles(under: root))
        XCTAssertTrue(a.isComplete, a.summaryLine)
        XCTAssertEqual(a.filesSkipped, 4, "\(a.skipped)")
        XCTAssertEqual(a.filesIgnored, 1 + 1 + 3 + 2, "localizer, duplicate, series 707, two hidden files")
        XCTAssertEqual(a.filesUsed, 6 + 6 + 4 + 3 + 1)

        let skipped = Dictionary(uniqueKeysWithValues: a.skipped.map { ($0.path, $0.reason) })
        let absurd = try XCTUnwrap(skipped["train_images/4242/505/1.dcm"])
        XCTAssertTrue(absurd.contains("absurd dimensions: 65535×65535"), absurd)
        XCTAssertTrue(absurd.contains("512 bytes"), absurd)
        let short = try XCTUnwrap(skipped["train_images/4242/808/1.dcm"])
        XCTAssertTrue(short.contains("pixel data shorter than the image: 512 bytes"), short)
        XCTAssertTrue(short.contains("need 8192"), short)
        XCTAssertTrue(try XCTUnwrap(skipped["train_images/odd/x.dcm"]).contains("outside the RSNA layout"))
        XCTAssertTrue(try XCTUnwrap(skipped["train_images/4242/101/notes.txt"]).contains("not a DICOM file"))

        // The stray file is never a study; the hostile series are no series at all.
        XCTAssertEqual(catalog.studies.map(\.studyID), ["4242"])
        let study = catalog.studies[0]
        XCTAssertNil(study.series.first { ["505", "808"].contains($0.seriesID) })

        // Both Axial T2 series are fused; of two Sagittal T1 series the one with more slices, same coverage.
        XCTAssertEqual(study.seriesToFuse(.axialT2).map(\.seriesID), ["202", "606"])
        XCTAssertEqual(study.seriesToFuse(.sagittalT1).map(\.seriesID), ["303"])
        let second = try XCTUnwrap(a.ignoredSeries.first { $0.seriesID == "707" })
        XCTAssertEqual(second.kind, .sagittalT1)
        XCTAssertEqual(second.files, 3)
        XCTAssertTrue(second.reason.contains("a second Sagittal T1 series: 303"), second.reason)
        let localizer = try XCTUnwrap(a.ignoredSeries.first { $0.seriesID == "404" })
        XCTAssertTrue(localizer.reason.contains("localizer"), localizer.reason)
        // Of two identical files the first in path order is kept.
        XCTAssertEqual(a.ignoredFiles.map(\.path), [".DS_Store", "train_images/4242/.thumbs/x.dcm", "train_images/4242/101/0.dcm"])
        XCTAssertTrue(a.ignoredFiles[1].reason.hasPrefix("hidden"), a.ignoredFiles[1].reason)

        // `scan` lists the problems.
        let listing = catalog.report()
        XCTAssertTrue(listing.contains("train_images/4242/505/1.dcm: absurd dimensions"), listing)
        XCTAssertTrue(listing.contains("31 files found: 20 used, 4 skipped, 7 ignored"), listing)
    }

    func testIngestFusesBothAxialSeriesAndReportsEveryFile() throws {
        let root = try Self.makeHostileArchive()
        let out = try Fixtures.scratch().appendingPathComponent("shards")
        var pipeline = PipelineConfig()
        pipeline.fusion.size = 32
        let report = try IngestRunner.run(IngestOptions(archive: root.path, output: out, pipeline: pipeline, workers: 1)).report
        XCTAssertEqual(report.summary.fused, 1)
        XCTAssertEqual(report.summary.filesFound, 31)
        XCTAssertEqual(report.summary.filesUsed + report.summary.filesSkipped + report.summary.filesIgnored, 31)
        XCTAssertEqual(report.summary.filesSkipped, 4)
        XCTAssertTrue(report.files.contains { $0.path == "train_images/4242/505/1.dcm" && $0.reason.contains("absurd dimensions") })
        XCTAssertEqual(Set(report.ignoredSeries.map(\.seriesID)), ["404", "707"])

        let study = try XCTUnwrap(report.studies.first)
        XCTAssertEqual(study.channels["axial_t2"], "202, 606")
        let axial = try XCTUnwrap(study.fusion?.channels.first { $0.name == "axial_t2" })
        XCTAssertEqual(Set(axial.stacks.map(\.seriesID)), ["202", "606"])
        XCTAssertGreaterThan(try XCTUnwrap(axial.stacks.first { $0.seriesID == "606" }).coveredVoxels, 0)

        // The JSON names the hostile file as written (no escaped slashes asserted by the ingest helper).
        let text = try String(contentsOf: out.appendingPathComponent(IngestRunner.reportName), encoding: .utf8)
        XCTAssertTrue(text.contains("\"filesFound\" : 31"), text)
        XCTAssertTrue(text.contains("505"), text)
    }

    func testStrictIngestExitsNonZeroAfterWritingTheReport() throws {
        let root = try Self.makeHostileArchive()
        let out = try Fixtures.scratch().appendingPathComponent("shards")
        let r = try Fixtures.run(Fixtures.fuse3d, ["ingest", root.path, "--out", out.path, "--size", "16", "--strict", "--workers", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--strict: 4 file(s) skipped"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("ingest-report.json").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("manifest.json").path))

        let scan = try Fixtures.run(Fixtures.fuse3d, ["scan", root.path])
        XCTAssertEqual(scan.status, 0)
        XCTAssertTrue(scan.stdout.contains("train_images/4242/505/1.dcm: absurd dimensions: 65535×65535"), scan.stdout)
        XCTAssertTrue(scan.stdout.contains("train_images/odd/x.dcm: outside the RSNA layout"), scan.stdout)
    }
}
