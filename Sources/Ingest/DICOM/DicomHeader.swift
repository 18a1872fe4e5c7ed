import Foundation

/// The header fields the pipeline needs from one DICOM file (a header-only read fills all of them).
public struct DicomHeader: Sendable {
    public var path: String
    public var transferSyntaxUID: String
    public var sopClassUID: String
    public var sopInstanceUID: String
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var modality: String
    public var seriesDescription: String
    public var seriesNumber: Int?
    public var instanceNumber: Int?
    public var imageType: String
    /// Per frame (one entry for single-frame files); nil where the file gives no position.
    public var framePositions: [Vec3?]
    /// ImageOrientationPatient (row direction, column direction), shared or per first frame.
    public var orientation: (row: Vec3, column: Vec3)?
    /// PixelSpacing [row spacing, column spacing].
    public var pixelSpacing: (row: Double, column: Double)?
    public var sliceThickness: Double?
    public var spacingBetweenSlices: Double?
    public var rows: Int
    public var columns: Int
    public var numberOfFrames: Int
    /// True when the file has no NumberOfFrames element (single-frame objects need none).
    public var numberOfFramesMissing: Bool
    public var bitsAllocated: Int
    public var bitsStored: Int
    public var pixelRepresentation: Int
    public var samplesPerPixel: Int
    public var photometricInterpretation: String
    public var rescaleSlope: Double
    public var rescaleIntercept: Double
    public var echoTime: Double?
    public var repetitionTime: Double?
    public var inversionTime: Double?
    public var hasPixelData: Bool
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

    /// True for SOP classes whose objects are multi-frame by definition (enhanced MR/CT/PET, RT dose).
    public var isMultiFrameClass: Bool {
        ["1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.130",
         "1.2.840.10008.5.1.4.1.1.481.2", "1.2.840.10008.5.1.4.1.1.4.3"].contains(sopClassUID)
    }

    /// True for Secondary Capture and derived images a fusion must not use.
    public var isDerivedOrLocalizer: Bool {
        let t = imageType.uppercased()
        return t.contains("LOCALIZER") || t.contains("SCOUT") || t.hasPrefix("DERIVED")
    }

    /// The geometry of frame `index`, or a reason why there is none usable.
    public func geometry(frame index: Int = 0) -> Result<SliceGeometry, DicomProblem> {
        guard let o = orientation else { return .failure(.missingGeometry("no ImageOrientationPatient")) }
        guard index < framePositions.count, let p = framePositions[index] else {
            return .failure(.missingGeometry("no ImagePositionPatient"))
        }
        guard let s = pixelSpacing else { return .failure(.missingGeometry("no PixelSpacing")) }
        guard p.isFinite, o.row.isFinite, o.column.isFinite else {
            return .failure(.degenerateGeometry("position or orientation is not a finite number"))
        }
        let rl = o.row.length, cl = o.column.length
        guard abs(rl - 1) < 0.01, abs(cl - 1) < 0.01 else {
            return .failure(.degenerateGeometry(String(format: "orientation vectors have lengths %.3f and %.3f, not 1", rl, cl)))
        }
        guard abs(o.row.dot(o.column)) < 0.01 else {
            return .failure(.degenerateGeometry("orientation vectors are not perpendicular"))
        }
        guard s.row > 0, s.column > 0, s.row.isFinite, s.column.isFinite else {
            return .failure(.degenerateGeometry("PixelSpacing \(s.row)\\\(s.column) is not positive"))
        }
        return .success(SliceGeometry(position: p, rowDirection: o.row.normalized, columnDirection: o.column.normalized,
                                      rowSpacing: s.row, columnSpacing: s.column, rows: rows, columns: columns,
                                      thickness: sliceThickness ?? spacingBetweenSlices ?? 0))
    }
}

/// Why a file cannot be used; each case carries a human-readable detail.
public enum DicomProblem: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(String)
    case nonImage(String)
    case missingGeometry(String)
    case degenerateGeometry(String)
    case badPixels(String)
    case absurdDimensions(String)

    public var description: String {
        switch self {
        case .unreadable(let s): return s
        case .nonImage(let s): return "not an image: \(s)"
        case .missingGeometry(let s): return "missing geometry: \(s)"
        case .degenerateGeometry(let s): return "degenerate geometry: \(s)"
        case .badPixels(let s): return s
        case .absurdDimensions(let s): return "absurd dimensions: \(s)"
        }
    }
}
