import CPNG
import Core
import Foundation

/// Why a picture or volume could not be written, with the file it concerns.
public struct ExportError: Error, CustomStringConvertible, Equatable {
    /// The file that could not be written.
    public var path: String
    /// What went wrong.
    public var message: String
    /// An error about writing `path`, saying `message`.
    public init(path: String, message: String) { self.path = path; self.message = message }
    /// "path: message".
    public var description: String { "\(path): \(message)" }
}

/// An 8-bit RGB picture in memory, row-major, written to PNG through Debian's libpng.
public struct RGBImage: Sendable, Equatable {
    /// Columns.
    public let width: Int
    /// Rows.
    public let height: Int
    /// width × height × 3 bytes, row-major.
    public var pixels: [UInt8]

    /// A picture filled with one colour.
    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { pixels[3 * i] = fill.0; pixels[3 * i + 1] = fill.1; pixels[3 * i + 2] = fill.2 }
    }

    /// The colour at column x, row y.
    public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        get { let i = 3 * (y * width + x); return (pixels[i], pixels[i + 1], pixels[i + 2]) }
        set { let i = 3 * (y * width + x); pixels[i] = newValue.0; pixels[i + 1] = newValue.1; pixels[i + 2] = newValue.2 }
    }

    /// Sets a pixel, ignoring positions outside the picture (markers near an edge are clipped).
    public mutating func plot(_ x: Int, _ y: Int, _ colour: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        self[x, y] = colour
    }

    /// The picture as an 8-bit RGB PNG file's bytes.
    public func pngData() throws -> Data {
        var message = [CChar](repeating: 0, count: 512)
        var bytes: UnsafeMutablePointer<UInt8>?
        var count = 0
        let status = pixels.withUnsafeBufferPointer { px in
            fp_encode_png(px.baseAddress, Int32(width), Int32(height), 3, &bytes, &count, &message, Int32(message.count))
        }
        defer { fp_free(bytes) }
        guard status == 0, let bytes else {
            throw ExportError(path: "PNG", message: String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return Data(bytes: bytes, count: count)
    }

    /// Writes the picture as an 8-bit RGB PNG, complete or absent (`AtomicFile`).
    public func writePNG(to url: URL) throws {
        let data: Data
        do { data = try pngData() } catch let error as ExportError { throw ExportError(path: url.path, message: error.message) }
        try AtomicFile.write(data, to: url)
    }
}
