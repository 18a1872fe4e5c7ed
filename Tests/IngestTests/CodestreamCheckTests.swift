import Foundation
import CGDCM
@testable import Ingest
import TestSupport
import XCTest

/// Issue 32: a compressed frame's own header is compared with the DICOM header before any codec sees it. The
/// JPEG 2000 case wrote ~50 kB past a heap buffer before (Rows 17 over a 64x64 codestream here).
final class CodestreamCheckTests: XCTestCase {
    /// Offset of an explicit-VR little-endian element's header.
    private func find(_ bytes: [UInt8], _ group: UInt16, _ element: UInt16, _ vr: String) -> Int? {
        let key: [UInt8] = [UInt8(group & 0xFF), UInt8(group >> 8), UInt8(element & 0xFF), UInt8(element >> 8)] + Array(vr.utf8)
        guard bytes.count >= key.count else { return nil }
        for i in 0...(bytes.count - key.count) where Array(bytes[i..<(i + key.count)]) == key { return i }
        return nil
    }

    /// `name` with the US element (0028, element) set to `value` (and (0028, also.0) to also.1), written to a scratch file.
    private func withUS(_ name: String, _ element: UInt16, _ value: UInt16, also: (UInt16, UInt16)? = nil, in dir: URL,
                        file: StaticString = #filePath, line: UInt = #line) throws -> String {
        var bytes = Array(try Data(contentsOf: Fixtures.dicom(name)))
        for (e, v) in [(element, value)] + (also.map { [$0] } ?? []) {
            let at = try XCTUnwrap(find(bytes, 0x0028, e, "US"), "no (0028,\(e)) in \(name)", file: file, line: line)
            bytes[at + 8] = UInt8(v & 0xFF)
            bytes[at + 9] = UInt8(v >> 8)
        }
        let url = dir.appendingPathComponent("\(element)-\(value)-\(name)")
        try Data(bytes).write(to: url)
        return url.path
    }

    private func assertRefused(_ path: String, _ words: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try DicomReader.readImage(path), file: file, line: line) { error in
            let message = (error as? GDCMError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains(words), "\(path): \(message)", file: file, line: line)
        }
    }

    func testCodestreamsThatDisagreeWithRowsOrColumnsNeverReachTheCodec() throws {
        let dir = try Fixtures.scratch()
        // The three lossless encodings of the same 64x64 16-bit image: each decodes to the uncompressed pixels.
        let reference = try DicomReader.readImage(Fixtures.dicom("MR_small.dcm").path).pixels
        for name in ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"] {
            XCTAssertEqual(try DicomReader.readImage(Fixtures.dicom(name).path).pixels, reference, name)
        }
        assertRefused(try withUS("MR_small_jp2klossless.dcm", 0x0010, 17, in: dir),
                      "JPEG 2000 codestream is 64x64 pixels, the header says 64x17 (Columns x Rows)")
        assertRefused(try withUS("MR_small_jp2klossless.dcm", 0x0011, 17, in: dir),
                      "JPEG 2000 codestream is 64x64 pixels, the header says 17x64 (Columns x Rows)")
        assertRefused(try withUS("MR_small_jp2klossless.dcm", 0x0010, 100, in: dir), "the header says 64x100")
        // A BitsAllocated of 8 over 16-bit JPEG 2000 samples: refused before GDCM's image reader (which would have
        // taken the codestream's precision over the tags) sees it.
        assertRefused(try withUS("MR_small_jp2klossless.dcm", 0x0100, 8, also: (0x0101, 8), in: dir), "more than BitsAllocated 8")
        assertRefused(try withUS("MR_small_jpeg_ls_lossless.dcm", 0x0010, 17, in: dir),
                      "JPEG-LS codestream is 64x64 pixels, the header says 64x17")
        assertRefused(try withUS("JPEG-lossy.dcm", 0x0011, 17, in: dir), "JPEG codestream is 256x1024 pixels, the header says 17x1024")
        assertRefused(try withUS("MR_small_RLE.dcm", 0x0100, 8, also: (0x0101, 8), in: dir), "RLE")
    }

    func testFrameHeaderParsersRefuseWhatDoesNotParse() throws {
        let expect = (rows: 64, columns: 64)
        func check(_ syntax: String, _ bytes: [UInt8]) -> String? {
            var error = [CChar](repeating: 0, count: 512)
            let ok = gd_check_frame_header(syntax, bytes, UInt64(bytes.count), Int32(expect.rows), Int32(expect.columns), 1, 16,
                                           &error, Int32(error.count))
            return ok == 1 ? nil : String(cString: error)
        }
        // A SIZ of a 64x64 one-component 16-bit image, one tile.
        func siz(width: UInt32 = 64, height: UInt32 = 64, tile: UInt32 = 64, components: UInt16 = 1, precision: UInt8 = 15) -> [UInt8] {
            func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
            let lsiz = UInt16(38 + 3 * Int(components))
            var out: [UInt8] = [0xFF, 0x4F, 0xFF, 0x51, UInt8(lsiz >> 8), UInt8(lsiz & 0xFF), 0, 0]
            out += be32(width) + be32(height) + be32(0) + be32(0) + be32(tile) + be32(tile) + be32(0) + be32(0)
            out += [UInt8(components >> 8), UInt8(components & 0xFF)]
            for _ in 0..<components { out += [precision, 1, 1] }
            return out
        }
        let j2k = "1.2.840.10008.1.2.4.90"
        XCTAssertNil(check(j2k, siz()))
        XCTAssertEqual(check(j2k, siz(width: 160, height: 160)), "JPEG 2000 codestream is 160x160 pixels, the header says 64x64 (Columns x Rows)")
        XCTAssertEqual(check(j2k, siz(tile: 0)), "JPEG 2000 SIZ segment has an inconsistent image or tile grid")
        XCTAssertEqual(check(j2k, siz(tile: 1)), nil)  // 4096 tiles: allowed
        XCTAssertEqual(check(j2k, siz(width: 64, height: 64, components: 3)), "JPEG 2000 codestream has 3 component(s), the header says 1 sample(s) per pixel")
        XCTAssertEqual(check(j2k, Array(siz().prefix(20))), "JPEG 2000 SIZ segment is cut short")
        XCTAssertEqual(check(j2k, [0xFF, 0xD8]), "JPEG 2000 codestream does not start with SOC and SIZ")
        // JPEG: SOI, an APP0 of 16 bytes, SOF1 of a 64x64 12-bit image.
        let sof: [UInt8] = [0xFF, 0xC1, 0, 11, 12, 0, 64, 0, 64, 1, 1, 0x11, 0]
        let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 0, 16] + [UInt8](repeating: 0, count: 14) + sof
        XCTAssertNil(check("1.2.840.10008.1.2.4.51", jpeg))
        XCTAssertEqual(check("1.2.840.10008.1.2.4.51", Array(jpeg.prefix(22))), "JPEG frame ends before its frame header")
        var lying = jpeg
        lying[5] = 200  // APP0 claims 200 bytes
        XCTAssertEqual(check("1.2.840.10008.1.2.4.51", lying), "JPEG marker segment length 200 runs past its fragment")
        var dnl = jpeg
        dnl[dnl.count - 8] = 0
        dnl[dnl.count - 7] = 0  // height 0: defined by a later DNL
        XCTAssertEqual(check("1.2.840.10008.1.2.4.51", dnl), "JPEG frame header leaves its number of lines to a later DNL marker")
        XCTAssertEqual(check("1.2.840.10008.1.2.4.80", jpeg), "JPEG-LS transfer syntax but the frame is a JPEG (ITU T.81) codestream")
    }
}
