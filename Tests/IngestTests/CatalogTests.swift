import Foundation
@testable import Ingest
import TestSupport
import XCTest

/// Catalog scanning on small archives written with pydicom from MR_small.dcm.
final class CatalogTests: XCTestCase {
    /// Writes an archive: a sagittal T2 series (6 slices, instance numbers and file names shuffled),
    /// an axial T2 series of two oblique stacks (3 slices each, tilted ±8°), a T1 sagittal series,
    /// a localizer, a duplicate file, a non-DICOM file and a symbolic link loop.
    static func makeArchive(rsna: Bool) throws -> URL {
        let dir = try Fixtures.scratch("catalog")
        let r = try Fixtures.python("""
        import sys, os, math, numpy as np
        from pydicom import dcmread
        from pydicom.uid import generate_uid
        src, root, rsna = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
        study = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
        def write(series_uid, series_dir, name, desc, iop, ipp, inst, te, tr, value, image_type="ORIGINAL\\\\PRIMARY"):
            d = dcmread(src)
            d.StudyInstanceUID = study; d.SeriesInstanceUID = series_uid
            d.SOPInstanceUID = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
            d.file_meta.MediaStorageSOPInstanceUID = d.SOPInstanceUID
            d.SeriesDescription = "" if rsna else desc
            d.ImageOrientationPatient = [round(v, 6) for v in iop]
            d.ImagePositionPatient = [round(v, 4) for v in ipp]
            d.InstanceNumber = inst; d.EchoTime = te; d.RepetitionTime = tr; d.ImageType = image_type
            d.PixelSpacing = [0.5, 0.5]; d.SliceThickness = 4
            d.PixelData = np.full((64, 64), value, dtype=np.int16).tobytes()
            os.makedirs(series_dir, exist_ok=True)
            d.save_as(os.path.join(series_dir, name))
            return d
        base = os.path.join(root, "train_images", "4242") if rsna else root
        # Sagittal T2: slices along x, 4 mm apart; instance numbers and names shuffled.
        sag = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
        order = [3, 0, 5, 1, 4, 2]
        for k, pos in enumerate(order):
            write(sag, os.path.join(base, "101"), f"{(k * 7) % 6}.dcm", "SAG T2 FSE", [0, 1, 0, 0, 0, -1],
                  [-10 + 4 * pos, -16, 16], inst=k + 1, te=100, tr=3000, value=100 + pos)
        # Axial T2: two oblique stacks at two disc levels.
        ax = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
        n = 0
        for level, (zc, tilt) in enumerate([(0.0, 8.0), (-40.0, -8.0)]):
            t = math.radians(tilt)
            row = [1, 0, 0]; col = [0, math.cos(t), -math.sin(t)]
            normal = [0, math.sin(t), math.cos(t)]
            for s in (-1, 0, 1):
                c = [0, 0, zc + 4 * s]
                ipp = [c[i] + 4 * s * 0 for i in range(3)]
                ipp = [-16, -16 * math.cos(t), zc + 16 * math.sin(t) + 4 * s]
                n += 1
                write(ax, os.path.join(base, "202"), f"{9 - n}.dcm", "AX T2", row + col, ipp, inst=n, te=110, tr=4000,
                      value=10 * level + s + 50)
        # Sagittal T1.
        t1 = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
        for k in range(4):
            write(t1, os.path.join(base, "303"), f"{k}.dcm", "SAG T1", [0, 1, 0, 0, 0, -1], [-6 + 4 * k, -16, 16],
                  inst=k + 1, te=10, tr=500, value=7)
        # A localizer.
        loc = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
        write(loc, os.path.join(base, "404"), "1.dcm", "3-plane loc", [0, 1, 0, 0, 0, -1], [0, -16, 16], inst=1, te=2,
              tr=5, value=1, image_type="ORIGINAL\\\\PRIMARY\\\\LOCALIZER")
        # A duplicate of a sagittal T2 file, a non-DICOM file, a symlink loop.
        import shutil
        shutil.copy(os.path.join(base, "101", "0.dcm"), os.path.join(base, "101", "0-copy.dcm"))
        open(os.path.join(base, "101", "notes.txt"), "w").write("not dicom")
        os.symlink("..", os.path.join(base, "101", "loop"))
        if rsna:
            with open(os.path.join(root, "train_series_descriptions.csv"), "w") as f:
                f.write("study_id,series_id,series_description\\n4242,101,Sagittal T2/STIR\\n4242,202,Axial T2\\n4242,303,Sagittal T1\\n")
        """, [Fixtures.dicom("MR_small.dcm").path, dir.path, rsna ? "1" : "0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return dir
    }

    func testTagModeClassifiesSplitsAndOrders() throws {
        let root = try Self.makeArchive(rsna: false)
        let catalog = CatalogScanner.scan(root: root.path)
        XCTAssertEqual(catalog.mode, "tags")
        XCTAssertEqual(catalog.studies.count, 1)
        let study = catalog.studies[0]
        let sag = try XCTUnwrap(study.primarySeries(.sagittalT2))
        XCTAssertEqual(sag.plane, .sagittal)
        XCTAssertEqual(sag.stacks.count, 1)
        // Ordered by position along the normal (−x for this orientation), not by instance number.
        let xs = sag.stacks[0].images.map(\.position.x)
        XCTAssertEqual(xs, [10, 6, 2, -2, -6, -10])
        XCTAssertEqual(sag.stacks[0].spacing, 4, accuracy: 1e-6)
        XCTAssertTrue(sag.notes.contains { $0.contains("duplicate SOP Instance UID") }, "\(sag.notes)")

        let axial = try XCTUnwrap(study.primarySeries(.axialT2))
        XCTAssertEqual(axial.stacks.count, 2)
        XCTAssertEqual(axial.stacks.map(\.images.count), [3, 3])
        XCTAssertEqual(axial.stacks[0].spacing, 4 * cos(8 * .pi / 180), accuracy: 1e-3)

        XCTAssertNotNil(study.primarySeries(.sagittalT1))
        let localizer = try XCTUnwrap(study.series.first { $0.description == "3-plane loc" })
        XCTAssertEqual(localizer.kind, .other)
        XCTAssertTrue(localizer.kindReason.contains("localizer"))

        XCTAssertTrue(catalog.problems.contains { $0.path == "101/notes.txt" && $0.reason.contains("not a DICOM file") },
                      "\(catalog.problems)")
        XCTAssertTrue(catalog.problems.contains { $0.path.hasPrefix("101/loop") && $0.reason.contains("loop") }, "\(catalog.problems)")
        XCTAssertTrue(catalog.report().contains("Axial T2"))
    }

    func testRSNAModeUsesFolderIDsAndTheCSV() throws {
        let root = try Self.makeArchive(rsna: true)
        let catalog = CatalogScanner.scan(root: root.path)
        XCTAssertEqual(catalog.mode, "rsna")
        let study = try XCTUnwrap(catalog.study("4242"))
        XCTAssertEqual(study.primarySeries(.sagittalT2)?.seriesID, "101")
        XCTAssertEqual(study.primarySeries(.axialT2)?.seriesID, "202")
        XCTAssertEqual(study.primarySeries(.sagittalT1)?.kindReason, "train_series_descriptions.csv")
        // The localizer is not in the CSV, so its tags decide.
        XCTAssertEqual(study.series.first { $0.seriesID == "404" }?.kind, .other)
    }

    /// The ingest's scan writes each study to the spill as it is made (issue 27): the same catalog as the in-memory
    /// scan, study for study, once read back; the placement notes added after the study was written come with it; the
    /// spill has no name in its folder.
    func testSpilledStudiesReadBackAsTheInMemoryScansStudies() throws {
        let root = try Self.makeArchive(rsna: true)
        let out = try Fixtures.scratch("spill")
        defer { try? FileManager.default.removeItem(at: out) }
        let memory = CatalogScanner.scan(root: root.path)
        let spill = try StudySpill(directory: out)
        let (catalog, spilled, _) = try CatalogScanner.scan(root: root.path, reusing: nil, index: nil, pool: nil, spill: spill)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), [])
        XCTAssertTrue(catalog.studies.isEmpty)
        XCTAssertEqual(spilled.map(\.studyID), memory.studies.map(\.studyID))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for (entry, study) in zip(spilled, memory.studies) {
            XCTAssertEqual(entry.studyInstanceUID, study.studyInstanceUID)
            XCTAssertEqual(try encoder.encode(spill.load(entry)), try encoder.encode(study))
        }
        var noted = spilled[0]
        noted.laterNotes = ["a note added after the scan wrote the study"]
        XCTAssertEqual(try spill.load(noted).notes, memory.studies[0].notes + noted.laterNotes)
        // The catalog's accounting, tallied on the way, is the in-memory scan's.
        XCTAssertEqual(catalog.accounting, memory.accounting)
        XCTAssertEqual(catalog.problems, memory.problems)
    }

    func testSeriesLoaderDecodesStacksInOrder() throws {
        let root = try Self.makeArchive(rsna: false)
        let catalog = CatalogScanner.scan(root: root.path)
        let axial = try XCTUnwrap(catalog.studies[0].primarySeries(.axialT2))
        let (volume, problems) = SeriesLoader.load(axial, root: catalog.root)
        XCTAssertEqual(problems, [])
        XCTAssertEqual(volume.stacks.count, 2)
        // Stacks top (z = 0) to bottom (z = −40); slices ordered along the normal: values s + 50 + 10·level.
        XCTAssertEqual(volume.stacks[0].slices.map { $0.pixels[0] }, [49, 50, 51])
        XCTAssertEqual(volume.stacks[1].slices.map { $0.pixels[0] }, [59, 60, 61])
        XCTAssertEqual(volume.stacks[1].slices[0].geometry.normal.y, sin(-8 * .pi / 180), accuracy: 1e-4)
    }

    func testCSVParsesQuotesAndEmptyCells() {
        let t = CSVTable.parse("a,b,c\r\n1,\"x, \"\"y\"\"\",\n2,,z\n")
        XCTAssertEqual(t.header, ["a", "b", "c"])
        XCTAssertEqual(t.rows, [["1", "x, \"y\"", ""], ["2", "", "z"]])
    }

    func testClassifierUsesContrastWhenTheDescriptionIsSilent() {
        let t1 = SeriesClassifier.classify(description: "", plane: .sagittal, echoTime: 12, repetitionTime: 600,
                                           inversionTime: nil, imageType: "ORIGINAL", sliceCount: 15)
        XCTAssertEqual(t1.kind, .sagittalT1)
        let stir = SeriesClassifier.classify(description: "", plane: .sagittal, echoTime: 40, repetitionTime: 4000,
                                             inversionTime: 150, imageType: "ORIGINAL", sliceCount: 15)
        XCTAssertEqual(stir.kind, .sagittalT2)
        let ax = SeriesClassifier.classify(description: "AX T2 FSE", plane: .axial, echoTime: nil, repetitionTime: nil,
                                           inversionTime: nil, imageType: "ORIGINAL", sliceCount: 20)
        XCTAssertEqual(ax.kind, .axialT2)
        let coronal = SeriesClassifier.classify(description: "COR T2", plane: .coronal, echoTime: 100, repetitionTime: 3000,
                                                inversionTime: nil, imageType: "ORIGINAL", sliceCount: 20)
        XCTAssertEqual(coronal.kind, .other)
    }

    func testGDCMWarningsAreListedWithTheirFile() throws {
        let dir = try Fixtures.scratch()
        try FileManager.default.copyItem(at: Fixtures.dicom("SC_rgb_jpeg.dcm"), to: dir.appendingPathComponent("odd.dcm"))
        let catalog = CatalogScanner.scan(root: dir.path)
        XCTAssertEqual(catalog.warnings.map(\.path), ["odd.dcm"])
        XCTAssertTrue(catalog.warnings[0].reason.contains("buggy DICOM file"), catalog.warnings[0].reason)
        XCTAssertTrue(catalog.report().contains("warnings (files read all the same):"))
    }
}
