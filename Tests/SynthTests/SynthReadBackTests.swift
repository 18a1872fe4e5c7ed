import Foundation
@testable import Synth
import Ingest
import TestSupport
import XCTest

/// The phantom cohort read back through our GDCM reader and compared, file by file, with pydicom
/// (which decodes JPEG 2000 and JPEG-LS through pylibjpeg's openjpeg and libjpeg plugins).
final class SynthReadBackTests: XCTestCase {
    func testEveryFileReadsBackWithPydicomsGeometryAndPixels() throws {
        let out = try Fixtures.scratch().appendingPathComponent("cohort")
        _ = try SynthCohort.write(SynthOptions(studies: 3, seed: 5, quirks: true, sagittalMatrix: 64, axialMatrix: 48,
                                               sagittalSlices: 6...7, axialSlicesPerStack: 2...3), to: out)
        let dump = out.deletingLastPathComponent().appendingPathComponent("pydicom.json")
        // pydicom's view: geometry and a pixel checksum per file (files pydicom cannot read are left out).
        let r = try Fixtures.python("""
        import sys, os, json, numpy as np
        from pydicom import dcmread
        from pydicom.pixels import apply_modality_lut
        root, out = sys.argv[1], sys.argv[2]
        res = {}
        for dp, _, names in os.walk(os.path.join(root, "train_images")):
            for n in names:
                p = os.path.join(dp, n)
                try:
                    d = dcmread(p)
                    a = apply_modality_lut(d.pixel_array, d).astype(np.float64)
                except Exception:
                    continue
                res[os.path.relpath(p, root)] = dict(ipp=[float(v) for v in d.ImagePositionPatient],
                    iop=[float(v) for v in d.ImageOrientationPatient], ps=[float(v) for v in d.PixelSpacing],
                    inst=int(d.InstanceNumber), ts=str(d.file_meta.TransferSyntaxUID), sum=float(a.sum()),
                    sq=float((a * a).sum()), first=float(a.flat[a.size // 2]))
        json.dump(res, open(out, "w"))
        """, [out.path, dump.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: dump)) as! [String: [String: Any]]
        XCTAssertGreaterThan(expected.count, 50)
        var syntaxes = Set<String>()
        for (rel, e) in expected {
            let image = try DicomReader.readImage(out.appendingPathComponent(rel).path)
            let h = image.header
            let g = try h.geometry().get()
            let ipp = e["ipp"] as! [Double], iop = e["iop"] as! [Double], ps = e["ps"] as! [Double]
            XCTAssertEqual(g.position, Vec3(ipp[0], ipp[1], ipp[2]), rel)
            XCTAssertEqual(h.orientation!.row, Vec3(iop[0], iop[1], iop[2]), rel)
            XCTAssertEqual(h.orientation!.column, Vec3(iop[3], iop[4], iop[5]), rel)
            XCTAssertEqual([g.rowSpacing, g.columnSpacing], ps, rel)
            XCTAssertEqual(h.instanceNumber, e["inst"] as? Int, rel)
            XCTAssertEqual(h.transferSyntaxUID, e["ts"] as? String, rel)
            let sum = image.pixels.reduce(0.0) { $0 + Double($1) }
            let sq = image.pixels.reduce(0.0) { $0 + Double($1) * Double($1) }
            XCTAssertEqual(sum, e["sum"] as! Double, rel)
            XCTAssertEqual(sq, e["sq"] as! Double, rel)
            XCTAssertEqual(Double(image.pixels[image.pixels.count / 2]), e["first"] as! Double, rel)
            syntaxes.insert(h.transferSyntaxUID)
        }
        // Quirks put files in JPEG 2000 lossless, JPEG-LS lossless and RLE beside explicit little endian.
        XCTAssertTrue(syntaxes.isSuperset(of: ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.80",
                                               "1.2.840.10008.1.2.5"]), "\(syntaxes)")
    }
}
