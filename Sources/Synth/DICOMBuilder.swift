import CGDCM
import Foundation
import Ingest

/// A lossless transfer syntax the synthetic writer can produce.
public enum SynthTransferSyntax: Int, CaseIterable, Sendable {
    /// The syntax a command line names: explicit-le, jpeg2000, jpeg-ls, rle or jpeg-lossless.
    public init?(name: String) {
        guard let s = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = s
    }

    /// The name `fuse3d synth --transfer-syntax` takes.
    public var name: String {
        switch self {
        case .explicitLittleEndian: return "explicit-le"
        case .jpeg2000Lossless: return "jpeg2000"
        case .jpegLSLossless: return "jpeg-ls"
        case .rleLossless: return "rle"
        case .jpegLossless: return "jpeg-lossless"
        }
    }

    /// Uncompressed, explicit VR little endian.
    case explicitLittleEndian = 0
    /// JPEG 2000 (lossless only).
    case jpeg2000Lossless = 1
    /// JPEG-LS lossless.
    case jpegLSLossless = 2
    /// RLE lossless.
    case rleLossless = 3
    /// JPEG lossless, process 14, first-order prediction (selection value 1).
    case jpegLossless = 4

    /// The transfer syntax UID written in the file meta header.
    public var uid: String {
        switch self {
        case .explicitLittleEndian: return "1.2.840.10008.1.2.1"
        case .jpeg2000Lossless: return "1.2.840.10008.1.2.4.90"
        case .jpegLSLossless: return "1.2.840.10008.1.2.4.80"
        case .rleLossless: return "1.2.840.10008.1.2.5"
        case .jpegLossless: return "1.2.840.10008.1.2.4.70"
        }
    }
}

/// The GDCM shim's last error about `path` (or `fallback`), as the reader reports its own.
private func writerError(_ path: String, _ fallback: String) -> GDCMError {
    guard let p = gd_last_error() else { return GDCMError(path: path, message: fallback) }
    defer { gd_string_free(p) }
    return GDCMError(path: path, message: String(cString: p))
}

/// One DICOM file under construction through the GDCM writer shim: text elements, one 16-bit
/// image with its geometry, then `write`. Frees its handle on deinit.
final class DICOMBuilder {
    private let handle: gdw_builder

    init() throws {
        guard let h = gdw_builder_new() else { throw writerError("<memory>", "could not create a DICOM builder") }
        handle = h
    }

    deinit { gdw_builder_free(handle) }

    /// Sets a text element (`vr` is the two-letter VR; several values joined by `\`).
    func set(_ group: UInt16, _ element: UInt16, _ vr: String, _ value: String) throws {
        guard gdw_builder_set_string(handle, group, element, vr, value) == 0 else {
            throw writerError("<builder>", "could not set (\(group),\(element))")
        }
    }

    /// Sets the pixels (row-major, `geometry.rows × geometry.columns`) and the geometry tags.
    func setImage(_ pixels: [UInt16], geometry g: SliceGeometry, bitsStored: Int) throws {
        precondition(pixels.count == g.rows * g.columns, "pixel count does not match the geometry")
        let position = [g.position.x, g.position.y, g.position.z]
        // Adding 0 turns -0 into 0, so the tag never reads "-0".
        let orientation = [g.rowDirection.x, g.rowDirection.y, g.rowDirection.z,
                           g.columnDirection.x, g.columnDirection.y, g.columnDirection.z].map { $0 + 0 }
        let spacing = [g.rowSpacing, g.columnSpacing]
        let status = pixels.withUnsafeBufferPointer { px in
            gdw_builder_set_image_u16(handle, px.baseAddress, UInt32(g.rows), UInt32(g.columns), UInt16(bitsStored),
                                      position, orientation, spacing)
        }
        guard status == 0 else { throw writerError("<builder>", "could not set the image") }
    }

    /// Appends one frame of an enhanced multi-frame image: its pixels (already in stored values), its
    /// geometry, the Pixel Value Transformation that turns them back into real values, and its place
    /// in a stack (Frame Content).
    func addFrame(_ pixels: [UInt16], geometry g: SliceGeometry, bitsStored: Int, slope: Double, intercept: Double,
                  stackID: Int, inStackPosition: Int) throws {
        precondition(pixels.count == g.rows * g.columns, "pixel count does not match the geometry")
        let status = pixels.withUnsafeBufferPointer { px in
            var frame = gdw_frame()
            frame.pixels = px.baseAddress
            frame.position = (g.position.x, g.position.y, g.position.z)
            frame.orientation = (g.rowDirection.x, g.rowDirection.y, g.rowDirection.z,
                                 g.columnDirection.x, g.columnDirection.y, g.columnDirection.z)
            frame.pixel_spacing = (g.rowSpacing, g.columnSpacing)
            frame.thickness = g.thickness
            frame.slope = slope
            frame.intercept = intercept
            frame.stack_id = UInt32(stackID)
            frame.in_stack_position = UInt32(inStackPosition)
            return gdw_builder_add_frame(handle, &frame, UInt32(g.rows), UInt32(g.columns), UInt16(bitsStored))
        }
        guard status == 0 else { throw writerError("<builder>", "could not add a frame") }
    }

    /// Functional groups an enhanced file shares between its frames (the others are written per frame).
    struct SharedGroups: OptionSet {
        let rawValue: Int32
        static let orientation = SharedGroups(rawValue: Int32(GDW_SHARED_ORIENTATION.rawValue))
        static let pixelMeasures = SharedGroups(rawValue: Int32(GDW_SHARED_PIXEL_MEASURES.rawValue))
        static let transformation = SharedGroups(rawValue: Int32(GDW_SHARED_TRANSFORMATION.rawValue))
    }

    /// Writes the frames added so far as one enhanced multi-frame file in `syntax`.
    func writeEnhanced(to path: String, syntax: SynthTransferSyntax, shared: SharedGroups) throws {
        let ts = gdw_transfer_syntax(rawValue: UInt32(syntax.rawValue))
        guard gdw_builder_write_enhanced(handle, path, ts, shared.rawValue) == 0 else {
            throw writerError(path, "could not write an enhanced DICOM file")
        }
    }

    /// Writes the file in `syntax`.
    func write(to path: String, syntax: SynthTransferSyntax) throws {
        let ts = gdw_transfer_syntax(rawValue: UInt32(syntax.rawValue))
        guard gdw_builder_write(handle, path, ts) == 0 else { throw writerError(path, "could not write DICOM") }
    }

    /// The 16-bit pixels of the image at `path`, decoded by GDCM (any transfer syntax): for checking
    /// that what was written reads back losslessly.
    static func decodePixels(at path: String, capacity: Int) throws -> [UInt16] {
        var out = [UInt16](repeating: 0, count: capacity)
        let n = out.withUnsafeMutableBufferPointer { gdw_read_pixels_u16(path, $0.baseAddress, capacity) }
        guard n >= 0 else { throw writerError(path, "could not decode the pixels") }
        return Array(out.prefix(Int(n)))
    }
}
