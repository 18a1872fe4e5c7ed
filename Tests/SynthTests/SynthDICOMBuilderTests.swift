@testable import Synth
import Ingest
import TestSupport
import XCTest

/// The GDCM writer shim: tags, geometry and pixels as pydicom and GDCM read them back.
final class SynthDICOMBuilderTests: XCTestCase {
    /// 33 rows × 40 columns; rows 0.5 mm apart, columns 0.75 mm apart, an oblique plane.
    static let geometry = SliceGeometry(position: Vec3(-10.5, 20.25, 30), rowDirection: Vec3(1, 0, 0),
                                        columnDirection: Vec3(0, 0.8, -0.6), rowSpacing: 0.5, columnSpacing: 0.75,
                                        rows: 33, columns: 40, thickness: 4)
    static let pixels = (0..<(33 * 40)).map { UInt16(($0 * 37) % 4096) }

    func write(_ path: String, _ syntax: SynthTransferSyntax, geometry: SliceGeometry = geometry,
               pixels: [UInt16] = pixels) throws {
        let b = try DICOMBuilder()
        try b.set(0x0008, 0x0016, "UI", PhantomStudy.mrImageStorage)
        try b.set(0x0008, 0x0018, "UI", "1.2.3.\(syntax.rawValue)")
        try b.set(0x0008, 0x103E, "LO", "Odd length")
        try b.set(0x0018, 0x0050, "DS", "4")
        try b.setImage(pixels, geometry: geometry, bitsStored: 12)
        try b.write(to: path, syntax: syntax)
    }

    func testNonSquareImageKeepsPixelOrderSpacingAndGeometryInEverySyntax() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        for syntax in SynthTransferSyntax.allCases {
            let path = dir.appendingPathComponent("\(syntax.rawValue).dcm").path
            try write(path, syntax)
            XCTAssertEqual(try DICOMBuilder.decodePixels(at: path, capacity: Self.pixels.count), Self.pixels,
                           "\(syntax) is lossless")
        }
        let r = try Fixtures.python("""
        import sys, pydicom
        d = pydicom.dcmread(sys.argv[1])
        print(d.Rows, d.Columns, *[float(v) for v in d.PixelSpacing], *[float(v) for v in d.ImagePositionPatient],
              *[float(v) for v in d.ImageOrientationPatient], d.BitsStored, d.HighBit, d.SeriesDescription.replace(" ", "_"),
              int(d.pixel_array[1, 2]), int(d.pixel_array[32, 39]), d.file_meta.TransferSyntaxUID)
        """, [dir.appendingPathComponent("0.dcm").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let f = r.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        XCTAssertEqual(f[0], "33")
        XCTAssertEqual(f[1], "40")
        XCTAssertEqual(Double(f[2]), 0.5, "PixelSpacing[0] is the row spacing")
        XCTAssertEqual(Double(f[3]), 0.75)
        XCTAssertEqual(f[4...6].compactMap(Double.init), [-10.5, 20.25, 30])
        XCTAssertEqual(f[7...12].compactMap(Double.init), [1, 0, 0, 0, 0.8, -0.6])
        XCTAssertEqual(f[13], "12")
        XCTAssertEqual(f[14], "11")
        XCTAssertEqual(f[15], "Odd_length", "LO padded with a space that pydicom strips")
        XCTAssertEqual(Int(f[16]), (42 * 37) % 4096, "row 1, column 2 is pixel 42 in row-major order")
        XCTAssertEqual(Int(f[17]), (1319 * 37) % 4096)
        XCTAssertEqual(f[18], SynthTransferSyntax.explicitLittleEndian.uid)
    }

    func testBadInputIsAnErrorNamingWhatIsWrong() throws {
        let b = try DICOMBuilder()
        XCTAssertThrowsError(try b.set(0x0010, 0x0010, "ZZ", "x")) { e in
            XCTAssertTrue("\(e)".contains("ZZ"), "\(e)")
        }
        XCTAssertThrowsError(try b.write(to: "/nonexistent/x.dcm", syntax: .explicitLittleEndian)) { e in
            XCTAssertTrue("\(e)".contains("no image set"), "\(e)")
        }
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        var tiny = Self.geometry
        tiny.rows = 3
        tiny.columns = 5
        XCTAssertThrowsError(try write(dir.appendingPathComponent("t.dcm").path, .jpeg2000Lossless, geometry: tiny,
                                       pixels: Array(Self.pixels.prefix(15)))) { e in
            XCTAssertTrue("\(e)".contains("32 x 32"), "\(e)")
        }
        XCTAssertThrowsError(try write("/nonexistent/x.dcm", .explicitLittleEndian)) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/x.dcm: cannot create"), "\(e)")
        }
        XCTAssertThrowsError(try DICOMBuilder.decodePixels(at: "/nonexistent/x.dcm", capacity: 1)) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/x.dcm: cannot open"), "\(e)")
        }
    }
}
