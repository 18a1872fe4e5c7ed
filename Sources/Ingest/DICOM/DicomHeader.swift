import Foundation

/// The header fields the pipeline needs from one DICOM file (a header-only read fills all of them).
public struct DicomHeader: Sendable {
    /// The file this header was read from, as given to the reader.
    public var path: String
    /// Transfer Syntax UID (0002,0010): how the pixel data is encoded; empty when absent.
    public var transferSyntaxUID: String
    /// SOP Class UID (0008,0016): the kind of object (MR image, report, …); empty when absent.
    public var sopClassUID: String
    /// SOP Instance UID (0008,0018): the object's unique id; empty when absent.
    public var sopInstanceUID: String
    /// Study Instance UID (0020,000D); empty when absent.
    public var studyInstanceUID: String
    /// Series Instance UID (0020,000E); empty when absent.
    public var seriesInstanceUID: String
    /// Modality (0008,0060), e.g. "MR"; empty when absent.
    public var modality: String
    /// SeriesDescription (0008,103E) as written; empty when absent.
    public var seriesDescription: String
    /// SeriesNumber (0020,0011); nil when absent or not a number.
    public var seriesNumber: Int?
    /// InstanceNumber (0020,0013); nil when absent or not a number.
    public var instanceNumber: Int?
    /// ImageType (0008,0008) as raw backslash-separated text, e.g. ORIGINAL\PRIMARY\M; empty when absent.
    public var imageType: String
    /// Per frame (one entry for single-frame files); nil where the file gives no position.
    public var framePositions: [Vec3?]
    /// ImageOrientationPatient (row direction, column direction): top-level, else the first frame's functional groups.
    public var orientation: (row: Vec3, column: Vec3)?
    /// PixelSpacing [row spacing, column spacing]: top-level, else the first frame's functional groups.
    public var pixelSpacing: (row: Double, column: Double)?
    /// SliceThickness (mm), top-level or from the first frame's pixel measures; nil when absent.
    public var sliceThickness: Double?
    /// What an enhanced multi-frame file's functional groups say of each frame (empty for other files);
    /// where they say something, it overrides the top-level attributes for that frame.
    public var frameGroups: [FrameFunctionalGroups] = []
    /// SpacingBetweenSlices (0018,0088) in mm; nil when absent.
    public var spacingBetweenSlices: Double?
    /// Rows (0028,0010) of each frame; 0 when absent.
    public var rows: Int
    /// Columns (0028,0011) of each frame; 0 when absent.
    public var columns: Int
    /// NumberOfFrames (0028,0008); 1 when absent.
    public var numberOfFrames: Int
    /// True when the file has no NumberOfFrames element (single-frame objects need none).
    public var numberOfFramesMissing: Bool
    /// BitsAllocated (0028,0100): storage bits per sample; 0 when absent.
    public var bitsAllocated: Int
    /// BitsStored (0028,0101): significant bits per sample; 0 when absent.
    public var bitsStored: Int
    /// PixelRepresentation (0028,0103): 0 unsigned, 1 two's-complement signed samples.
    public var pixelRepresentation: Int
    /// SamplesPerPixel (0028,0002): 1 for greyscale, 3 for colour; 1 when absent.
    public var samplesPerPixel: Int
    /// PhotometricInterpretation (0028,0004), e.g. "MONOCHROME2"; empty when absent.
    public var photometricInterpretation: String
    /// RescaleSlope (0028,1053) applied to stored values on decode; 1 when absent.
    public var rescaleSlope: Double
    /// RescaleIntercept (0028,1052) added after the slope on decode; 0 when absent.
    public var rescaleIntercept: Double
    /// The rescale of frame `index`: its Pixel Value Transformation (per frame or shared), else the top-level one.
    public func rescale(frame index: Int) -> (slope: Double, intercept: Double) {
        if index < frameGroups.count, let r = frameGroups[index].rescale { return r }
        return (rescaleSlope, rescaleIntercept)
    }
    /// EchoTime (ms), top-level or the first frame's effective echo time; nil when absent.
    public var echoTime: Double?
    /// RepetitionTime (0018,0080) in ms; nil when absent.
    public var repetitionTime: Double?
    /// InversionTime (0018,0082) in ms; nil when absent.
    public var inversionTime: Double?
    /// True when the file contains a Pixel Data element.
    public var hasPixelData: Bool
    /// Declared byte length of native (uncompressed) Pixel Data; nil when absent or encapsulated.
    public var pixelDataLength: Int?
    /// GDCM warnings collected while parsing.
    public var warnings: [String]

    /// True for SOP classes that are not images (structured reports, RT plans/structures/doses,
    /// waveforms, presentation states, key objects, raw data) or files without pixel data.
    public var isNonImage: Bool {
        let nonImagePrefixes = [
            "1.2.840.10008.5.1.4.1.1.88.",  // structured reports
            "1.2.840.10008.5.1.4.1.1.481.",  // radiotherapy objects
            "1.2.840.10008.5.1.4.1.1.9.",  // waveforms
            "1.2.840.10008.5.1.4.1.1.11.",  // presentation states
            "1.2.840.10008.5.1.4.1.1.66",  // raw data, spatial registration, segmentation, fiducials
            "1.2.840.10008.5.1.4.1.1.104.",  // encapsulated documents
        ]
        if nonImagePrefixes.contains(where: { sopClassUID.hasPrefix($0) }) { return true }
        return !hasPixelData || rows == 0 || columns == 0
    }

    /// True for SOP classes whose objects are multi-frame by definition (enhanced and legacy converted
    /// enhanced MR/CT/PET, RT dose).
    public var isMultiFrameClass: Bool {
        ["1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.4", "1.2.840.10008.5.1.4.1.1.2.1",
         "1.2.840.10008.5.1.4.1.1.2.2", "1.2.840.10008.5.1.4.1.1.130", "1.2.840.10008.5.1.4.1.1.128.1",
         "1.2.840.10008.5.1.4.1.1.481.2", "1.2.840.10008.5.1.4.1.1.4.3"].contains(sopClassUID)
    }

    /// True for a file of several frames, or of a multi-frame SOP class (whose frames a label must name).
    public var isMultiFrame: Bool { numberOfFrames > 1 || isMultiFrameClass }

    /// The SOP class in words where fuse3d knows it ("MR Image", "Enhanced MR Image", ...), else its UID.
    public var sopClassName: String { SOPClass.name(of: sopClassUID) }

    /// True for Secondary Capture and derived images a fusion must not use.
    public var isDerivedOrLocalizer: Bool {
        let t = imageType.uppercased()
        return t.contains("LOCALIZER") || t.contains("SCOUT") || t.hasPrefix("DERIVED")
    }

    /// Bytes that native pixel data needs for Rows × Columns × frames × samples at BitsAllocated.
    public var nativePixelBytes: Int {
        rows * columns * max(numberOfFrames, 1) * max(samplesPerPixel, 1) * max((bitsAllocated + 7) / 8, 1)
    }

    /// Why the file cannot be fused, as far as its header tells (no pixel is decoded); nil when it
    /// looks usable. Checked in order: not an image, colour, absurd dimensions, pixel data shorter
    /// than the image, missing or degenerate geometry of any frame.
    public var headerProblem: DicomProblem? {
        if isNonImage {
            return .nonImage(hasPixelData ? "SOP class \(sopClassUID) (\(modality))" : "no Pixel Data (SOP class \(sopClassUID), \(modality))")
        }
        let pi = photometricInterpretation.uppercased()
        if samplesPerPixel != 1 || !(pi.isEmpty || pi.hasPrefix("MONOCHROME")) {
            return .colour("\(samplesPerPixel) samples per pixel, \(photometricInterpretation.isEmpty ? "no photometric interpretation" : photometricInterpretation)")
        }
        let pixelNote = pixelDataLength.map { "; its Pixel Data holds \($0) bytes" } ?? ""
        if rows <= 0 || columns <= 0 || rows > DicomReader.maxMatrix || columns > DicomReader.maxMatrix || numberOfFrames > DicomReader.maxFrames
            || numberOfFrames < 1 || rows * columns * numberOfFrames > DicomReader.maxPixels {
            return .absurdDimensions("\(rows)×\(columns) pixels × \(numberOfFrames) frame(s) (limits \(DicomReader.maxMatrix)×\(DicomReader.maxMatrix)×\(DicomReader.maxFrames))\(pixelNote)")
        }
        if !ValueLimits.bitsAllocated.contains(bitsAllocated) || bitsStored < 0 || bitsStored > bitsAllocated {
            return .badPixels("BitsAllocated \(bitsAllocated) / BitsStored \(bitsStored) (BitsAllocated must be 1 to 32 and hold BitsStored)")
        }
        for f in 0..<max(frameGroups.count, 1) {
            let r = rescale(frame: f)
            if let reason = ValueLimits.rescaleProblem(slope: r.slope, intercept: r.intercept) {
                return .badPixels(frameGroups.count > 1 ? "frame \(f): \(reason)" : reason)
            }
        }
        if let length = pixelDataLength, length < nativePixelBytes {
            return .badPixels("pixel data shorter than the image: \(length) bytes, but \(rows)×\(columns)×\(max(numberOfFrames, 1)) pixels of \(bitsAllocated) bits need \(nativePixelBytes)")
        }
        for f in 0..<max(framePositions.count, 1) {
            if case .failure(let p) = geometry(frame: f) {
                return framePositions.count > 1 ? p.inFrame(f) : p
            }
        }
        return nil
    }

    /// The geometry of frame `index`, or a reason why there is none usable.
    public func geometry(frame index: Int = 0) -> Result<SliceGeometry, DicomProblem> {
        let groups = index < frameGroups.count ? frameGroups[index] : FrameFunctionalGroups()
        guard let o = groups.orientation ?? orientation else { return .failure(.missingGeometry("no ImageOrientationPatient")) }
        guard index < framePositions.count, let p = framePositions[index] else {
            return .failure(.missingGeometry("no ImagePositionPatient"))
        }
        guard let s = groups.pixelSpacing ?? pixelSpacing else { return .failure(.missingGeometry("no PixelSpacing")) }
        guard p.isFinite, o.row.isFinite, o.column.isFinite else {
            return .failure(.degenerateGeometry("position or orientation is not a finite number"))
        }
        guard [p.x, p.y, p.z].allSatisfy(ValueLimits.position.contains) else {
            return .failure(.degenerateGeometry(String(format: "ImagePositionPatient (%g, %g, %g) is beyond ±10 m", p.x, p.y, p.z)))
        }
        let rl = o.row.length, cl = o.column.length, tolerance = ValueLimits.orientationTolerance
        guard abs(rl - 1) < tolerance, abs(cl - 1) < tolerance else {
            return .failure(.degenerateGeometry(String(format: "orientation vectors have lengths %.3f and %.3f, not 1", rl, cl)))
        }
        guard abs(o.row.dot(o.column)) < tolerance else {
            return .failure(.degenerateGeometry("orientation vectors are not perpendicular"))
        }
        guard s.row.isFinite, s.column.isFinite, ValueLimits.pixelSpacing.contains(s.row), ValueLimits.pixelSpacing.contains(s.column) else {
            return .failure(.degenerateGeometry(String(format: "PixelSpacing %g\\%g mm is outside 0.001 to 50 mm", s.row, s.column)))
        }
        let thicknessGiven = groups.sliceThickness ?? sliceThickness
        if let reason = ValueLimits.thicknessProblem("SliceThickness", thicknessGiven)
            ?? ValueLimits.thicknessProblem("SpacingBetweenSlices", thicknessGiven == nil ? spacingBetweenSlices : nil) {
            return .failure(.degenerateGeometry(reason))
        }
        let thickness = thicknessGiven ?? spacingBetweenSlices ?? 0
        return .success(SliceGeometry(position: p, rowDirection: o.row.normalized, columnDirection: o.column.normalized,
                                      rowSpacing: s.row, columnSpacing: s.column, rows: rows, columns: columns,
                                      thickness: thickness))
    }
}

/// What the functional groups of an enhanced multi-frame file say about one frame: its Per-frame
/// Functional Groups item, else the Shared one; nil where neither says anything.
public struct FrameFunctionalGroups: Sendable {
    /// Plane Orientation: ImageOrientationPatient (row direction, column direction).
    public var orientation: (row: Vec3, column: Vec3)?
    /// Pixel Measures: PixelSpacing (row spacing, column spacing) in mm.
    public var pixelSpacing: (row: Double, column: Double)?
    /// Pixel Measures: SliceThickness in mm.
    public var sliceThickness: Double?
    /// Pixel Value Transformation: real value = stored value × slope + intercept.
    public var rescale: (slope: Double, intercept: Double)?
    /// Frame Content: StackID, which names the stack a frame belongs to.
    public var stackID: String?
    /// Frame Content: InStackPositionNumber (1 at one end of the stack).
    public var inStackPosition: Int?

    /// Nothing said.
    public init(orientation: (row: Vec3, column: Vec3)? = nil, pixelSpacing: (row: Double, column: Double)? = nil,
                sliceThickness: Double? = nil, rescale: (slope: Double, intercept: Double)? = nil,
                stackID: String? = nil, inStackPosition: Int? = nil) {
        self.orientation = orientation
        self.pixelSpacing = pixelSpacing
        self.sliceThickness = sliceThickness
        self.rescale = rescale
        self.stackID = stackID
        self.inStackPosition = inStackPosition
    }
}

/// The image storage SOP classes fuse3d names in its reports.
public enum SOPClass {
    /// MR Image Storage: one frame per file.
    public static let mrImage = "1.2.840.10008.5.1.4.1.1.4"
    /// Enhanced MR Image Storage: one file, many frames, geometry in functional groups.
    public static let enhancedMRImage = "1.2.840.10008.5.1.4.1.1.4.1"
    /// Legacy Converted Enhanced MR Image Storage: classic images gathered into one enhanced file.
    public static let legacyConvertedEnhancedMRImage = "1.2.840.10008.5.1.4.1.1.4.4"

    static let names: [String: String] = [
        mrImage: "MR Image", enhancedMRImage: "Enhanced MR Image", legacyConvertedEnhancedMRImage: "Legacy Converted Enhanced MR Image",
        "1.2.840.10008.5.1.4.1.1.4.3": "Enhanced MR Color Image", "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image",
        "1.2.840.10008.5.1.4.1.1.2": "CT Image", "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image",
    ]

    /// The class's name, or its UID when fuse3d has no name for it ("no SOP Class UID" when empty).
    public static func name(of uid: String) -> String { uid.isEmpty ? "no SOP Class UID" : names[uid] ?? uid }
}

/// Transfer syntaxes by name, for listings (`fuse3d scan`'s summary).
public enum TransferSyntax {
    static let names: [String: String] = [
        "1.2.840.10008.1.2": "implicit VR little endian", "1.2.840.10008.1.2.1": "explicit VR little endian",
        "1.2.840.10008.1.2.1.99": "deflated explicit VR little endian", "1.2.840.10008.1.2.2": "explicit VR big endian",
        "1.2.840.10008.1.2.4.50": "JPEG baseline", "1.2.840.10008.1.2.4.51": "JPEG extended",
        "1.2.840.10008.1.2.4.57": "JPEG lossless", "1.2.840.10008.1.2.4.70": "JPEG lossless SV1",
        "1.2.840.10008.1.2.4.80": "JPEG-LS lossless", "1.2.840.10008.1.2.4.81": "JPEG-LS near-lossless",
        "1.2.840.10008.1.2.4.90": "JPEG 2000 lossless", "1.2.840.10008.1.2.4.91": "JPEG 2000", "1.2.840.10008.1.2.5": "RLE lossless",
    ]

    /// The syntax's name, or its UID when fuse3d has no name for it ("no transfer syntax" when empty).
    public static func name(of uid: String) -> String { uid.isEmpty ? "no transfer syntax" : names[uid] ?? uid }
}

/// Why a file cannot be used; each case carries a human-readable detail.
public enum DicomProblem: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(String)
    case nonImage(String)
    case missingGeometry(String)
    case degenerateGeometry(String)
    case badPixels(String)
    case absurdDimensions(String)
    case colour(String)

    /// The same problem, said of one frame of a multi-frame file.
    func inFrame(_ f: Int) -> DicomProblem {
        switch self {
        case .missingGeometry(let s): return .missingGeometry("frame \(f): \(s)")
        case .degenerateGeometry(let s): return .degenerateGeometry("frame \(f): \(s)")
        default: return self
        }
    }

    /// The detail, prefixed with the kind of problem where that adds anything.
    public var description: String {
        switch self {
        case .unreadable(let s): return s
        case .nonImage(let s): return "not an image: \(s)"
        case .missingGeometry(let s): return "missing geometry: \(s)"
        case .degenerateGeometry(let s): return "degenerate geometry: \(s)"
        case .badPixels(let s): return s
        case .absurdDimensions(let s): return "absurd dimensions: \(s)"
        case .colour(let s): return "colour image (\(s)) where a greyscale image is needed"
        }
    }
}
