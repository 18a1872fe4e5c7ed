import Core
import Foundation
import Shards

/// Writes a fused sample as a single-file NIfTI-1 volume (`.nii`) that 3D Slicer, ITK-SNAP and nibabel
/// place on the right anatomy.
///
/// Voxel (i, j, k) is the sample's (d, h, w), the fourth axis its channel, so `nib.load(f).dataobj[d, h, w, c]`
/// is `volume[c, d, h, w]`. Values are float32 (NIfTI-1 has no float16). The sform and the qform both hold
/// the affine in RAS (NIfTI's world space): DICOM's LPS with x and y negated.
public enum NIfTI {
    /// Size of the NIfTI-1 header; the data follow a 4-byte empty extension flag at `voxelOffset`.
    static let headerSize = 348
    static let voxelOffset = 352

    /// Writes all channels as a 4D volume, or one channel as a 3D volume.
    public static func write(_ sample: FusedSample, channel: Int? = nil, to url: URL) throws {
        if let channel, !(0..<3).contains(channel) {
            throw ExportError(path: url.path, message: "channel \(channel) does not exist (0 = T1, 1 = T2/STIR, 2 = axial T2)")
        }
        do {
            try AtomicFile.write(encode(sample, channel: channel), to: url)
        } catch {
            throw ExportError(path: url.path, message: "cannot write the NIfTI file: \(error.localizedDescription)")
        }
    }

    /// The sample's voxel → RAS mm affine (4 × 4 row-major): its LPS affine with the x and y rows negated.
    public static func rasAffine(_ lps: [Double]) -> [Double] {
        lps.enumerated().map { $0.offset < 8 ? -$0.element : $0.element }
    }

    /// The bytes of the `.nii` file.
    static func encode(_ sample: FusedSample, channel: Int?) -> Data {
        let (D, H, W) = (sample.shape[0], sample.shape[1], sample.shape[2])
        let channels = channel.map { [$0] } ?? [0, 1, 2]
        let ras = rasAffine(sample.affine)
        let zooms = (0..<3).map { col in (0..<3).map { ras[4 * $0 + col] * ras[4 * $0 + col] }.reduce(0, +).squareRoot() }
        let q = quaternion(ras, zooms: zooms)

        var header = Data(count: voxelOffset)
        func put<T>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value) { header.replaceSubrange(offset..<(offset + $0.count), with: $0) }
        }
        put(Int32(headerSize).littleEndian, at: 0)
        put(UInt8(ascii: "r"), at: 38)
        let dims: [Int16] = [channels.count == 1 ? 3 : 4, Int16(D), Int16(H), Int16(W), Int16(channels.count), 1, 1, 1]
        for (i, v) in dims.enumerated() { put(v.littleEndian, at: 40 + 2 * i) }
        put(Int16(16).littleEndian, at: 70)  // datatype: NIFTI_TYPE_FLOAT32
        put(Int16(32).littleEndian, at: 72)  // bitpix
        let pixdim: [Float] = [Float(q.qfac), Float(zooms[0]), Float(zooms[1]), Float(zooms[2]), 1, 1, 1, 1]
        for (i, v) in pixdim.enumerated() { put(v.bitPattern.littleEndian, at: 76 + 4 * i) }
        put(Float(voxelOffset).bitPattern.littleEndian, at: 108)
        put(Float(1).bitPattern.littleEndian, at: 112)  // scl_slope: values are stored as they are
        put(UInt8(2), at: 123)  // xyzt_units: NIFTI_UNITS_MM
        put(Float(1).bitPattern.littleEndian, at: 124)  // cal_max: the normalized range [0, 1]
        let names = channels.map { Channels.names[$0] }.joined(separator: ",")
        let descrip = Array("fuse3d study \(sample.studyID) \(names)".utf8.prefix(79))
        header.replaceSubrange(148..<(148 + descrip.count), with: descrip)
        put(Int16(1).littleEndian, at: 252)  // qform_code: NIFTI_XFORM_SCANNER_ANAT
        put(Int16(1).littleEndian, at: 254)  // sform_code: NIFTI_XFORM_SCANNER_ANAT
        for (i, v) in [q.b, q.c, q.d, ras[3], ras[7], ras[11]].enumerated() { put(Float(v).bitPattern.littleEndian, at: 256 + 4 * i) }
        for i in 0..<12 { put(Float(ras[i]).bitPattern.littleEndian, at: 280 + 4 * i) }
        header.replaceSubrange(344..<348, with: [UInt8(ascii: "n"), UInt8(ascii: "+"), UInt8(ascii: "1"), 0])

        // NIfTI runs i (= d) fastest; the sample runs w fastest.
        let n = D * H * W
        var values = [UInt32](repeating: 0, count: channels.count * n)
        for (t, c) in channels.enumerated() {
            for d in 0..<D { for h in 0..<H { for w in 0..<W {
                values[t * n + (w * H + h) * D + d] = Float(sample.volume[c * n + (d * H + h) * W + w]).bitPattern.littleEndian
            } } }
        }
        return header + values.withUnsafeBufferPointer { Data(buffer: $0) }
    }

    /// The qform's quaternion (b, c, d) and handedness qfac of an affine's rotation, as nifti1_io's
    /// `nifti_mat44_to_quatern` computes them (a left-handed rotation flips its third column, qfac = −1).
    static func quaternion(_ m: [Double], zooms: [Double]) -> (b: Double, c: Double, d: Double, qfac: Double) {
        var r = (0..<3).map { row in (0..<3).map { col in m[4 * row + col] / zooms[col] } }
        let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
            + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0])
        let qfac: Double = det < 0 ? -1 : 1
        if det < 0 { for row in 0..<3 { r[row][2] = -r[row][2] } }
        var a = r[0][0] + r[1][1] + r[2][2] + 1, b: Double, c: Double, d: Double
        if a > 0.5 {
            a = 0.5 * a.squareRoot()
            b = 0.25 * (r[2][1] - r[1][2]) / a
            c = 0.25 * (r[0][2] - r[2][0]) / a
            d = 0.25 * (r[1][0] - r[0][1]) / a
        } else {
            let xd = 1 + r[0][0] - (r[1][1] + r[2][2]), yd = 1 + r[1][1] - (r[0][0] + r[2][2]), zd = 1 + r[2][2] - (r[0][0] + r[1][1])
            if xd > 1 {
                b = 0.5 * xd.squareRoot()
                c = 0.25 * (r[0][1] + r[1][0]) / b
                d = 0.25 * (r[0][2] + r[2][0]) / b
                a = 0.25 * (r[2][1] - r[1][2]) / b
            } else if yd > 1 {
                c = 0.5 * yd.squareRoot()
                b = 0.25 * (r[0][1] + r[1][0]) / c
                d = 0.25 * (r[1][2] + r[2][1]) / c
                a = 0.25 * (r[0][2] - r[2][0]) / c
            } else {
                d = 0.5 * zd.squareRoot()
                b = 0.25 * (r[0][2] + r[2][0]) / d
                c = 0.25 * (r[1][2] + r[2][1]) / d
                a = 0.25 * (r[1][0] - r[0][1]) / d
            }
            if a < 0 { b = -b; c = -c; d = -d }
        }
        return (b, c, d, qfac)
    }
}
