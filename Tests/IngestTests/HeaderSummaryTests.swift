import Core
import Foundation
@testable import Ingest
import TestSupport
import XCTest

/// The header index gives back the headers GDCM read, bit for bit, so a catalog (and every study's cache key)
/// made from it is the one a full scan makes.
final class HeaderSummaryTests: XCTestCase {
    /// -0.0, NaN, infinities and per-frame groups survive the index's encoding unchanged; a truncated one throws.
    func testAHeaderFromTheIndexIsTheHeaderReadBitForBit() throws {
        var header = try DicomReader.readHeader(Fixtures.dicom("MR_small.dcm").path)
        header.framePositions = [Vec3(-0.0, .nan, 12.5), nil, Vec3(.infinity, -.infinity, 0.1 + 0.2)]
        header.orientation = (Vec3(1, -0.0, 0), Vec3(0, 0, -1))
        header.sliceThickness = nil
        header.echoTime = 0.1 + 0.7
        header.frameGroups = [FrameFunctionalGroups(rescale: (2.5, -1024)), FrameFunctionalGroups(stackID: "1", inStackPosition: 3)]
        var writer = ByteWriter()
        HeaderSummary(header).write(to: &writer)
        var reader = ByteReader(writer.bytes)
        let back = try XCTUnwrap(try HeaderSummary(reading: &reader).header(path: "/elsewhere/x.dcm"))
        XCTAssertTrue(reader.atEnd)
        var truncated = ByteReader(Array(writer.bytes.dropLast(3)))
        XCTAssertThrowsError(try HeaderSummary(reading: &truncated))
        XCTAssertEqual(HeaderSummary(back), HeaderSummary(header))
        XCTAssertEqual(back.path, "/elsewhere/x.dcm")
        XCTAssertEqual(back.framePositions[0]!.x.sign, .minus)
        XCTAssertTrue(back.framePositions[0]!.y.isNaN)
        XCTAssertNil(back.framePositions[1])
        XCTAssertEqual(back.framePositions[2]!.z, 0.1 + 0.2)
        XCTAssertEqual(back.echoTime, 0.1 + 0.7)
        XCTAssertEqual(back.rows, 64)
        XCTAssertEqual(back.sopInstanceUID, header.sopInstanceUID)
        XCTAssertEqual(back.frameGroups[0].rescale?.intercept, -1024)
        XCTAssertEqual(back.frameGroups[1].inStackPosition, 3)
    }

    /// On a phantom archive with quirks (unreadable, non-DICOM, compressed files) and an enhanced multi-frame one:
    /// a scan reusing the index reads no header, and its catalog (JSON) and every study's cache key equal a full
    /// scan's. A file whose stat changed is read again.
    func testACatalogFromTheIndexIsTheFullScansAndGivesTheSameCacheKeys() throws {
        let scratch = try Fixtures.scratch("header-summary")
        for (name, flags) in [("quirks", ["--studies", "3", "--quirks"]), ("enhanced", ["--studies", "2", "--enhanced"])] {
            let archive = scratch.appendingPathComponent(name)
            let synth = try Fixtures.run(Fixtures.fuse3d, ["synth", "--out", archive.path, "--seed", "4",
                                                           "--sagittal-matrix", "48", "--axial-matrix", "40"] + flags)
            XCTAssertEqual(synth.status, 0, synth.stderr)
            let old = Date().addingTimeInterval(-7200)
            let fm = FileManager.default
            for case let rel as String in fm.enumerator(atPath: archive.path)! {
                try fm.setAttributes([.modificationDate: old], ofItemAtPath: archive.appendingPathComponent(rel).path)
            }
            let full = CatalogScanner.scan(root: archive.path)
            let url = scratch.appendingPathComponent("\(name).index")
            let writer = try HeaderIndex.FileWriter(url: url, root: (archive.path as NSString).standardizingPath, scannedAt: FileIdentity.now())
            let first = CatalogScanner.scan(root: archive.path, reusing: nil, index: writer)
            XCTAssertEqual(first.headers.fromIndex, 0)
            XCTAssertTrue(first.headers.indexWritten)
            try writer.commit()
            let index = try XCTUnwrap(HeaderIndex.load(from: url, root: archive.path))
            XCTAssertNil(HeaderIndex.load(from: url, root: archive.path + "-moved"))
            // One byte changed anywhere in the body, or the file cut short: the checksum refuses the index.
            let bytes = try Data(contentsOf: url)
            for at in [HeaderIndex.magic.count + 3, bytes.count / 2, bytes.count - 17] {
                var damaged = bytes
                damaged[at] ^= 0x5A
                let bad = scratch.appendingPathComponent("\(name)-damaged.index")
                try damaged.write(to: bad)
                XCTAssertNil(HeaderIndex.load(from: bad, root: archive.path), "byte \(at) of \(bytes.count) changed")
                try bytes.prefix(at).write(to: bad)
                XCTAssertNil(HeaderIndex.load(from: bad, root: archive.path), "cut at \(at)")
            }
            let warm = CatalogScanner.scan(root: archive.path, reusing: index)
            // The quirks cohort's 2 unreadable files have no entry: they are read (and fail) again every run.
            XCTAssertEqual(warm.headers.read, name == "quirks" ? 2 : 0, name)
            XCTAssertEqual(warm.headers.fromIndex, full.fileCount - warm.headers.read, name)
            XCTAssertEqual(full.fileCount, name == "quirks" ? 152 : 6, name)
            XCTAssertEqual(full.problems.count, name == "quirks" ? 2 : 0, name)

            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            XCTAssertEqual(try encoder.encode(warm.catalog), try encoder.encode(full), name)
            XCTAssertEqual(full.studies.count, name == "quirks" ? 3 : 2)
            for (a, b) in zip(full.studies, warm.catalog.studies) {
                let keyA = StudyCache.key(study: a, root: full.root, sampleID: 1, labels: [], coordinates: [],
                                          fusion: FusionParameters(), zstdLevel: 3)
                let keyB = StudyCache.key(study: b, root: warm.catalog.root, sampleID: 1, labels: [], coordinates: [],
                                          fusion: FusionParameters(), zstdLevel: 3)
                XCTAssertEqual(keyA.hex, keyB.hex, name)
            }

            let touched = try XCTUnwrap(index.paths.sorted().first)
            try fm.setAttributes([.modificationDate: old.addingTimeInterval(60)], ofItemAtPath: archive.appendingPathComponent(touched).path)
            let again = CatalogScanner.scan(root: archive.path, reusing: index)
            XCTAssertEqual(again.headers.read, warm.headers.read + 1, name)
            XCTAssertEqual(try encoder.encode(again.catalog), try encoder.encode(full), name)
        }
    }
}
