import Core
import Foundation

/// A `DicomHeader` as the header index stores it: every field the catalog and the fusion read, except the path
/// (the index keys it). Numbers are stored as their bit patterns, so that a header read back from the index is
/// the header GDCM gave, bit for bit (-0.0 and NaN included; encoded by `ByteWriter`): the catalog, and so the cache key, cannot tell
/// the two apart.
struct HeaderSummary: Equatable {
    var transferSyntaxUID, sopClassUID, sopInstanceUID, studyInstanceUID, seriesInstanceUID: String
    var modality, seriesDescription, imageType, photometricInterpretation: String
    var seriesNumber, instanceNumber: Int?
    /// Per frame: x, y, z bit patterns; nil where the frame has no position.
    var framePositions: [[UInt64]?]
    /// Row direction then column direction (six bit patterns).
    var orientation: [UInt64]?
    /// Row spacing, column spacing.
    var pixelSpacing: [UInt64]?
    var sliceThickness, spacingBetweenSlices, echoTime, repetitionTime, inversionTime: UInt64?
    var frameGroups: [Groups]
    var rows, columns, numberOfFrames, bitsAllocated, bitsStored, pixelRepresentation, samplesPerPixel: Int
    var numberOfFramesMissing, hasPixelData: Bool
    var rescaleSlope, rescaleIntercept: UInt64
    var pixelDataLength: Int?
    var warnings: [String]

    /// One frame's functional groups.
    struct Groups: Equatable {
        var orientation: [UInt64]?
        var pixelSpacing: [UInt64]?
        var sliceThickness: UInt64?
        var rescale: [UInt64]?
        var stackID: String?
        var inStackPosition: Int?
    }

    init(_ h: DicomHeader) {
        transferSyntaxUID = h.transferSyntaxUID; sopClassUID = h.sopClassUID; sopInstanceUID = h.sopInstanceUID
        studyInstanceUID = h.studyInstanceUID; seriesInstanceUID = h.seriesInstanceUID; modality = h.modality
        seriesDescription = h.seriesDescription; imageType = h.imageType; photometricInterpretation = h.photometricInterpretation
        seriesNumber = h.seriesNumber; instanceNumber = h.instanceNumber
        framePositions = h.framePositions.map { $0.map(Self.bits) }
        orientation = h.orientation.map { Self.bits($0.row) + Self.bits($0.column) }
        pixelSpacing = h.pixelSpacing.map { [$0.row.bitPattern, $0.column.bitPattern] }
        sliceThickness = h.sliceThickness?.bitPattern; spacingBetweenSlices = h.spacingBetweenSlices?.bitPattern
        echoTime = h.echoTime?.bitPattern; repetitionTime = h.repetitionTime?.bitPattern; inversionTime = h.inversionTime?.bitPattern
        frameGroups = h.frameGroups.map { g in
            Groups(orientation: g.orientation.map { Self.bits($0.row) + Self.bits($0.column) },
                   pixelSpacing: g.pixelSpacing.map { [$0.row.bitPattern, $0.column.bitPattern] },
                   sliceThickness: g.sliceThickness?.bitPattern,
                   rescale: g.rescale.map { [$0.slope.bitPattern, $0.intercept.bitPattern] },
                   stackID: g.stackID, inStackPosition: g.inStackPosition)
        }
        rows = h.rows; columns = h.columns; numberOfFrames = h.numberOfFrames; bitsAllocated = h.bitsAllocated
        bitsStored = h.bitsStored; pixelRepresentation = h.pixelRepresentation; samplesPerPixel = h.samplesPerPixel
        numberOfFramesMissing = h.numberOfFramesMissing; hasPixelData = h.hasPixelData
        rescaleSlope = h.rescaleSlope.bitPattern; rescaleIntercept = h.rescaleIntercept.bitPattern
        pixelDataLength = h.pixelDataLength; warnings = h.warnings
    }

    /// The header of the file at `path`; nil when the stored arrays have the wrong lengths (a damaged index).
    func header(path: String) -> DicomHeader? {
        guard framePositions.allSatisfy({ $0 == nil || $0!.count == 3 }), orientation.map({ $0.count == 6 }) ?? true,
              pixelSpacing.map({ $0.count == 2 }) ?? true,
              frameGroups.allSatisfy({ ($0.orientation?.count ?? 6) == 6 && ($0.pixelSpacing?.count ?? 2) == 2 && ($0.rescale?.count ?? 2) == 2 })
        else { return nil }
        var h = DicomHeader(
            path: path, transferSyntaxUID: transferSyntaxUID, sopClassUID: sopClassUID, sopInstanceUID: sopInstanceUID,
            studyInstanceUID: studyInstanceUID, seriesInstanceUID: seriesInstanceUID, modality: modality,
            seriesDescription: seriesDescription, seriesNumber: seriesNumber, instanceNumber: instanceNumber,
            imageType: imageType, framePositions: framePositions.map { $0.map(Self.vector) },
            orientation: orientation.map(Self.directions), pixelSpacing: pixelSpacing.map(Self.pair),
            sliceThickness: sliceThickness.map(Double.init(bitPattern:)), spacingBetweenSlices: spacingBetweenSlices.map(Double.init(bitPattern:)),
            rows: rows, columns: columns, numberOfFrames: numberOfFrames, numberOfFramesMissing: numberOfFramesMissing,
            bitsAllocated: bitsAllocated, bitsStored: bitsStored, pixelRepresentation: pixelRepresentation,
            samplesPerPixel: samplesPerPixel, photometricInterpretation: photometricInterpretation,
            rescaleSlope: Double(bitPattern: rescaleSlope), rescaleIntercept: Double(bitPattern: rescaleIntercept),
            echoTime: echoTime.map(Double.init(bitPattern:)), repetitionTime: repetitionTime.map(Double.init(bitPattern:)),
            inversionTime: inversionTime.map(Double.init(bitPattern:)), hasPixelData: hasPixelData,
            pixelDataLength: pixelDataLength, warnings: warnings)
        h.frameGroups = frameGroups.map { g in
            FrameFunctionalGroups(orientation: g.orientation.map(Self.directions), pixelSpacing: g.pixelSpacing.map(Self.pair),
                                  sliceThickness: g.sliceThickness.map(Double.init(bitPattern:)),
                                  rescale: g.rescale.map { (Double(bitPattern: $0[0]), Double(bitPattern: $0[1])) },
                                  stackID: g.stackID, inStackPosition: g.inStackPosition)
        }
        return h
    }

    /// Appends the summary to `w` (every field, in declaration order).
    func write(to w: inout ByteWriter) {
        for s in [transferSyntaxUID, sopClassUID, sopInstanceUID, studyInstanceUID, seriesInstanceUID, modality,
                  seriesDescription, imageType, photometricInterpretation] { w.string(s) }
        w.optional(seriesNumber) { $0.int($1) }
        w.optional(instanceNumber) { $0.int($1) }
        w.int(framePositions.count)
        for p in framePositions { w.optional(p) { $0.u64s($1) } }
        w.optional(orientation) { $0.u64s($1) }
        w.optional(pixelSpacing) { $0.u64s($1) }
        for v in [sliceThickness, spacingBetweenSlices, echoTime, repetitionTime, inversionTime] { w.optional(v) { $0.u64($1) } }
        w.int(frameGroups.count)
        for g in frameGroups {
            w.optional(g.orientation) { $0.u64s($1) }
            w.optional(g.pixelSpacing) { $0.u64s($1) }
            w.optional(g.sliceThickness) { $0.u64($1) }
            w.optional(g.rescale) { $0.u64s($1) }
            w.optional(g.stackID) { $0.string($1) }
            w.optional(g.inStackPosition) { $0.int($1) }
        }
        for v in [rows, columns, numberOfFrames, bitsAllocated, bitsStored, pixelRepresentation, samplesPerPixel] { w.int(v) }
        w.bool(numberOfFramesMissing)
        w.bool(hasPixelData)
        w.u64(rescaleSlope)
        w.u64(rescaleIntercept)
        w.optional(pixelDataLength) { $0.int($1) }
        w.int(warnings.count)
        for s in warnings { w.string(s) }
    }

    /// Reads what `write(to:)` wrote.
    init(reading r: inout ByteReader) throws {
        transferSyntaxUID = try r.string(); sopClassUID = try r.string(); sopInstanceUID = try r.string()
        studyInstanceUID = try r.string(); seriesInstanceUID = try r.string(); modality = try r.string()
        seriesDescription = try r.string(); imageType = try r.string(); photometricInterpretation = try r.string()
        seriesNumber = try r.optional { try $0.int() }
        instanceNumber = try r.optional { try $0.int() }
        framePositions = try (0..<r.count()).map { _ in try r.optional { try $0.u64s() } }
        orientation = try r.optional { try $0.u64s() }
        pixelSpacing = try r.optional { try $0.u64s() }
        sliceThickness = try r.optional { try $0.u64() }
        spacingBetweenSlices = try r.optional { try $0.u64() }
        echoTime = try r.optional { try $0.u64() }
        repetitionTime = try r.optional { try $0.u64() }
        inversionTime = try r.optional { try $0.u64() }
        frameGroups = try (0..<r.count()).map { _ in
            Groups(orientation: try r.optional { try $0.u64s() }, pixelSpacing: try r.optional { try $0.u64s() },
                   sliceThickness: try r.optional { try $0.u64() }, rescale: try r.optional { try $0.u64s() },
                   stackID: try r.optional { try $0.string() }, inStackPosition: try r.optional { try $0.int() })
        }
        rows = try r.int(); columns = try r.int(); numberOfFrames = try r.int(); bitsAllocated = try r.int()
        bitsStored = try r.int(); pixelRepresentation = try r.int(); samplesPerPixel = try r.int()
        numberOfFramesMissing = try r.bool(); hasPixelData = try r.bool()
        rescaleSlope = try r.u64(); rescaleIntercept = try r.u64()
        pixelDataLength = try r.optional { try $0.int() }
        warnings = try (0..<r.count()).map { _ in try r.string() }
    }

    private static func bits(_ v: Vec3) -> [UInt64] { [v.x.bitPattern, v.y.bitPattern, v.z.bitPattern] }
    private static func vector(_ b: [UInt64]) -> Vec3 { Vec3(Double(bitPattern: b[0]), Double(bitPattern: b[1]), Double(bitPattern: b[2])) }
    private static func directions(_ b: [UInt64]) -> (row: Vec3, column: Vec3) { (vector(Array(b[0..<3])), vector(Array(b[3..<6]))) }
    private static func pair(_ b: [UInt64]) -> (row: Double, column: Double) { (Double(bitPattern: b[0]), Double(bitPattern: b[1])) }
}
