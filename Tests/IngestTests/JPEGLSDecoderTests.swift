import Foundation
@testable import Ingest
import TestSupport
import XCTest

/// JPEG-LS frames decoded by CharLS directly: byte-identical to GDCM's JPEG-LS codec on every greyscale
/// JPEG-LS fixture of pydicom and pydicom-data (lossless and near-lossless, 8/12/16 bits, signed, multi-frame),
/// colour left to GDCM, and the decode path giving the uncompressed file's values.
final class JPEGLSDecoderTests: XCTestCase {
    static let greyscale = [
        "pydicom/data/test_files/MR_small_jpeg_ls_lossless.dcm",  // 16 bit signed
        "pydicom/data/test_files/JPEGLSNearLossless_08.dcm",  // near-lossless, 8 bit
        "pydicom/data/test_files/JPEGLSNearLossless_16.dcm",  // near-lossless, 16 bit
        "data_store/data/emri_small_jpeg_ls_lossless.dcm",  // 12 of 16 bits, 10 frames
    ]
    static let colour = ["pydicom/data/test_files/SC_rgb_jls_lossy_line.dcm", "pydicom/data/test_files/SC_rgb_jls_lossy_sample.dcm"]

    func testCharLSEqualsGDCMOnEveryJPEGLSFixture() throws {
        for name in Self.greyscale {
            let path = Fixtures.sitePackages.appendingPathComponent(name).path
            let ours = try RLE.pixelBytes(path, decoder: .fuse3d)
            XCTAssertGreaterThan(ours.count, 0, name)
            XCTAssertTrue(ours == (try RLE.pixelBytes(path, decoder: .gdcm)), "\(name): CharLS and GDCM differ")
        }
        for name in Self.colour {
            let path = Fixtures.sitePackages.appendingPathComponent(name).path
            XCTAssertThrowsError(try RLE.pixelBytes(path, decoder: .fuse3d), "colour is GDCM's to decode")
            XCTAssertEqual(try RLE.pixelBytes(path, decoder: .gdcm).count, 100 * 100 * 3)
        }
        // The decode path uses it: the JPEG-LS copies give the uncompressed files' real values.
        let jls = try DicomReader.readImage(Fixtures.dicom("MR_small_jpeg_ls_lossless.dcm").path)
        let plain = try DicomReader.readImage(Fixtures.dicom("MR_small.dcm").path)
        XCTAssertEqual(jls.pixels, plain.pixels)
        let emri = try DicomReader.readImage(Fixtures.dicom("emri_small_jpeg_ls_lossless.dcm").path)
        let emriPlain = try DicomReader.readImage(Fixtures.dicom("emri_small.dcm").path)
        XCTAssertEqual(emri.pixels.count, 64 * 64 * 10)
        XCTAssertEqual(emri.pixels, emriPlain.pixels)
    }
}
