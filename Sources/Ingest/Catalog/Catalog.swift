import Foundation

/// A file (or one frame of a multi-frame file) placed in a stack.
public struct CatalogImage: Codable, Sendable, Equatable {
    /// Path relative to the archive root.
    public var path: String
    /// Frame index inside the file (0 for single-frame files).
    public var frame: Int
    public var sopInstanceUID: String
    public var instanceNumber: Int?
    /// Image position (patient) of this frame.
    public var position: Vec3
}

/// Parallel slices of a series ordered by position along their normal.
public struct CatalogStack: Codable, Sendable {
    public var normal: Vec3
    public var plane: Plane
    /// Median distance between neighbouring slices (mm).
    public var spacing: Double
    public var images: [CatalogImage]
}

/// One series of a study: what it is, why we think so, and its stacks.
public struct CatalogSeries: Codable, Sendable {
    /// The RSNA series_id (folder name) in RSNA mode, else the Series Instance UID.
    public var seriesID: String
    public var seriesInstanceUID: String
    public var description: String
    public var kind: SeriesKind
    /// Where `kind` came from: the CSV, or the tag evidence.
    public var kindReason: String
    public var plane: Plane
    public var stacks: [CatalogStack]
    public var rows: Int
    public var columns: Int
    /// PixelSpacing (row, column) in mm.
    public var pixelSpacing: [Double]
    public var sliceThickness: Double?
    /// In-plane field of view (rows × row spacing, columns × column spacing) in mm.
    public var fieldOfView: [Double]
    public var echoTime: Double?
    public var repetitionTime: Double?
    public var inversionTime: Double?
    /// Notes such as dropped duplicates.
    public var notes: [String]

    /// Number of slices over all stacks.
    public var sliceCount: Int { stacks.reduce(0) { $0 + $1.images.count } }
}

/// One study and its series.
public struct CatalogStudy: Codable, Sendable {
    /// The RSNA study_id (folder name) in RSNA mode, else the Study Instance UID.
    public var studyID: String
    public var studyInstanceUID: String
    public var series: [CatalogSeries]

    /// The series to fuse for `kind`: the one with the most slices when several qualify.
    public func primarySeries(_ kind: SeriesKind) -> CatalogSeries? {
        series.filter { $0.kind == kind }.max { ($0.sliceCount, $1.seriesID) < ($1.sliceCount, $0.seriesID) }
    }
}

/// A problem found while scanning: the file (relative to the archive) and what is wrong with it.
public struct CatalogProblem: Codable, Sendable, Equatable {
    public var path: String
    public var reason: String
}

/// Everything `fuse3d scan` finds in an archive.
public struct Catalog: Codable, Sendable {
    /// "rsna" when train_series_descriptions.csv names the series, else "tags".
    public var mode: String
    public var root: String
    public var fileCount: Int
    public var imageCount: Int
    public var studies: [CatalogStudy]
    public var problems: [CatalogProblem]
    /// GDCM's warnings about files that were read all the same (path, warning).
    public var warnings: [CatalogProblem]

    /// The study with this id, if any.
    public func study(_ id: String) -> CatalogStudy? { studies.first { $0.studyID == id } }
}
