import CGDCM
import Foundation

/// fuse3d's own DICOM RLE Lossless decoder (PS3.5 Annex G, in the GDCM shim), which replaces GDCM's
/// slower RLE codec when decoding, and the raw pixel bytes of a file by either GDCM's codecs or fuse3d's
/// own paths (RLE, JPEG-LS through CharLS), to compare them.
public enum RLE {
    /// Which decoder produces a file's raw pixel bytes.
    public enum Decoder: Int32, Sendable {
        /// GDCM's codecs (every transfer syntax).
        case gdcm = 0
        /// fuse3d's own paths: its RLE decoder, and CharLS called directly for greyscale JPEG-LS (one
        /// fragment per frame); other files are an error.
        case fuse3d = 1
    }

    /// Decodes one RLE frame (one fragment) into pixel-interleaved little-endian samples. Throws when
    /// the header or a segment lies (offsets outside the fragment, too many segments, overruns).
    public static func decodeFrame(_ fragment: [UInt8], rows: Int, columns: Int, samples: Int, bitsAllocated: Int) throws -> [UInt8] {
        let count = max(rows, 0) * max(columns, 0) * max(samples, 0) * max(bitsAllocated / 8, 0)
        var out = [UInt8](repeating: 0, count: count)
        let n = fragment.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                gd_rle_decode_frame(src.baseAddress, UInt64(src.count), Int32(clamping: rows), Int32(clamping: columns),
                                    Int32(clamping: samples), Int32(clamping: bitsAllocated), dst.baseAddress, UInt64(dst.count))
            }
        }
        if n < 0 { throw GDCM.fail("RLE frame", "cannot decode RLE frame") }
        return out
    }

    /// Every frame of the file at `path` as raw little-endian bytes, decoded by `decoder`.
    public static func pixelBytes(_ path: String, decoder: Decoder) throws -> [UInt8] {
        let header = try DicomReader.readHeader(path)
        // The same refusals as a decode (colour aside): GDCM's image reader aborts on some of these.
        if case .absurdDimensions(let s)? = header.headerProblem { throw GDCMError(path: path, message: DicomProblem.absurdDimensions(s).description) }
        if header.numberOfFramesMissing && header.isMultiFrameClass {
            throw GDCMError(path: path, message: "multi-frame SOP class \(header.sopClassUID) without NumberOfFrames")
        }
        let file = try DicomFile(path: path, withPixels: true)
        let length = gd_file_pixel_bytes(file.handle, decoder.rawValue, nil, 0)
        if length < 0 { throw GDCM.fail(path, "cannot size pixel data") }
        var out = [UInt8](repeating: 0, count: Int(length))
        let n = out.withUnsafeMutableBufferPointer { gd_file_pixel_bytes(file.handle, decoder.rawValue, $0.baseAddress, length) }
        if n < 0 { throw GDCM.fail(path, "cannot decode pixel data") }
        return out
    }
}
