import Foundation
import Ingest
@testable import Report
import Shards
import TestSupport
import XCTest

final class ExportPictureTests: XCTestCase {
    /// An 8³ sample: channel 0 is 0.25 with one white voxel at (d 4, h 2, w 6), where a canal keypoint
    /// sits; channel 1 is absent; channel 2 is 0.5.
    func sample() -> FusedSample {
        let n = 512
        var volume = [Float16](repeating: 0.25, count: n) + [Float16](repeating: 0, count: n) + [Float16](repeating: 0.5, count: n)
        volume[(4 * 8 + 2) * 8 + 6] = 1
        var keypoints = [Float](repeating: .nan, count: 75)
        keypoints[0...2] = [4, 2, 6]
        return FusedSample(studyID: 5, shape: [8, 8, 8], volume: volume, present: [1, 0, 1],
                           affine: Grid.sagittal(over: PatientBox(lower: .zero, upper: Vec3(8, 8, 8)), size: 8, isotropic: true).affine,
                           keypoints: keypoints, norm: [0, 1, 0, 0, 0, 1], labels: [Int8](repeating: 0, count: 25))
    }

    func testLayoutPixelsAndMarkers() {
        let s = sample()
        XCTAssertEqual(SamplePicture.spineCentre(of: s), [4, 2, 6])
        let image = SamplePicture.render(s, scale: 2)
        // Three 16-pixel tiles per row with 4-pixel gaps: 4 + 16 + 4 + 16 + 4 + 16 + 4.
        XCTAssertEqual(image.width, 64)
        XCTAssertEqual(image.height, 64)
        // Sagittal tile (x 4…19): voxel (h 2, w 6) at pixels x 16–17, y 8–9 is white; its neighbour grey 0.25.
        XCTAssertTrue(image[16, 8] == (255, 255, 255))
        XCTAssertTrue(image[14, 8] == (64, 64, 64))
        // The canal keypoint's red cross is centred on pixel (17, 9).
        XCTAssertTrue(image[18, 9] == SamplePicture.conditionColours[0])
        XCTAssertTrue(image[17, 13] == SamplePicture.conditionColours[0])
        // Coronal tile (x 24…39) through w 6: voxel (h 2, d 4) at x 32, y 8; axial tile (x 44…59) through h 2: (w 6, d 4).
        XCTAssertTrue(image[32, 8] == (255, 255, 255))
        XCTAssertTrue(image[52, 16] == (255, 255, 255))
        // Row 1 (absent channel, y 24…39) is black and crossed out; row 2 is grey 0.5.
        XCTAssertTrue(image[4, 24] == (150, 0, 0))
        XCTAssertTrue(image[10, 26] == (0, 0, 0))
        XCTAssertTrue(image[10, 50] == (128, 128, 128))
        // Gaps keep the background.
        XCTAssertTrue(image[1, 1] == (24, 24, 24))
    }

    func testPNGDecodesToTheRenderedPixels() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("sample.png")
        try SamplePicture.write(sample(), to: url, scale: 2)
        // A PNG decoder in plain Python (zlib and the five row filters), independent of libpng.
        let decoder = """
        import sys, zlib, struct
        data = open(sys.argv[1], 'rb').read()
        assert data[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
        pos, idat = 8, b''
        while pos < len(data):
            n, kind = struct.unpack('>I4s', data[pos:pos + 8]); body = data[pos + 8:pos + 8 + n]; pos += 12 + n
            if kind == b'IHDR': w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
            if kind == b'IDAT': idat += body
        raw, stride, prev, out, i = zlib.decompress(idat), w * 3, bytearray(w * 3), bytearray(), 0
        for y in range(h):
            f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
            for x in range(stride):
                a = line[x - 3] if x >= 3 else 0; b = prev[x]; c = prev[x - 3] if x >= 3 else 0
                p = a + b - c
                pred = [0, a, b, (a + b) // 2, a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else (b if abs(p - b) <= abs(p - c) else c)][f]
                line[x] = (line[x] + pred) & 255
            out += line; prev = line
        print(w, h, depth, ctype, out.hex())
        """
        let result = try Fixtures.python(decoder, [url.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let fields = result.stdout.split(separator: " ")
        XCTAssertEqual(fields.prefix(4).map(String.init), ["64", "64", "8", "2"])
        let expected = SamplePicture.render(sample(), scale: 2).pixels.map { String(format: "%02x", $0) }.joined()
        XCTAssertEqual(fields.last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }, expected)
    }

    func testUnwritablePathNamesTheFile() {
        XCTAssertThrowsError(try SamplePicture.write(sample(), to: URL(fileURLWithPath: "/nonexistent-dir/x.png"))) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent-dir/x.png"), "\(error)")
        }
    }

    /// The localizer picture: the sagittal slice through the predicted levels (T1 here: T2 is absent), a green ring
    /// around each labelled point, a red cross on each predicted one; studies side by side.
    func testLocalizerPictureDrawsLabelledAndPredictedPoints() {
        let s = sample()
        let study = LocalizerPicture.Study(sample: s, predicted: [[4, 2, 6], [4.4, 5, 2]], truth: [[4, 5, 5], nil])
        XCTAssertEqual(LocalizerPicture.slice(study), 4)
        let image = LocalizerPicture.render([study, study], scale: 2)
        // Two 16-pixel tiles with 4-pixel gaps: 4 + 16 + 4 + 16 + 4 wide, 4 + 16 + 4 high.
        XCTAssertEqual(image.width, 44)
        XCTAssertEqual(image.height, 24)
        // Slice d 4 of channel 0: voxel (h 2, w 6) is white; the predicted cross at (h 2, w 6) is centred on pixel (17, 9).
        XCTAssertTrue(image[17, 9] == LocalizerPicture.predictedColour)
        XCTAssertTrue(image[19, 11] == LocalizerPicture.predictedColour)
        XCTAssertTrue(image[16, 8] == LocalizerPicture.predictedColour)
        XCTAssertTrue(image[17, 7] == (64, 64, 64), "grey 0.25 beside the cross")
        // The labelled point (h 5, w 5) is at pixel (15, 15); its ring has radius 6: (15, 9) is green, the centre is not,
        // and the ring stays inside its tile (x 4…19).
        XCTAssertTrue(image[15, 9] == LocalizerPicture.truthColour)
        XCTAssertTrue(image[21, 15] != LocalizerPicture.truthColour)
        XCTAssertTrue(image[15, 15] == (64, 64, 64))
        // The second tile starts at x 24 and repeats the first.
        XCTAssertTrue(image[24 + 17 - 4, 9] == LocalizerPicture.predictedColour)
    }
}
