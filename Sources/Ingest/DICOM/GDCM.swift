import CGDCM
import Foundation

/// An error reported by the GDCM shim, with the file it concerns.
public struct GDCMError: Error, CustomStringConvertible, Equatable {
    /// The file the error concerns.
    public var path: String
    /// What went wrong (GDCM's last error, or the reader's own words).
    public var message: String
    /// An error about `path` saying `message`.
    public init(path: String, message: String) { self.path = path; self.message = message }
    /// "path: message".
    public var description: String { "\(path): \(message)" }
}

/// The one place the shim's thread-local last error becomes a Swift value.
enum GDCM {
    /// Drains the calling thread's last error (nil when none was set).
    static func takeLastError() -> String? {
        guard let p = gd_last_error() else { return nil }
        defer { gd_string_free(p) }
        return String(cString: p)
    }

    /// Throws a `GDCMError` for `path` built from the last error (or `fallback`).
    static func fail(_ path: String, _ fallback: String) -> GDCMError {
        GDCMError(path: path, message: takeLastError() ?? fallback)
    }

    /// A Swift string from a shim-allocated C string, freeing it.
    static func takeString(_ p: UnsafeMutablePointer<CChar>?) -> String? {
        guard let p else { return nil }
        defer { gd_string_free(p) }
        return String(cString: p)
    }

    /// GDCM's version.
    static var version: String { String(cString: gd_version()) }
}
