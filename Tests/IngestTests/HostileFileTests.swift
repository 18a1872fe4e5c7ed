import Core
import Foundation
@testable import Ingest
import TestSupport
import XCTest

/// Files built to break a reader: each must come back as an error naming the file, never a crash
/// or an unbounded allocation.
final class HostileFileTests: XCTestCase {
    private func mrSmall() throws -> [UInt8] { Array(try Data(contentsOf: Fixtures.dicom("MR_small.dcm"))) }

    /// Offset of an explicit-VR little-endian element header (group, element, VR).
    private func find(_ bytes: [UInt8], _ group: UInt16, _ element: UInt16, _ vr: String) -> Int? {
        let key: [UInt8] = [UInt8(group & 0xFF), UInt8(group >> 8), UInt8(element & 0xFF), UInt8(element >> 8)] + Array(vr.utf8)
        guard bytes.count >= key.count else { return nil }
        for i in 0...(bytes.count - key.count) where Array(bytes[i..<(i + key.count)]) == key { return i }
        return nil
    }

    private func write(_ bytes: [UInt8], _ name: String, in dir: URL) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    private func assertRejected(_ path: String, containing words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try DicomReader.readImage(path), file: file, line: line) { error in
            guard let e = error as? GDCMError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(e.path, path, file: file, line: line)
            XCTAssertTrue(words.contains { e.message.contains($0) }, e.message, file: file, line: line)
        }
    }

    func testHostileFilesReturnErrorsAndMemoryStaysBounded() throws {
        let dir = try Fixtures.scratch()
        assertRejected(try write([], "empty.dcm", in: dir), containing: ["empty file"])

        // Seeded (issue 31): a failure names its seed and reruns the same inputs.
        var rng = SplitMix64(seed: 0x4805711E)
        let noise = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        assertRejected(try write(noise, "noise.dcm", in: dir), containing: ["not a", "DICOM"])

        // An element whose length claims 4 GB inside a 10 kB file.
        var lying = try mrSmall()
        let desc = try XCTUnwrap(find(lying, 0x0008, 0x0060, "CS"))
        lying[desc + 6] = 0xF0; lying[desc + 7] = 0xFF
        lying.insert(contentsOf: [0, 0], at: desc + 8)
        assertRejected(try write(lying, "lying.dcm", in: dir), containing: ["not a", "truncated", "DICOM"])

        // Pixel data with a 4 GB declared length.
        var hugePixels = try mrSmall()
        let pd = try XCTUnwrap(find(hugePixels, 0x7FE0, 0x0010, "OW"))
        hugePixels.replaceSubrange((pd + 8)..<(pd + 12), with: [0xF0, 0xFF, 0xFF, 0xFF])
        assertRejected(try write(hugePixels, "hugepixels.dcm", in: dir), containing: ["not a", "truncated", "DICOM"])

        // 65535 × 65535 pixels promised, 8 kB present.
        var absurd = try mrSmall()
        for element: UInt16 in [0x0010, 0x0011] {
            let at = try XCTUnwrap(find(absurd, 0x0028, element, "US"))
            absurd[at + 8] = 0xFF; absurd[at + 9] = 0xFF
        }
        let absurdPath = try write(absurd, "absurd.dcm", in: dir)
        assertRejected(absurdPath, containing: ["absurd"])
        XCTAssertEqual(try DicomReader.readHeader(absurdPath).rows, 65535)

        // The same files decoded by a separate fuse3d process, whose peak memory is its own.
        let scan = try Fixtures.runMeasuringMemory(Fixtures.fuse3d, ["scan", "--decode", "--json", dir.path])
        XCTAssertEqual(scan.status, 0)
        for name in ["empty.dcm", "noise.dcm", "lying.dcm", "hugepixels.dcm", "absurd.dcm"] {
            XCTAssertTrue(scan.stdout.contains("\"path\" : \"\(name)\""), name)
        }
        // fuse3d itself (with libtorch mapped) starts near 150 MB, more or less by machine and build; the hostile files
        // (the one claiming 65535² pixels among them) must add little to what one ordinal file costs.
        let plain = try Fixtures.scratch("plain-scan")
        try FileManager.default.copyItem(at: Fixtures.dicom("MR_small.dcm"), to: plain.appendingPathComponent("MR_small.dcm"))
        let baseline = try Fixtures.runMeasuringMemory(Fixtures.fuse3d, ["scan", "--decode", "--json", plain.path])
        XCTAssertEqual(baseline.status, 0)
        XCTAssertLessThan(scan.maxRSSKilobytes - baseline.maxRSSKilobytes, 250 * 1024,
                          "peak RSS of fuse3d scan --decode: \(scan.maxRSSKilobytes) kB, \(baseline.maxRSSKilobytes) kB for one plain file")
    }

    /// The structure walk reads a file through a 32 KiB window that moves forward (issue 20): a header longer than the
    /// window is walked to its end and the file decodes as it did, and a lying length beyond the first window is
    /// still caught, named, before GDCM sees the file.
    func testStructureWalkBeyondItsFirstWindow() throws {
        let dir = try Fixtures.scratch()
        let original = try mrSmall()
        let at = try XCTUnwrap(find(original, 0x0010, 0x0010, "PN"))
        func privateOB(_ element: UInt16, length: UInt32, _ value: [UInt8]) -> [UInt8] {
            [0x09, 0x00, UInt8(element & 0xFF), UInt8(element >> 8)] + Array("OB".utf8) + [0, 0]
                + withUnsafeBytes(of: length.littleEndian, Array.init) + value
        }
        let padding = privateOB(0x1000, length: 100_000, (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        var padded = original
        padded.insert(contentsOf: padding, at: at)
        let plain = try DicomReader.readImage(try write(original, "plain.dcm", in: dir))
        let paddedPath = try write(padded, "padded.dcm", in: dir)
        let image = try DicomReader.readImage(paddedPath)
        XCTAssertEqual(image.pixels, plain.pixels)
        XCTAssertEqual(image.header.rows, 64)
        XCTAssertEqual(try DicomReader.readHeader(paddedPath).seriesInstanceUID, plain.header.seriesInstanceUID)

        var lying = original
        lying.insert(contentsOf: padding + privateOB(0x1001, length: 0x7FFF_FFF0, [1, 2, 3, 4]), at: at)
        assertRejected(try write(lying, "lying-far.dcm", in: dir), containing: ["(0009,1001) claims 2147483632 bytes"])
    }

    func testDegenerateGeometryIsAProblemNotACrash() throws {
        let dir = try Fixtures.scratch()
        // Zero orientation vectors and a NaN position, written by pydicom.
        let r = try Fixtures.python("""
        import sys
        from pydicom import dcmread
        d = dcmread(sys.argv[1])
        d.ImageOrientationPatient = [0, 0, 0, 0, 0, 0]
        d.save_as(sys.argv[2] + "/zero.dcm")
        d = dcmread(sys.argv[1])
        d.ImagePositionPatient = ["NaN", "0", "0"]
        d.save_as(sys.argv[2] + "/nan.dcm")
        d = dcmread(sys.argv[1])
        del d.ImagePositionPatient
        d.save_as(sys.argv[2] + "/nopos.dcm")
        """, [Fixtures.dicom("MR_small.dcm").path, dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let zero = try DicomReader.readHeader(dir.appendingPathComponent("zero.dcm").path)
        guard case .failure(.degenerateGeometry) = zero.geometry() else { return XCTFail("\(zero.geometry())") }
        let nan = try DicomReader.readHeader(dir.appendingPathComponent("nan.dcm").path)
        guard case .failure(let p) = nan.geometry() else { return XCTFail("NaN position accepted") }
        XCTAssertTrue(p.description.contains("geometry"), p.description)
        let nopos = try DicomReader.readImage(dir.appendingPathComponent("nopos.dcm").path)
        XCTAssertThrowsError(try nopos.slices(source: "nopos.dcm")) { XCTAssertTrue("\($0)".contains("ImagePositionPatient")) }
    }

    func testEnhancedMRPerFramePositions() throws {
        let dir = try Fixtures.scratch()
        // A 3-frame enhanced MR whose frames sit 5 mm apart along z, geometry in functional groups only.
        let r = try Fixtures.python("""
        import sys, numpy as np
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.sequence import Sequence
        from pydicom.uid import ExplicitVRLittleEndian, generate_uid
        m = FileMetaDataset(); m.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
        m.MediaStorageSOPInstanceUID = generate_uid(); m.TransferSyntaxUID = ExplicitVRLittleEndian
        d = Dataset(); d.file_meta = m
        d.SOPClassUID = m.MediaStorageSOPClassUID; d.SOPInstanceUID = m.MediaStorageSOPInstanceUID
        d.StudyInstanceUID = generate_uid(); d.SeriesInstanceUID = generate_uid(); d.Modality = "MR"
        d.Rows = 4; d.Columns = 5; d.NumberOfFrames = 3; d.SamplesPerPixel = 1
        d.PhotometricInterpretation = "MONOCHROME2"; d.BitsAllocated = 16; d.BitsStored = 12; d.HighBit = 11
        d.PixelRepresentation = 0
        shared = Dataset()
        po = Dataset(); po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]; shared.PlaneOrientationSequence = Sequence([po])
        pm = Dataset(); pm.PixelSpacing = [0.5, 0.75]; pm.SliceThickness = 5; shared.PixelMeasuresSequence = Sequence([pm])
        d.SharedFunctionalGroupsSequence = Sequence([shared])
        frames = []
        for k in range(3):
            f = Dataset(); pp = Dataset(); pp.ImagePositionPatient = [-10, 20, 30 + 5 * k]
            f.PlanePositionSequence = Sequence([pp]); frames.append(f)
        d.PerFrameFunctionalGroupsSequence = Sequence(frames)
        d.PixelData = (np.arange(60, dtype=np.uint16) * 10).tobytes()
        d.save_as(sys.argv[1], enforce_file_format=True)
        """, [dir.appendingPathComponent("enhanced.dcm").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let image = try DicomReader.readImage(dir.appendingPathComponent("enhanced.dcm").path)
        XCTAssertEqual(image.header.framePositions, [Vec3(-10, 20, 30), Vec3(-10, 20, 35), Vec3(-10, 20, 40)])
        let slices = try image.slices(source: "enhanced.dcm")
        XCTAssertEqual(slices.count, 3)
        XCTAssertEqual(slices[2].geometry.columnSpacing, 0.75)
        XCTAssertEqual(slices[2].geometry.thickness, 5)
        XCTAssertEqual(slices[2].pixels[0], 400)
        XCTAssertEqual(slices[1].geometry.patientPosition(row: 1, column: 2), Vec3(-10 + 1.5, 20.5, 35))
    }

    /// Every DICOM file pydicom and pydicom-data ship (odd, broken and colour ones included) either
    /// decodes or returns an error: none crashes the process (GDCM asserts on some when given the chance).
    func testEveryPydicomFixtureDecodesOrFailsCleanly() throws {
        let dirs = [Fixtures.sitePackages.appendingPathComponent("pydicom/data/test_files"),
                    Fixtures.sitePackages.appendingPathComponent("data_store/data")]
        var decoded = 0, refused = 0
        for dir in dirs {
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() where name.hasSuffix(".dcm") {
                do {
                    let image = try DicomReader.readImage(dir.appendingPathComponent(name).path)
                    XCTAssertEqual(image.pixels.count, image.header.rows * image.header.columns * image.header.numberOfFrames, name)
                    decoded += 1
                } catch let e as GDCMError {
                    XCTAssertFalse(e.message.isEmpty, name)
                    refused += 1
                }
            }
        }
        XCTAssertGreaterThan(decoded, 40)
        XCTAssertGreaterThan(refused, 20)
    }

    /// OpenJPEG prints some decode errors itself; they must land in the file's problem, not on stderr.
    func testCodecMessagesStayOffStandardError() throws {
        let dir = try Fixtures.scratch()
        try FileManager.default.copyItem(at: Fixtures.dicom("JPEG2000-embedded-sequence-delimiter.dcm"),
                                         to: dir.appendingPathComponent("broken-j2k.dcm"))
        let r = try Fixtures.run(Fixtures.fuse3d, ["scan", "--decode", dir.path], environment: ["FUSE3D_PROGRESS": "off"])
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.stderr, "")
        // In a log (no terminal) the one progress line prints whole lines: here its closing one.
        let logged = try Fixtures.run(Fixtures.fuse3d, ["scan", "--decode", dir.path])
        XCTAssertTrue(logged.stderr.hasPrefix("scan: 1/1 files ("), logged.stderr)
        XCTAssertFalse(logged.stderr.contains("\r"), logged.stderr)
        // Refused by the codestream check (issue 32) before OpenJPEG sees it (which said "Invalid number of tiles").
        XCTAssertTrue(r.stdout.contains("broken-j2k.dcm: JPEG 2000 codestream claims 14540801 tiles (at most 65536 are read)"), r.stdout)
    }

    /// Issue 32: values outside physical ranges (PixelSpacing 1e308 trapped the smoothing with "greater than Int.max",
    /// NaN positions trapped the resampler) are the file's problem, named, before any arithmetic uses them.
    func testValuesOutsidePhysicalRangesAreNamedProblems() throws {
        let dir = try Fixtures.scratch()
        /// MR_small with the DS element's text replaced (padded with spaces to the same length, as DS allows).
        func withDS(_ group: UInt16, _ element: UInt16, _ text: String, _ name: String) throws -> String {
            var bytes = try mrSmall()
            let at = try XCTUnwrap(find(bytes, group, element, "DS"))
            let length = Int(bytes[at + 6]) | Int(bytes[at + 7]) << 8
            XCTAssertLessThanOrEqual(text.utf8.count, length)
            let value = Array(text.utf8) + [UInt8](repeating: 0x20, count: length - text.utf8.count)
            bytes.replaceSubrange((at + 8)..<(at + 8 + length), with: value)
            return try write(bytes, name, in: dir)
        }
        let cases: [(String, String)] = [
            (try withDS(0x0028, 0x0030, "1e308\\1e308", "spacing-huge.dcm"), "PixelSpacing 1e+308\\1e+308 mm is outside 0.001 to 50 mm"),
            (try withDS(0x0028, 0x0030, "1e-308\\0.3", "spacing-tiny.dcm"), "PixelSpacing 1e-308\\0.3 mm is outside 0.001 to 50 mm"),
            (try withDS(0x0020, 0x0032, "nan\\0\\0", "position-nan.dcm"), "position or orientation is not a finite number"),
            (try withDS(0x0020, 0x0032, "2e4\\0\\0", "position-far.dcm"), "ImagePositionPatient (20000, 0, 0) is beyond ±10 m"),
            (try withDS(0x0018, 0x0050, "-5", "thickness-negative.dcm"), "SliceThickness -5.0 mm is outside 0 to 500.0 mm"),
            (try withDS(0x0018, 0x0050, "inf", "thickness-inf.dcm"), "SliceThickness inf mm is outside 0 to 500.0 mm"),
        ]
        for (path, reason) in cases {
            let header = try DicomReader.readHeader(path)
            XCTAssertEqual(header.headerProblem?.description, "degenerate geometry: \(reason)", path)
            XCTAssertThrowsError(try DicomReader.readImage(path).slices(source: path), path) { error in
                XCTAssertEqual((error as? GDCMError)?.message, "degenerate geometry: \(reason)", path)
            }
        }
        // The untouched file is fine: the check is not what fails them.
        XCTAssertNil(try DicomReader.readHeader(Fixtures.dicom("MR_small.dcm").path).headerProblem)
    }
}
