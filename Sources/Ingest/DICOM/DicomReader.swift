import CGDCM
import Foundation

/// Reads DICOM files through GDCM: header-only scans and full decodes into real-valued frames.
public enum DicomReader {
    /// The GDCM library this build links.
    public static var gdcmVersion: String { GDCM.version }

    /// Refuse matrices beyond this many rows or columns: real MR is far smaller; more is a lying header.
    public static let maxMatrix = 8192
    /// Refuse files claiming more frames than this.
    public static let maxFrames = 4096
    /// Refuse files claiming more pixels than this in all (2^28: 512 x 512 x 1024 frames, 1 GiB of float), before the
    /// decode buffer is allocated: within the limits above a crafted header could still claim 2^38 of them.
    public static let maxPixels = 1 << 28

    /// Parses the header (stops before Pixel Data). Throws a `GDCMError` naming the file.
    public static func readHeader(_ path: String) throws -> DicomHeader {
        let file = try DicomFile(path: path, withPixels: false)
        return try file.header()
    }

    /// Decoding allocates and frees megabyte buffers per file; glibc would serve each from fresh
    /// mmap'd pages (a page fault per 4 kB, half the decode time measured on 1024² files). Raising
    /// the mmap and trim thresholds lets freed buffers be reused. Process-wide, done once.
    private static let reuseLargeBuffers: Void = {
        gd_reuse_large_buffers()
    }()

    /// Parses and decodes a whole file: its header and every frame as real values (rescale applied).
    public static func readImage(_ path: String) throws -> DicomImage {
        _ = reuseLargeBuffers
        // Header first: GDCM's image reader (built with assertions on Debian) aborts on some
        // objects it should refuse, so non-images and lying headers never reach it. Files that fuse3d
        // decodes itself (uncompressed, RLE, JPEG-LS) never meet that reader: they are parsed once, with
        // their pixels; the others are parsed for the header, then again by the image reader.
        let first = try DicomFile(path: path, pixels: .whenDecodedByFuse3D)
        let header = try first.header()
        if header.isNonImage {
            throw GDCMError(path: path, message: DicomProblem.nonImage("SOP class \(header.sopClassUID) (\(header.modality))").description)
        }
        try validateDimensions(header)
        let file = first.hasPixels ? first : try DicomFile(path: path, withPixels: true)
        let count = header.rows * header.columns * max(header.numberOfFrames, 1)
        // Not zero-filled first (2 % of a cold ingest's instructions): the decoder writes every value or fails, and a
        // buffer it did not fill is thrown away below (Float has no invariants to break).
        var written: Int64 = -1
        let pixels = [Float](unsafeUninitializedCapacity: count) { buf, initialized in
            if header.frameGroups.contains(where: { $0.rescale != nil }) {
                // Enhanced objects may transform each frame's values differently (Pixel Value Transformation).
                let rescales = (0..<max(header.numberOfFrames, 1)).map { header.rescale(frame: $0) }
                written = gd_file_decode_frames(file.handle, rescales.map(\.slope), rescales.map(\.intercept), Int64(rescales.count),
                                                buf.baseAddress, Int64(count))
            } else {
                written = gd_file_decode(file.handle, header.rescaleSlope, header.rescaleIntercept, buf.baseAddress, Int64(count))
            }
            initialized = count
        }
        if written < 0 { throw GDCM.fail(path, "cannot decode pixel data") }
        if Int(written) != count {
            throw GDCMError(path: path, message: "decoded \(written) values, header promises \(count)")
        }
        var h = header
        h.warnings = file.warnings().filter { header.frameGroups.isEmpty || !DicomFile.isAboutGDCMsOwnGeometry($0) }
        return DicomImage(header: h, pixels: pixels)
    }

    /// Rejects headers whose dimensions no scanner produces, before any pixel buffer is allocated.
    static func validateDimensions(_ h: DicomHeader) throws {
        if h.rows <= 0 || h.columns <= 0 {
            throw GDCMError(path: h.path, message: DicomProblem.absurdDimensions("Rows \(h.rows) × Columns \(h.columns)").description)
        }
        if h.rows > maxMatrix || h.columns > maxMatrix || h.numberOfFrames > maxFrames || h.numberOfFrames < 1 {
            throw GDCMError(path: h.path, message: DicomProblem.absurdDimensions(
                "\(h.rows)×\(h.columns)×\(h.numberOfFrames) frames (limits \(maxMatrix)×\(maxMatrix)×\(maxFrames))").description)
        }
        if h.rows * h.columns * h.numberOfFrames > maxPixels {
            throw GDCMError(path: h.path, message: DicomProblem.absurdDimensions(
                "\(h.rows)×\(h.columns)×\(h.numberOfFrames) frames is more than \(maxPixels) pixels in all").description)
        }
        if h.numberOfFramesMissing && h.isMultiFrameClass {
            throw GDCMError(path: h.path, message: "multi-frame SOP class \(h.sopClassUID) without NumberOfFrames")
        }
        if !ValueLimits.bitsAllocated.contains(h.bitsAllocated) || h.bitsStored < 0 || h.bitsStored > h.bitsAllocated {
            throw GDCMError(path: h.path, message: "BitsAllocated \(h.bitsAllocated) / BitsStored \(h.bitsStored) (BitsAllocated must be 1 to 32 and hold BitsStored)")
        }
        for f in 0..<max(h.frameGroups.count, 1) {
            let r = h.rescale(frame: f)
            if let reason = ValueLimits.rescaleProblem(slope: r.slope, intercept: r.intercept) {
                throw GDCMError(path: h.path, message: h.frameGroups.count > 1 ? "frame \(f): \(reason)" : reason)
            }
        }
        if h.samplesPerPixel != 1 {
            throw GDCMError(path: h.path, message: "colour image (\(h.samplesPerPixel) samples per pixel, \(h.photometricInterpretation)) where a greyscale image is needed")
        }
    }
}

/// A decoded DICOM image: its header and all frames' pixels (frames consecutive, rows row-major).
public struct DicomImage: Sendable {
    /// The file's header (with the decoder's warnings).
    public var header: DicomHeader
    /// rows × columns × frames rescaled values, frame after frame, each row-major.
    public var pixels: [Float]

    /// The pixels of frame `index`.
    public func frame(_ index: Int) -> [Float] {
        let n = header.rows * header.columns
        // A single-frame file's frame is its whole buffer: shared, not copied.
        if pixels.count == n { return pixels }
        return Array(pixels[(index * n)..<((index + 1) * n)])
    }

    /// Each frame as a `Slice` with its own geometry; throws when a frame has no usable geometry.
    public func slices(source: String) throws -> [Slice] {
        try (0..<max(header.numberOfFrames, 1)).map { f in
            switch header.geometry(frame: f) {
            case .success(let g):
                return Slice(geometry: g, pixels: frame(f), instanceNumber: header.instanceNumber ?? 0,
                             sopInstanceUID: header.numberOfFrames > 1 ? "\(header.sopInstanceUID)#\(f)" : header.sopInstanceUID,
                             source: source, frameNumber: header.isMultiFrame ? f + 1 : nil)
            case .failure(let p):
                throw GDCMError(path: header.path, message: p.description)
            }
        }
    }
}

/// An open GDCM file handle, freed with the value.
final class DicomFile {
    let handle: gd_file
    let path: String

    /// Which parts of a file `gd_file_open` reads.
    enum Pixels: Int32 {
        case none = 0, always = 1
        /// With pixels when its transfer syntax is one fuse3d decodes itself, else the header only.
        case whenDecodedByFuse3D = 2
    }

    init(path: String, pixels: Pixels) throws {
        guard let h = gd_file_open(path, pixels.rawValue) else { throw GDCM.fail(path, "cannot read file") }
        self.handle = h
        self.path = path
    }

    convenience init(path: String, withPixels: Bool) throws {
        try self.init(path: path, pixels: withPixels ? .always : .none)
    }

    /// Whether the pixel data was read (it can be decoded).
    var hasPixels: Bool { gd_file_has_pixels(handle) == 1 }

    deinit { gd_file_free(handle) }

    /// A top-level element as trimmed text, nil when absent.
    func string(_ group: UInt16, _ element: UInt16) -> String? {
        GDCM.takeString(gd_file_string(handle, group, element))
    }

    /// A functional-group element of `frame` (enhanced multi-frame objects).
    func frameString(_ frame: Int, _ seq: (UInt16, UInt16), _ tag: (UInt16, UInt16)) -> String? {
        GDCM.takeString(gd_file_frame_string(handle, Int32(frame), seq.0, seq.1, tag.0, tag.1))
    }

    func warnings() -> [String] {
        (GDCM.takeString(gd_file_warnings(handle)) ?? "").split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    /// Reads every field of `DicomHeader`.
    func header() throws -> DicomHeader {
        let sopClass = string(0x0008, 0x0016) ?? ""
        let studyUID = string(0x0020, 0x000D) ?? ""
        let seriesUID = string(0x0020, 0x000E) ?? ""
        let sopUID = string(0x0008, 0x0018) ?? ""
        let hasPixels = gd_file_has_pixel_data(handle) == 1
        if sopClass.isEmpty && studyUID.isEmpty && seriesUID.isEmpty && sopUID.isEmpty {
            throw GDCMError(path: path, message: "not a DICOM file (no SOP Class, Study, Series or SOP Instance UID)")
        }
        let frames = Self.int(string(0x0028, 0x0008)) ?? 1
        var positions: [Vec3?] = []
        var groups: [FrameFunctionalGroups] = []
        var orientation = Self.orientation(string(0x0020, 0x0037))
        var spacing = Self.pair(string(0x0028, 0x0030))
        var thickness = Self.double(string(0x0018, 0x0050))
        if let p = Self.vec3(string(0x0020, 0x0032)), frames <= 1 {
            positions = [p]
        } else {
            // Enhanced multi-frame: each frame's functional groups (its own item, else the shared one).
            let boundedFrames = min(max(frames, 1), DicomReader.maxFrames)
            positions = (0..<boundedFrames).map { Self.vec3(frameString($0, (0x0020, 0x9113), (0x0020, 0x0032))) }
            if positions.allSatisfy({ $0 == nil }), let p = Self.vec3(string(0x0020, 0x0032)) {
                positions = Array(repeating: p, count: boundedFrames)
            }
            groups = (0..<boundedFrames).map(functionalGroups)
            orientation = orientation ?? groups.first?.orientation
            spacing = spacing ?? groups.first?.pixelSpacing
            thickness = thickness ?? groups.first?.sliceThickness
        }
        let echo = Self.double(string(0x0018, 0x0081)) ?? Self.double(frameString(0, (0x0018, 0x9114), (0x0018, 0x9082)))
        var header = DicomHeader(
            path: path,
            transferSyntaxUID: GDCM.takeString(gd_file_transfer_syntax(handle)) ?? "",
            sopClassUID: sopClass, sopInstanceUID: sopUID, studyInstanceUID: studyUID, seriesInstanceUID: seriesUID,
            modality: string(0x0008, 0x0060) ?? "",
            seriesDescription: string(0x0008, 0x103E) ?? "",
            seriesNumber: Self.int(string(0x0020, 0x0011)),
            instanceNumber: Self.int(string(0x0020, 0x0013)),
            imageType: string(0x0008, 0x0008) ?? "",
            framePositions: positions,
            orientation: orientation,
            pixelSpacing: spacing,
            sliceThickness: thickness,
            spacingBetweenSlices: Self.double(string(0x0018, 0x0088)),
            rows: Self.int(string(0x0028, 0x0010)) ?? 0,
            columns: Self.int(string(0x0028, 0x0011)) ?? 0,
            numberOfFrames: frames,
            numberOfFramesMissing: string(0x0028, 0x0008) == nil,
            bitsAllocated: Self.int(string(0x0028, 0x0100)) ?? 0,
            bitsStored: Self.int(string(0x0028, 0x0101)) ?? 0,
            pixelRepresentation: Self.int(string(0x0028, 0x0103)) ?? 0,
            samplesPerPixel: Self.int(string(0x0028, 0x0002)) ?? 1,
            photometricInterpretation: string(0x0028, 0x0004) ?? "",
            rescaleSlope: Self.double(string(0x0028, 0x1053)) ?? 1,
            rescaleIntercept: Self.double(string(0x0028, 0x1052)) ?? 0,
            echoTime: echo,
            repetitionTime: Self.double(string(0x0018, 0x0080)),
            inversionTime: Self.double(string(0x0018, 0x0082)),
            hasPixelData: hasPixels,
            pixelDataLength: { let n = gd_file_pixel_data_length(handle); return n >= 0 ? Int(n) : nil }(),
            warnings: warnings())
        header.frameGroups = groups
        if !groups.isEmpty { header.warnings = header.warnings.filter { !Self.isAboutGDCMsOwnGeometry($0) } }
        return header
    }

    /// What frame `f`'s functional groups say: Plane Orientation, Pixel Measures, Pixel Value
    /// Transformation and Frame Content.
    func functionalGroups(_ f: Int) -> FrameFunctionalGroups {
        let measures: (UInt16, UInt16) = (0x0028, 0x9110), transformation: (UInt16, UInt16) = (0x0028, 0x9145)
        let content: (UInt16, UInt16) = (0x0020, 0x9111)
        let slope = Self.double(frameString(f, transformation, (0x0028, 0x1053)))
        let intercept = Self.double(frameString(f, transformation, (0x0028, 0x1052)))
        return FrameFunctionalGroups(
            orientation: Self.orientation(frameString(f, (0x0020, 0x9116), (0x0020, 0x0037))),
            pixelSpacing: Self.pair(frameString(f, measures, (0x0028, 0x0030))),
            sliceThickness: Self.double(frameString(f, measures, (0x0018, 0x0050))),
            rescale: slope == nil && intercept == nil ? nil : (slope ?? 1, intercept ?? 0),
            stackID: frameString(f, content, (0x0020, 0x9056)),
            inStackPosition: Self.int(frameString(f, content, (0x0020, 0x9057))))
    }

    /// GDCM's image reader derives one origin, spacing and orientation for a whole multi-frame object
    /// and warns where its functional groups defeat that ("This Enhanced Multiframe is not supported
    /// for now", "Could not find Spacing"). fuse3d reads every frame's groups itself and never uses
    /// GDCM's derived geometry, so those lines say nothing about the file; a frame without geometry is
    /// fuse3d's own problem line (`DicomHeader.headerProblem`).
    static func isAboutGDCMsOwnGeometry(_ warning: String) -> Bool {
        ["Enhanced Multiframe is not supported", "Could not find Spacing", "Could not find Origin",
         "Could not find DirectionCosines"].contains { warning.contains($0) }
    }

    // MARK: value parsing (DICOM DS/IS text, '\'-separated)

    static func doubles(_ s: String?) -> [Double]? {
        guard let s, !s.isEmpty else { return nil }
        let parts = s.split(separator: "\\", omittingEmptySubsequences: false).map { Double(trimmed($0)) }
        guard parts.allSatisfy({ $0 != nil }) else { return nil }
        return parts.map { $0! }
    }
    /// `part` without leading and trailing `.whitespaces`: ASCII text (DICOM's default repertoire) trimmed of spaces and
    /// tabs from its bytes, anything else by Foundation (the header scan's profile: its NSString bridging per value).
    static func trimmed(_ part: Substring) -> Substring {
        let bytes = part.utf8
        guard bytes.allSatisfy({ $0 < 0x80 }) else { return Substring(part.trimmingCharacters(in: .whitespaces)) }
        var start = bytes.startIndex, end = bytes.endIndex
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start = bytes.index(after: start) }
        while end > start, bytes[bytes.index(before: end)] == 0x20 || bytes[bytes.index(before: end)] == 0x09 { end = bytes.index(before: end) }
        return part[start..<end]
    }

    static func double(_ s: String?) -> Double? { doubles(s).flatMap { $0.count == 1 ? $0[0] : nil } }
    static func int(_ s: String?) -> Int? {
        guard let s else { return nil }
        let t = trimmed(Substring(s))
        return Int(t) ?? Double(t).flatMap { $0.isFinite && abs($0) < 1e15 ? Int($0) : nil }
    }
    static func vec3(_ s: String?) -> Vec3? {
        guard let v = doubles(s), v.count == 3 else { return nil }
        return Vec3(v[0], v[1], v[2])
    }
    static func pair(_ s: String?) -> (row: Double, column: Double)? {
        guard let v = doubles(s), v.count == 2 else { return nil }
        return (v[0], v[1])
    }
    static func orientation(_ s: String?) -> (row: Vec3, column: Vec3)? {
        guard let v = doubles(s), v.count == 6 else { return nil }
        return (Vec3(v[0], v[1], v[2]), Vec3(v[3], v[4], v[5]))
    }
}
