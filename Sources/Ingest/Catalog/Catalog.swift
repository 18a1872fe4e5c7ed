import Foundation

/// A file (or one frame of a multi-frame file) placed in a stack.
public struct CatalogImage: Codable, Sendable, Equatable {
    /// Path relative to the archive root.
    public var path: String
    /// Frame index inside the file (0 for single-frame files).
    public var frame: Int
    /// SOP Instance UID of the file the image comes from.
    public var sopInstanceUID: String
    /// InstanceNumber as written; nil when the file has none (never used for ordering).
    public var instanceNumber: Int?
    /// Image position (patient) of this frame.
    public var position: Vec3
    /// StackID of the frame's Frame Content (enhanced multi-frame files); nil for classic files.
    public var stackID: String?
}

/// Parallel slices of a series ordered by position along their normal.
public struct CatalogStack: Codable, Sendable {
    /// Unit normal shared by the stack's slices (row direction × column direction).
    public var normal: Vec3
    /// The anatomical plane of `normal` (its dominant patient axis).
    public var plane: Plane
    /// Median distance between neighbouring slices (mm).
    public var spacing: Double
    /// The images, ordered by position along `normal` then by path: files at one position (within
    /// `CatalogScanner.samePositionMillimetres`) follow each other, and together are one slice (see `slices`).
    public var images: [CatalogImage]

    /// The images grouped by position, in stack order: each group is one slice. A group of several files is resolved
    /// when they are decoded (`SeriesLoader`): the same pixels are one slice, different pixels a re-acquisition.
    public var slices: [ArraySlice<CatalogImage>] {
        var groups: [ArraySlice<CatalogImage>] = []
        var start = images.startIndex
        for i in images.indices.dropFirst()
        where (images[i].position - images[start].position).length >= CatalogScanner.samePositionMillimetres {
            groups.append(images[start..<i])
            start = i
        }
        if start < images.endIndex { groups.append(images[start...]) }
        return groups
    }
}

/// One series of a study: what it is, why we think so, and its stacks.
public struct CatalogSeries: Codable, Sendable {
    /// The RSNA series_id (folder name) in RSNA mode, else the Series Instance UID.
    public var seriesID: String
    /// SeriesInstanceUID (0020,000E) shared by the series' files.
    public var seriesInstanceUID: String
    /// StudyInstanceUID (0020,000D) most of the series' files carry (ties to the smallest): a series whose UID is not
    /// its study's is another study's, filed here by mistake (`CatalogScanner.selectSeries`).
    public var studyInstanceUID: String
    /// SeriesDescription (0008,103E) of the series' first file; empty when absent.
    public var description: String
    /// The SOP classes of its files in words ("MR Image", "Enhanced MR Image", ...), sorted.
    public var sopClasses: [String]
    /// The transfer syntaxes of its files in words ("explicit VR little endian", "JPEG 2000 lossless", ...), sorted.
    public var transferSyntaxes: [String]
    /// Frames of its files that have a usable geometry (one per single-frame file).
    public var frameCount: Int
    /// What the series is (sagittal T1, sagittal T2/STIR, axial T2 or other).
    public var kind: SeriesKind
    /// Where `kind` came from: the CSV, or the tag evidence.
    public var kindReason: String
    /// The stacks' common plane; `.mixed` when they differ, `.unknown` when there are none.
    public var plane: Plane
    /// Parallel-slice stacks of the series, split by orientation and large gaps.
    public var stacks: [CatalogStack]
    /// Rows of the pixel matrix, from the series' first frame.
    public var rows: Int
    /// Columns of the pixel matrix, from the series' first frame.
    public var columns: Int
    /// PixelSpacing (row, column) in mm, from the series' first frame (its functional groups in an enhanced file).
    public var pixelSpacing: [Double]
    /// SliceThickness (mm) of the series' first frame; nil when absent.
    public var sliceThickness: Double?
    /// In-plane field of view (rows × row spacing, columns × column spacing) in mm.
    public var fieldOfView: [Double]
    /// EchoTime (ms) of the series' first file; nil when absent.
    public var echoTime: Double?
    /// RepetitionTime (ms) of the series' first file; nil when absent.
    public var repetitionTime: Double?
    /// InversionTime (ms) of the series' first file; nil when absent (no inversion pulse).
    public var inversionTime: Double?
    /// Notes such as dropped duplicates.
    public var notes: [String]
    /// Files of the series none of whose frames made it into a stack (a second file of one SOP Instance UID),
    /// relative to the archive.
    public var droppedFiles: [String]
    /// Extent of the series' slices along the patient's superior–inferior axis (mm): how much of the
    /// spine it covers, the rule that picks one sagittal series of a kind.
    public var superiorInferiorExtent: Double
    /// Why the series is not fused (localizer, derived, other kind, too few slices, another study's Study Instance
    /// UID, another series of the same sagittal kind chosen); nil for a series that is fused.
    public var ignoredBecause: String?

    /// Number of slices (positions) over all stacks; files at one position count once.
    public var sliceCount: Int { stacks.reduce(0) { $0 + $1.slices.count } }
    /// The distinct files whose frames are in the stacks, in path order.
    public var imageFiles: [String] { Array(Set(stacks.flatMap { $0.images.map(\.path) })).sorted() }
    /// Every file of the series: those in its stacks and the dropped duplicates.
    public var fileCount: Int { imageFiles.count + droppedFiles.count }
}

/// One study and its series.
public struct CatalogStudy: Codable, Sendable {
    /// The RSNA study_id (folder name) in RSNA mode, else the Study Instance UID.
    public var studyID: String
    /// The study's own StudyInstanceUID (0020,000D): in an RSNA folder holding several, the one the rule of
    /// `CatalogScanner.ownStudyUID` names; its series of another UID are never fused.
    public var studyInstanceUID: String
    /// The study's series, fused kinds first in channel order, then by series id.
    public var series: [CatalogSeries]
    /// How the grouping rule met this study's files, where that needs saying: a folder holding several
    /// Study Instance UIDs, or a UID found under several folders (`StudyGrouping`).
    public var notes: [String]

    /// The series fused into `kind`'s channel: every Axial T2 series (studies often have one per block
    /// of levels), one Sagittal T1 and one Sagittal T2/STIR (see `CatalogScanner.selectSeries`).
    public func seriesToFuse(_ kind: SeriesKind) -> [CatalogSeries] {
        series.filter { $0.kind == kind && $0.ignoredBecause == nil }
    }

    /// The image files of the series to fuse (each series' files in path order): the files whose fate the study's
    /// outcome decides.
    public var fusedFiles: [String] { series.filter { $0.ignoredBecause == nil }.flatMap(\.imageFiles) }

    /// The first series fused into `kind`'s channel, nil when none is.
    public func primarySeries(_ kind: SeriesKind) -> CatalogSeries? { seriesToFuse(kind).first }
}

/// A problem found while scanning: the file (relative to the archive) and what is wrong with it.
public struct CatalogProblem: Codable, Sendable, Equatable {
    /// The file concerned, relative to the archive root (or a table name such as train.csv).
    public var path: String
    /// What is wrong with it, in words.
    public var reason: String
    /// For a problem in a CSV table: the line of the file where the record starts (1-based; line breaks inside quoted
    /// cells count); nil otherwise.
    public var line: Int? = nil
    /// For a problem with one cell of a CSV table: its column (1-based, as the file has it); nil otherwise.
    public var column: Int? = nil
}

/// Everything `fuse3d scan` finds in an archive.
public struct Catalog: Codable, Sendable {
    /// "rsna" when train_series_descriptions.csv names the series, else "tags".
    public var mode: String
    /// The archive folder scanned, as a standardized path.
    public var root: String
    /// Regular files found under the root and read as DICOM (the RSNA metadata CSVs excluded).
    public var fileCount: Int
    /// Files accepted as usable greyscale images with geometry.
    public var imageCount: Int
    /// Frames of those files (one per single-frame file): the slices the archive offers.
    public var frameCount: Int
    /// Studies found, ordered by id (numerically when ids are integers).
    public var studies: [CatalogStudy]
    /// Files (and tables) that could not be used, sorted by path.
    public var problems: [CatalogProblem]
    /// GDCM's warnings about files that were read all the same (path, warning).
    public var warnings: [CatalogProblem]
    /// The fate of every regular file under the root as the scan sees it (before any decode).
    public var accounting: FileAccounting

    /// The study with this id, if any.
    public func study(_ id: String) -> CatalogStudy? { studies.first { $0.studyID == id } }
}
