import Foundation

/// The voxel lattice of a fused sample: its shape (D, H, W) and its affine, voxel index (d, h, w, 1) → LPS mm.
///
/// A voxel index names the voxel's centre; voxel (0, 0, 0)'s centre is the affine's translation.
public struct Grid: Codable, Sendable, Equatable {
    /// (D, H, W).
    public var shape: [Int]
    /// 4 × 4 row-major: voxel index (d, h, w, 1) → patient LPS mm.
    public var affine: [Double]

    /// A grid of `shape` (3 values) and row-major 4 × 4 `affine` (16 values); traps on other counts.
    public init(shape: [Int], affine: [Double]) {
        precondition(shape.count == 3 && affine.count == 16, "a grid needs 3 dimensions and a 4×4 affine")
        self.shape = shape
        self.affine = affine
    }

    /// The default orientation over `box`: d → +x (right→left), h → −z (superior→inferior),
    /// w → +y (anterior→posterior), so a d-plane is a sagittal image seen from the patient's right.
    ///
    /// Isotropic: a size³ cube of spacing (largest edge of `box`) / size, centred on the box; otherwise each
    /// axis spans its own edge of `box` in `size` voxels.
    public static func sagittal(over box: PatientBox, size: Int, isotropic: Bool) -> Grid {
        let e = box.extent
        let edges = [e.x, e.z, e.y].map { max($0, 1e-3) }
        let spacing = isotropic ? Array(repeating: edges.max()! / Double(size), count: 3) : edges.map { $0 / Double(size) }
        let c = box.centre
        let half = spacing.map { $0 * Double(size) / 2 }
        let origin = Vec3(c.x - half[0] + spacing[0] / 2, c.y - half[2] + spacing[2] / 2, c.z + half[1] - spacing[1] / 2)
        return Grid(shape: [size, size, size], affine: [
            spacing[0], 0, 0, origin.x,
            0, 0, spacing[2], origin.y,
            0, -spacing[1], 0, origin.z,
            0, 0, 0, 1,
        ])
    }

    /// D · H · W.
    public var voxelCount: Int { shape[0] * shape[1] * shape[2] }

    /// Patient-space step of one voxel along d, h and w.
    public var axes: (d: Vec3, h: Vec3, w: Vec3) {
        (Vec3(affine[0], affine[4], affine[8]), Vec3(affine[1], affine[5], affine[9]), Vec3(affine[2], affine[6], affine[10]))
    }

    /// Patient position of voxel (0, 0, 0)'s centre.
    public var origin: Vec3 { Vec3(affine[3], affine[7], affine[11]) }

    /// Voxel size along d, h and w (mm).
    public var spacing: [Double] { let a = axes; return [a.d.length, a.h.length, a.w.length] }

    /// Patient position (LPS mm) of a (possibly fractional) voxel index.
    public func patientPosition(d: Double, h: Double, w: Double) -> Vec3 {
        let a = axes
        return origin + d * a.d + h * a.h + w * a.w
    }

    /// Fractional voxel index (d, h, w) of a patient position, returned as a `Vec3` (x = d, y = h, z = w).
    public func voxelIndex(of p: Vec3) -> Vec3 {
        let a = axes, q = p - origin
        // Rows of the inverse of [d h w] are the reciprocal basis: (h × w, w × d, d × h) / det.
        let hw = a.h.cross(a.w), wd = a.w.cross(a.d), dh = a.d.cross(a.h)
        let det = a.d.dot(hw)
        return Vec3(q.dot(hw) / det, q.dot(wd) / det, q.dot(dh) / det)
    }
}
