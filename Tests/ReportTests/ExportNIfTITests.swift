import Foundation
import Ingest
@testable import Report
import Shards
import TestSupport
import XCTest

/// NIfTI files read back with nibabel: data layout, RAS affine, qform = sform, orientation codes.
final class ExportNIfTITests: XCTestCase {
    /// A (3, 4, 5, 6) sample whose value at (c, d, h, w) is c·120 + d·30 + h·6 + w (exact in float16).
    func sample(affine: [Double]) -> FusedSample {
        let volume = (0..<360).map { Float16(Float($0)) }
        return FusedSample(studyID: 9, shape: [4, 5, 6], volume: volume, present: [1, 1, 1], affine: affine,
                           keypoints: [Float](repeating: .nan, count: 75), norm: [Float](repeating: 0, count: 6),
                           labels: [Int8](repeating: -1, count: 25))
    }

    /// What nibabel sees in the file: shape, affine, qform, axis codes, zooms and a few voxels.
    func readBack(_ url: URL) throws -> [String: Any] {
        let script = """
        import json, sys, nibabel as nib, numpy as np
        img = nib.load(sys.argv[1])
        data = np.asarray(img.dataobj)
        print(json.dumps({
            "shape": list(data.shape), "dtype": str(data.dtype),
            "affine": img.affine.ravel().tolist(), "qform": img.get_qform().ravel().tolist(),
            "codes": list(nib.aff2axcodes(img.affine)), "zooms": [float(z) for z in img.header.get_zooms()],
            "voxels": [float(data[(3, 1, 2, 2) if data.ndim == 4 else (3, 1, 2)]), float(data[(3, 4, 5, 0) if data.ndim == 4 else (3, 4, 5)])],
        }))
        """
        let r = try Fixtures.python(script, [url.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
    }

    func testDefaultGridOpensOnTheRightAnatomy() throws {
        let grid = Grid.sagittal(over: PatientBox(lower: Vec3(-10, -20, -30), upper: Vec3(10, 20, 30)), size: 4, isotropic: false)
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("s.nii")
        let s = sample(affine: grid.affine)
        try NIfTI.write(s, to: url)
        XCTAssertEqual(try FileHandle(forReadingFrom: url).readToEnd()?.count, 352 + 4 * 360)
        let seen = try readBack(url)
        XCTAssertEqual(seen["shape"] as? [Int], [4, 5, 6, 3])
        XCTAssertEqual(seen["dtype"] as? String, "float32")
        // d → patient left, h → inferior, w → posterior.
        XCTAssertEqual(seen["codes"] as? [String], ["L", "I", "P"])
        // Voxel [3, 1, 2] of channel 2 = 2·120 + 3·30 + 1·6 + 2; the last voxel of channel 0 = 119.
        XCTAssertEqual(seen["voxels"] as? [Double], [338, 119])
        // nibabel's affine maps a voxel to the RAS position of the same voxel in ours.
        let affine = try XCTUnwrap(seen["affine"] as? [Double])
        let p = grid.patientPosition(d: 3, h: 1, w: 2)
        let ras: [Double] = (0..<3).map { row -> Double in
            let m = Array(affine[(4 * row)..<(4 * row + 4)])
            return m[0] * 3 + m[1] * 1 + m[2] * 2 + m[3]
        }
        XCTAssertEqual(ras[0], -p.x, accuracy: 1e-4)
        XCTAssertEqual(ras[1], -p.y, accuracy: 1e-4)
        XCTAssertEqual(ras[2], p.z, accuracy: 1e-4)
        // Box edges 20, 60 and 40 mm over 4 voxels.
        XCTAssertEqual(seen["zooms"] as? [Double], [5, 15, 10, 1])
        let qform = try XCTUnwrap(seen["qform"] as? [Double])
        for (q, a) in zip(qform, affine) { XCTAssertEqual(q, a, accuracy: 1e-4) }
    }

    func testObliqueAndLeftHandedAffinesKeepQformEqualToSform() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A 25° rotation about (1, 2, 2)/3 with spacings 1.5, 2 and 0.8, then the same with the w axis flipped.
        let axis = Vec3(1, 2, 2).normalized, angle = 25 * Double.pi / 180
        func rotate(_ v: Vec3) -> Vec3 {
            cos(angle) * v + sin(angle) * axis.cross(v) + ((1 - cos(angle)) * axis.dot(v)) * axis
        }
        for flip in [1.0, -1.0] {
            let cols = [1.5 * rotate(Vec3(1, 0, 0)), 2 * rotate(Vec3(0, 1, 0)), (0.8 * flip) * rotate(Vec3(0, 0, 1))]
            let affine = [cols[0].x, cols[1].x, cols[2].x, 12, cols[0].y, cols[1].y, cols[2].y, -7, cols[0].z, cols[1].z, cols[2].z, 30, 0, 0, 0, 1]
            let url = dir.appendingPathComponent("oblique\(flip).nii")
            try NIfTI.write(sample(affine: affine), channel: 1, to: url)
            let seen = try readBack(url)
            XCTAssertEqual(seen["shape"] as? [Int], [4, 5, 6])
            XCTAssertEqual(seen["voxels"] as? [Double], [218, 239], "channel 1: 120 + 98, 120 + 119")
            let sform = try XCTUnwrap(seen["affine"] as? [Double]), qform = try XCTUnwrap(seen["qform"] as? [Double])
            for (got, want) in zip(sform, NIfTI.rasAffine(affine)) { XCTAssertEqual(got, want, accuracy: 1e-5) }
            for (q, a) in zip(qform, sform) { XCTAssertEqual(q, a, accuracy: 1e-5, "flip \(flip)") }
        }
        XCTAssertThrowsError(try NIfTI.write(sample(affine: NIfTI.rasAffine([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])),
                                             channel: 3, to: dir.appendingPathComponent("x.nii")))
    }
}
