import Foundation
@testable import Ingest
import TestSupport
import XCTest

/// Decoding pydicom's real DICOM fixtures through GDCM.
final class DicomReaderTests: XCTestCase {
    private func pixels(_ name: String) throws -> [Float] {
        try DicomReader.readImage(Fixtures.dicom(name).path).pixels
    }

    /// pydicom's pixel_array (modality LUT applied) for the same file, as float32.
    private func pydicomPixels(_ name: String) throws -> [Float] {
        let out = try Fixtures.scratch().appendingPathComponent("px.f32")
        let r = try Fixtures.python("""
        import sys, numpy as np
        from pydicom import dcmread
        from pydicom.pixels import apply_modality_lut
        d = dcmread(sys.argv[1])
        apply_modality_lut(d.pixel_array, d).astype(np.float32).tofile(sys.argv[2])
        """, [Fixtures.dicom(name).path, out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let data = try Data(contentsOf: out)
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func testMRSmallTwinsDecodeToTheSamePixels() throws {
        let reference = try pixels("MR_small.dcm")
        XCTAssertEqual(reference.count, 64 * 64)
        XCTAssertEqual(Array(reference[(10 * 64 + 10)..<(10 * 64 + 20)]), [760, 653, 463, 531, 766, 961, 651, 527, 414, 354])
        for twin in ["MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_implicit.dcm",
                     "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_padded.dcm"] {
            XCTAssertEqual(try pixels(twin), reference, twin)
        }
        XCTAssertEqual(reference, try pydicomPixels("MR_small.dcm"))
    }

    func testMR2JPEG2000LosslessEqualsUncompressedWithRescale() throws {
        let unc = try DicomReader.readImage(Fixtures.dicom("MR2_UNCR.dcm").path)
        XCTAssertEqual(unc.header.rows, 1024)
        XCTAssertEqual(unc.header.rescaleSlope, 3.774114, accuracy: 1e-9)
        let j2k = try DicomReader.readImage(Fixtures.dicom("MR2_J2KR.dcm").path)
        XCTAssertEqual(j2k.header.transferSyntaxUID, "1.2.840.10008.1.2.4.90")
        XCTAssertEqual(j2k.pixels, unc.pixels)
        XCTAssertEqual(unc.pixels, try pydicomPixels("MR2_UNCR.dcm"))
    }

    func testEnhancedMRTenFramesAndItsTwins() throws {
        let reference = try DicomReader.readImage(Fixtures.dicom("emri_small.dcm").path)
        XCTAssertEqual(reference.header.numberOfFrames, 10)
        XCTAssertEqual(reference.pixels.count, 10 * 64 * 64)
        XCTAssertEqual(reference.pixels, try pydicomPixels("emri_small.dcm"))
        for twin in ["emri_small_RLE.dcm", "emri_small_big_endian.dcm", "emri_small_jpeg_2k_lossless.dcm",
                     "emri_small_jpeg_ls_lossless.dcm"] {
            XCTAssertEqual(try pixels(twin), reference.pixels, twin)
        }
    }

    func testJPEGLosslessAndDeflateMatchIndependentDecoders() throws {
        // JPEG lossless (process 14 SV1), checked against libjpeg through pylibjpeg.
        let jpeg = try DicomReader.readImage(Fixtures.dicom("JPEG-LL.dcm").path)
        XCTAssertEqual(jpeg.header.transferSyntaxUID, "1.2.840.10008.1.2.4.70")
        XCTAssertEqual(jpeg.pixels, try pydicomPixels("JPEG-LL.dcm"))
        // Deflated explicit VR little endian.
        XCTAssertEqual(try pixels("image_dfl.dcm"), try pydicomPixels("image_dfl.dcm"))
    }

    func testTruncatedPixelDataIsRejectedWithAReason() {
        XCTAssertThrowsError(try DicomReader.readImage(Fixtures.dicom("MR_truncated.dcm").path)) { error in
            let e = error as! GDCMError
            XCTAssertTrue(e.path.hasSuffix("MR_truncated.dcm"))
            XCTAssertTrue(e.message.contains("truncated") || e.message.contains("ncomplete"), e.message)
        }
    }

    func testNonImageObjectsAreRecognised() throws {
        for name in ["test-SR.dcm", "rtplan.dcm", "rtstruct.dcm", "rtdose.dcm", "waveform_ecg.dcm"] {
            let h = try DicomReader.readHeader(Fixtures.dicom(name).path)
            XCTAssertTrue(h.isNonImage, name)
            XCTAssertThrowsError(try DicomReader.readImage(Fixtures.dicom(name).path), name) { error in
                XCTAssertTrue("\(error)".contains("not an image"), "\(error)")
            }
        }
        XCTAssertFalse(try DicomReader.readHeader(Fixtures.dicom("MR_small.dcm").path).isNonImage)
        // A header read stops at Pixel Data without reading its value; whether the file has one still shows (from the
        // structure walk; a deflated file's from GDCM, which reads it).
        for (name, has) in [("MR_small.dcm", true), ("MR_small_RLE.dcm", true), ("emri_small.dcm", true), ("image_dfl.dcm", true),
                            ("test-SR.dcm", false), ("rtplan.dcm", false), ("rtdose.dcm", true)] {
            XCTAssertEqual(try DicomReader.readHeader(Fixtures.dicom(name).path).hasPixelData, has, name)
        }
    }

    func testColourImageIsRefusedWhereGreyIsNeeded() {
        XCTAssertThrowsError(try DicomReader.readImage(Fixtures.dicom("SC_rgb.dcm").path)) { error in
            XCTAssertTrue("\(error)".contains("colour"), "\(error)")
        }
    }

    func testHeaderFieldsOfMRSmall() throws {
        let h = try DicomReader.readHeader(Fixtures.dicom("MR_small.dcm").path)
        XCTAssertEqual(h.modality, "MR")
        XCTAssertEqual(h.sopClassUID, "1.2.840.10008.5.1.4.1.1.4")
        XCTAssertEqual(h.rows, 64)
        XCTAssertEqual(h.bitsAllocated, 16)
        XCTAssertEqual(h.pixelRepresentation, 1)
        XCTAssertEqual(h.echoTime, 240)
        XCTAssertEqual(h.repetitionTime, 4000)
        XCTAssertEqual(h.framePositions, [Vec3(-83.9063, -91.2, 6.6406)])
        XCTAssertEqual(h.pixelSpacing?.row, 0.3125)
        XCTAssertEqual(h.sliceThickness, 0.8)
        let g = try h.geometry().get()
        XCTAssertEqual(g.normal, Vec3(0, 0, 1))
        XCTAssertEqual(g.patientPosition(row: 2, column: 4), Vec3(-83.9063 + 4 * 0.3125, -91.2 + 2 * 0.3125, 6.6406))
    }
    /// Uncompressed little-endian files are converted by fuse3d from the data set (no GDCM image reader): the bits
    /// above Bits Stored (overlays, garbage) are cleared, signed values sign-extended from Bits Stored, the rescale
    /// applied in double and MONOCHROME1 flipped, as numpy computes it; the same pixels in big endian go through
    /// GDCM's raw codec (its overlay clean-up) and give the same values, and a High Bit other than Bits Stored − 1
    /// is left to GDCM too.
    func testUncompressedPixelsWithBitsAboveBitsStoredMatchNumpyAndGDCM() throws {
        let dir = try Fixtures.scratch()
        let r = try Fixtures.python("""
        import sys, os, numpy as np
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, MRImageStorage, generate_uid
        out = sys.argv[1]
        rng = np.random.default_rng(3)
        stored = rng.integers(0, 4096, size=(24, 20)).astype(np.uint16)
        garbage = (rng.integers(0, 16, size=stored.shape).astype(np.uint16) << 12)
        words = stored | garbage
        def write(name, syntax, signed, photometric, slope, intercept, high_bit=11):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MRImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = syntax
            ds = Dataset(); ds.file_meta = meta
            ds.SOPClassUID = MRImageStorage; ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID = generate_uid(); ds.SeriesInstanceUID = generate_uid(); ds.Modality = "MR"
            ds.Rows, ds.Columns = stored.shape
            ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = photometric
            ds.BitsAllocated = 16; ds.BitsStored = 12; ds.HighBit = high_bit; ds.PixelRepresentation = 1 if signed else 0
            ds.RescaleSlope = slope; ds.RescaleIntercept = intercept
            ds.ImagePositionPatient = [0, 0, 0]; ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]; ds.PixelSpacing = [1, 1]
            big = syntax == ExplicitVRBigEndian
            ds.PixelData = words.astype(">u2" if big else "<u2").tobytes()
            ds.save_as(os.path.join(out, name), implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=not big, enforce_file_format=True)
        write("signed_le.dcm", ExplicitVRLittleEndian, True, "MONOCHROME2", "2.5", "-100")
        write("signed_be.dcm", ExplicitVRBigEndian, True, "MONOCHROME2", "2.5", "-100")
        write("unsigned_implicit_m1.dcm", ImplicitVRLittleEndian, False, "MONOCHROME1", "1", "0")
        write("high_bit_15.dcm", ExplicitVRLittleEndian, False, "MONOCHROME2", "1", "0", high_bit=15)
        signed = np.where(stored >= 2048, stored.astype(np.int64) - 4096, stored.astype(np.int64))
        (signed.astype(np.float64) * 2.5 - 100).astype(np.float32).tofile(os.path.join(out, "signed.f32"))
        u = stored.astype(np.float32)
        (u.max() + u.min() - u).astype(np.float32).tofile(os.path.join(out, "unsigned_m1.f32"))
        """, [dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        func floats(_ name: String) throws -> [Float] {
            try Data(contentsOf: dir.appendingPathComponent(name)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        let signed = try DicomReader.readImage(dir.appendingPathComponent("signed_le.dcm").path)
        XCTAssertEqual(signed.pixels, try floats("signed.f32"))
        XCTAssertTrue(signed.pixels.contains { $0 < -100 }, "some values are negative before the rescale")
        XCTAssertEqual(try DicomReader.readImage(dir.appendingPathComponent("signed_be.dcm").path).pixels, signed.pixels)
        XCTAssertEqual(try DicomReader.readImage(dir.appendingPathComponent("unsigned_implicit_m1.dcm").path).pixels,
                       try floats("unsigned_m1.f32"))
        // High Bit 15 with Bits Stored 12: GDCM's reading, whatever it is, and not fuse3d's masking of the low 12 bits.
        let shifted = try DicomReader.readImage(dir.appendingPathComponent("high_bit_15.dcm").path).pixels
        XCTAssertEqual(shifted.count, 24 * 20)
        XCTAssertNotEqual(shifted, try floats("unsigned_m1.f32"))
    }
}
