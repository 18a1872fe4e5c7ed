import Foundation

/// How the fused grid's box in patient space is chosen (a policy of the pipeline). Coded as the
/// pipeline file spells it: "sagittal-fov", "union", "reference:<series_id>", "fixed:<mm>".
public enum GridBoxPolicy: Codable, Sendable, Equatable {
    /// The field of view of the sagittal series (T1 and T2/STIR together); the default.
    /// A study without sagittal series falls back to `.union`, and the record says so.
    case sagittalFieldOfView
    /// The union of the fields of view of every series fused.
    case union
    /// The field of view of the series with this id.
    case referenceSeries(String)
    /// A cube with this edge (mm) around the spine centre: the mean of the label points in patient
    /// space where the study has any, else the centre of the sagittal (or, lacking one, the union) field of view.
    case fixed(millimetres: Double)
}

extension GridBoxPolicy {
    /// The spellings a pipeline file may use, for error messages.
    public static let yamlForms = "sagittal-fov, union, reference:<series_id> or fixed:<mm> (mm > 0)"

    /// The policy a pipeline file's `fusion.box` value names; nil for anything else.
    public init?(yamlValue s: String) {
        switch s {
        case "sagittal-fov": self = .sagittalFieldOfView
        case "union": self = .union
        default:
            if s.hasPrefix("reference:"), s.count > "reference:".count {
                self = .referenceSeries(String(s.dropFirst("reference:".count)))
            } else if s.hasPrefix("fixed:"), let mm = Double(s.dropFirst("fixed:".count)), mm > 0, mm.isFinite {
                self = .fixed(millimetres: mm)
            } else {
                return nil
            }
        }
    }

    /// The policy as a pipeline file spells it.
    public var yamlValue: String {
        switch self {
        case .sagittalFieldOfView: return "sagittal-fov"
        case .union: return "union"
        case .referenceSeries(let s): return "reference:\(s)"
        case .fixed(let mm): return "fixed:\(mm)"
        }
    }

    /// Decodes the pipeline file's spelling.
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let p = GridBoxPolicy(yamlValue: s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "box '\(s)': use \(Self.yamlForms)")
        }
        self = p
    }

    /// Encodes the pipeline file's spelling.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(yamlValue)
    }
}

/// The parameters of one fusion: grid size and box, interpolation reach, normalization. Coded with the
/// keys of a pipeline file's `fusion:` section (size, box, percentiles, isotropic, gap_factor, antialias, source_pixels).
public struct FusionParameters: Codable, Sendable, Equatable {
    /// Voxels along each axis of the grid (the grid is size³).
    public var size: Int
    /// Which patient-space box the grid covers.
    public var box: GridBoxPolicy
    /// Percentile (0–100) of a channel's covered voxels mapped to 0.
    public var lowPercentile: Double
    /// Percentile (0–100) of a channel's covered voxels mapped to 1.
    public var highPercentile: Double
    /// Equal spacing on all axes (the box grows to a cube); otherwise each axis spans its own edge of the box.
    public var isotropic: Bool
    /// Neighbouring slices of a stack are interpolated between when their gap is at most this times the
    /// stack's median spacing; across a larger gap each side reaches only half a spacing.
    public var gapFactor: Double
    /// Box-filter each slice over about a voxel's width first where the grid's voxels are 2 or more pixels
    /// wide, so that a coarse grid does not alias noise and thin structures (a point sample sees 1 pixel in f²).
    public var antialias: Bool
    /// Keep the study's source slices (the fused series' own pixels and geometry, normalized like their channel) beside
    /// the grid: schema 2's `source_pixels`, from which the two-stage model cuts its ≤ 1 mm crops.
    public var sourcePixels: Bool

    /// Defaults: a 128³ isotropic grid over the sagittal field of view, 0.5–99.5 percentile normalization,
    /// gap factor 1.5, anti-aliasing on, source pixels kept. Values are not checked here; see `validate()`.
    public init(size: Int = 128, box: GridBoxPolicy = .sagittalFieldOfView, lowPercentile: Double = 0.5,
                highPercentile: Double = 99.5, isotropic: Bool = true, gapFactor: Double = 1.5, antialias: Bool = true,
                sourcePixels: Bool = true) {
        self.size = size
        self.box = box
        self.lowPercentile = lowPercentile
        self.highPercentile = highPercentile
        self.isotropic = isotropic
        self.gapFactor = gapFactor
        self.antialias = antialias
        self.sourcePixels = sourcePixels
    }

    /// The keys of a pipeline file's `fusion:` section, in the order the file documents them.
    enum CodingKeys: String, CodingKey, CaseIterable {
        case size, box, percentiles, isotropic, gapFactor = "gap_factor", antialias, sourcePixels = "source_pixels"
    }

    /// Decodes the pipeline file's form; every key is required here (`PipelineConfig.load` fills defaults) but
    /// `source_pixels`, which records of builds before schema 2 lack (absent: true, the default).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let p = try c.decode([Double].self, forKey: .percentiles)
        guard p.count == 2 else {
            throw DecodingError.dataCorruptedError(forKey: .percentiles, in: c, debugDescription: "needs two numbers [low, high]")
        }
        self.init(size: try c.decode(Int.self, forKey: .size), box: try c.decode(GridBoxPolicy.self, forKey: .box),
                  lowPercentile: p[0], highPercentile: p[1], isotropic: try c.decode(Bool.self, forKey: .isotropic),
                  gapFactor: try c.decode(Double.self, forKey: .gapFactor), antialias: try c.decode(Bool.self, forKey: .antialias),
                  sourcePixels: try c.decodeIfPresent(Bool.self, forKey: .sourcePixels) ?? true)
    }

    /// Encodes the pipeline file's form.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(size, forKey: .size)
        try c.encode(box, forKey: .box)
        try c.encode([lowPercentile, highPercentile], forKey: .percentiles)
        try c.encode(isotropic, forKey: .isotropic)
        try c.encode(gapFactor, forKey: .gapFactor)
        try c.encode(antialias, forKey: .antialias)
        try c.encode(sourcePixels, forKey: .sourcePixels)
    }

    /// The grid sizes allowed, the one range the pipeline file, `--size` and fusion all check against: below 8
    /// voxels a grid shows no anatomy; a 512³ sample already holds 805 MB of float16 per study in memory.
    public static let sizeRange = 8...512

    /// Throws when a value cannot make a grid (e.g. size 0, percentiles out of order).
    public func validate() throws {
        guard Self.sizeRange.contains(size) else {
            throw FusionError.invalidParameters("size \(size) is not within \(Self.sizeRange.lowerBound)…\(Self.sizeRange.upperBound)")
        }
        guard lowPercentile >= 0, highPercentile <= 100, lowPercentile < highPercentile else {
            throw FusionError.invalidParameters("percentiles \(lowPercentile)–\(highPercentile) must satisfy 0 ≤ low < high ≤ 100")
        }
        guard gapFactor >= 1 else { throw FusionError.invalidParameters("gap factor \(gapFactor) must be at least 1") }
        if case .fixed(let mm) = box, !(mm > 0) {
            throw FusionError.invalidParameters("fixed box edge \(mm) mm must be positive")
        }
    }
}

/// One keypoint from `train_label_coordinates.csv`: a pixel (x = column, y = row) on one instance of one series.
public struct LabelCoordinate: Codable, Sendable, Equatable {
    /// The series the point was drawn on.
    public var seriesID: String
    /// InstanceNumber of the slice in that series.
    public var instanceNumber: Int
    /// Index into `RSNA.labelColumns` (0..<25).
    public var labelIndex: Int
    /// Column (fractional pixels).
    public var x: Double
    /// Row (fractional pixels).
    public var y: Double
    /// The frame (1-based, DICOM's Referenced Frame Number) when the instance is a multi-frame file; nil
    /// when the row gives none (the CSV's optional `frame_number` column).
    public var frameNumber: Int?

    /// A keypoint at pixel (x = column, y = row) of instance `instanceNumber` (frame `frameNumber` of a
    /// multi-frame file) of series `seriesID`.
    public init(seriesID: String, instanceNumber: Int, labelIndex: Int, x: Double, y: Double, frameNumber: Int? = nil) {
        self.seriesID = seriesID
        self.instanceNumber = instanceNumber
        self.labelIndex = labelIndex
        self.x = x
        self.y = y
        self.frameNumber = frameNumber
    }

    /// "series S instance N" (and "frame F"), as reports name the image a row points at.
    public var imageName: String {
        "series \(seriesID) instance \(instanceNumber)" + (frameNumber.map { " frame \($0)" } ?? "")
    }
}

/// A label coordinate that gave no keypoint, and why: its image is not known without doubt.
public struct UnresolvedCoordinate: Codable, Sendable, Equatable {
    /// The row as read from the CSV.
    public var coordinate: LabelCoordinate
    /// Why it was not placed, e.g. "instance 1 of series 7 is a multi-frame file (60 frames) and the row names no frame".
    public var reason: String

    /// A row left unplaced for `reason`.
    public init(coordinate: LabelCoordinate, reason: String) {
        self.coordinate = coordinate
        self.reason = reason
    }
}

/// Why a study could not be fused.
public enum FusionError: Error, CustomStringConvertible, Equatable {
    /// The parameters cannot make a grid.
    case invalidParameters(String)
    /// No series of a fused kind (or none with slices) to build a box from.
    case noSeries(studyID: Int64)
    /// The reference series of the box policy is not among the study's series.
    case referenceSeriesMissing(studyID: Int64, seriesID: String)
    /// A slice whose pixel count does not match its rows × columns.
    case malformedSlice(source: String, message: String)
    /// The label vector does not have 25 entries.
    case labelCount(studyID: Int64, count: Int)

    /// The reason in words, naming the study (or file) concerned.
    public var description: String {
        switch self {
        case .invalidParameters(let m): return "fusion parameters: \(m)"
        case .noSeries(let s): return "study \(s): no Sagittal T1, Sagittal T2/STIR or Axial T2 series with slices to fuse"
        case .referenceSeriesMissing(let s, let id): return "study \(s): reference series \(id) of the grid box is not in the study"
        case .malformedSlice(let src, let m): return "\(src): \(m)"
        case .labelCount(let s, let n): return "study \(s): \(n) labels given, 25 expected (RSNA.labelColumns)"
        }
    }
}
