import Foundation

/// A point or direction in DICOM patient space (LPS: +x left, +y posterior, +z superior; millimetres).
public struct Vec3: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Left (+) / right (−) coordinate (mm).
    public var x: Double
    /// Posterior (+) / anterior (−) coordinate (mm).
    public var y: Double
    /// Superior (+) / inferior (−) coordinate (mm).
    public var z: Double

    /// The vector (x, y, z) in LPS millimetres.
    public init(_ x: Double, _ y: Double, _ z: Double) { self.x = x; self.y = y; self.z = z }

    /// The zero vector: the patient-space origin.
    public static let zero = Vec3(0, 0, 0)
    /// Component-wise sum.
    public static func + (a: Vec3, b: Vec3) -> Vec3 { Vec3(a.x + b.x, a.y + b.y, a.z + b.z) }
    /// Component-wise difference.
    public static func - (a: Vec3, b: Vec3) -> Vec3 { Vec3(a.x - b.x, a.y - b.y, a.z - b.z) }
    /// The vector scaled by `s`.
    public static func * (s: Double, a: Vec3) -> Vec3 { Vec3(s * a.x, s * a.y, s * a.z) }
    /// The opposite vector.
    public static prefix func - (a: Vec3) -> Vec3 { Vec3(-a.x, -a.y, -a.z) }

    /// Dot product.
    public func dot(_ b: Vec3) -> Double { x * b.x + y * b.y + z * b.z }
    /// Cross product (right-handed).
    public func cross(_ b: Vec3) -> Vec3 { Vec3(y * b.z - z * b.y, z * b.x - x * b.z, x * b.y - y * b.x) }
    /// Euclidean length.
    public var length: Double { dot(self).squareRoot() }
    /// This vector scaled to unit length (unchanged when its length is zero).
    public var normalized: Vec3 { let l = length; return l > 0 ? (1 / l) * self : self }
    /// True when every component is a finite number.
    public var isFinite: Bool { x.isFinite && y.isFinite && z.isFinite }

    /// The components to three decimals, e.g. "(1.000, -2.500, 30.000)".
    public var description: String { String(format: "(%.3f, %.3f, %.3f)", x, y, z) }
}

/// Where one image plane sits in patient space, from its DICOM geometry tags.
///
/// Pixel (r, c) sits at `position + c·columnSpacing·rowDirection + r·rowSpacing·columnDirection`
/// (DICOM PS3.3 C.7.6.2.1.1): IOP = rowDirection ‖ columnDirection, PixelSpacing = [rowSpacing, columnSpacing].
public struct SliceGeometry: Equatable, Sendable {
    /// ImagePositionPatient: centre of the first transmitted pixel (row 0, column 0).
    public var position: Vec3
    /// IOP[0...2]: the direction in which the column index grows (along a row).
    public var rowDirection: Vec3
    /// IOP[3...5]: the direction in which the row index grows (down a column).
    public var columnDirection: Vec3
    /// PixelSpacing[0]: distance between the centres of adjacent rows (mm).
    public var rowSpacing: Double
    /// PixelSpacing[1]: distance between the centres of adjacent columns (mm).
    public var columnSpacing: Double
    /// Rows (pixels per column).
    public var rows: Int
    /// Columns (pixels per row).
    public var columns: Int
    /// SliceThickness (mm); 0 when the file does not say.
    public var thickness: Double

    /// The geometry from its DICOM values as given; directions are not normalized here.
    public init(position: Vec3, rowDirection: Vec3, columnDirection: Vec3, rowSpacing: Double,
                columnSpacing: Double, rows: Int, columns: Int, thickness: Double) {
        self.position = position
        self.rowDirection = rowDirection
        self.columnDirection = columnDirection
        self.rowSpacing = rowSpacing
        self.columnSpacing = columnSpacing
        self.rows = rows
        self.columns = columns
        self.thickness = thickness
    }

    /// Unit normal of the plane: rowDirection × columnDirection.
    public var normal: Vec3 { rowDirection.cross(columnDirection).normalized }

    /// Signed distance of the plane from the origin along its normal: the key slices are ordered by.
    public var normalOffset: Double { position.dot(normal) }

    /// Patient-space position of a (possibly fractional) pixel index.
    public func patientPosition(row r: Double, column c: Double) -> Vec3 {
        position + (c * columnSpacing) * rowDirection + (r * rowSpacing) * columnDirection
    }

    /// The inverse of `patientPosition`: fractional (row, column) of the point's projection onto
    /// the plane, and its signed distance from the plane along `normal`.
    public func pixelCoordinates(of p: Vec3) -> (row: Double, column: Double, distance: Double) {
        let d = p - position
        return (d.dot(columnDirection) / rowSpacing, d.dot(rowDirection) / columnSpacing, d.dot(normal))
    }
}

/// The kind of series a study is fused from; its raw value is the RSNA series description.
public enum SeriesKind: String, CaseIterable, Codable, Sendable {
    case sagittalT1 = "Sagittal T1"
    case sagittalT2 = "Sagittal T2/STIR"
    case axialT2 = "Axial T2"
    case other = "Other"

    /// The fused grid's channel of this kind, in the fixed order (T1, T2/STIR, axial T2).
    public var channel: Int? {
        switch self {
        case .sagittalT1: return 0
        case .sagittalT2: return 1
        case .axialT2: return 2
        case .other: return nil
        }
    }
}

/// One decoded image plane: its geometry and its real-valued pixels (rescale applied), row-major.
public struct Slice: Sendable {
    /// Where the slice lies in patient space and its matrix size and spacing.
    public var geometry: SliceGeometry
    /// rows × columns values, row-major.
    public var pixels: [Float]
    /// InstanceNumber as written (for label coordinates; never used for ordering).
    public var instanceNumber: Int
    /// SOP Instance UID.
    public var sopInstanceUID: String
    /// Path of the file this slice came from (relative to the archive where known).
    public var source: String
    /// The frame's number (1-based, as DICOM counts frames) when the slice is one frame of a multi-frame
    /// file; nil for a single-frame file.
    public var frameNumber: Int?
    /// InstanceNumbers of other files at this slice's position with the same pixels: they are this slice, and label
    /// rows naming them resolve to it.
    public var sameImageInstanceNumbers: [Int] = []

    /// A slice from its parts; `pixels` must hold rows × columns values.
    public init(geometry: SliceGeometry, pixels: [Float], instanceNumber: Int, sopInstanceUID: String, source: String,
                frameNumber: Int? = nil) {
        self.geometry = geometry
        self.pixels = pixels
        self.instanceNumber = instanceNumber
        self.sopInstanceUID = sopInstanceUID
        self.source = source
        self.frameNumber = frameNumber
    }

    /// Bilinear sample at a fractional (row, column); nil outside the pixel centres' hull.
    @inlinable
    public func sample(row r: Double, column c: Double) -> Float? {
        let rows = geometry.rows, cols = geometry.columns
        guard r >= 0, c >= 0, r <= Double(rows - 1), c <= Double(cols - 1) else { return nil }
        let r0 = min(Int(r), max(rows - 2, 0)), c0 = min(Int(c), max(cols - 2, 0))
        let r1 = min(r0 + 1, rows - 1), c1 = min(c0 + 1, cols - 1)
        let fr = Float(r - Double(r0)), fc = Float(c - Double(c0))
        let a = pixels[r0 * cols + c0], b = pixels[r0 * cols + c1]
        let d = pixels[r1 * cols + c0], e = pixels[r1 * cols + c1]
        return (a * (1 - fc) + b * fc) * (1 - fr) + (d * (1 - fc) + e * fc) * fr
    }
}

/// Parallel slices of one series, ordered by position along their common normal (never by
/// InstanceNumber or file name). A series may hold several stacks (e.g. oblique axial stacks per disc).
public struct Stack: Sendable {
    /// The slices, ordered by position along the normal.
    public var slices: [Slice]

    /// A stack of slices already sorted along their common normal.
    public init(slices: [Slice]) { self.slices = slices }

    /// The stack's unit normal (its first slice's).
    public var normal: Vec3 { slices.first?.geometry.normal ?? .zero }
    /// Median gap between neighbouring slices along the normal (mm), coincident slices ignored; for a
    /// single slice its thickness, or its smaller pixel spacing when it gives no thickness.
    public var spacing: Double {
        let n = normal
        let offsets = slices.map { $0.geometry.position.dot(n) }.sorted()
        let gaps = zip(offsets.dropFirst(), offsets).map { $0 - $1 }.filter { $0 > 1e-6 }.sorted()
        if !gaps.isEmpty { return gaps[gaps.count / 2] }
        guard let g = slices.first?.geometry else { return 0 }
        return g.thickness > 0 ? g.thickness : min(g.rowSpacing, g.columnSpacing)
    }
}

/// A decoded series of one study, ready to fuse.
public struct SeriesVolume: Sendable {
    /// The catalog's series id (RSNA series_id or Series Instance UID).
    public var seriesID: String
    /// What the series is; decides the channel it is fused into.
    public var kind: SeriesKind
    /// The series' decoded stacks (empty when none could be read).
    public var stacks: [Stack]
    /// Files at a slice's position whose pixels differ from the fused file's (re-acquisitions, not fused): their
    /// geometry only (no pixels), which places the label rows naming them.
    public var reacquisitions: [Slice] = []

    /// A decoded series from its id, kind and stacks.
    public init(seriesID: String, kind: SeriesKind, stacks: [Stack]) {
        self.seriesID = seriesID
        self.kind = kind
        self.stacks = stacks
    }
}
