import CHDF5
import Foundation

/// An HDF5 call that failed: the file it concerns, the operation, and HDF5's own error stack.
public struct HDF5Error: Error, CustomStringConvertible, Sendable {
    /// The HDF5 file the operation was on.
    public var path: String
    /// What was being done ("create dataset volumes", "read attribute channels", ...).
    public var operation: String
    /// HDF5's error stack, innermost call last, or a fallback when the stack was empty.
    public var message: String
    /// `path: operation failed: message`.
    public var description: String { "\(path): \(operation) failed: \(message)" }
}

/// The one thin layer between the shard code and HDF5's C API: negative `herr_t` / `hid_t` returns
/// become thrown `HDF5Error`s that carry HDF5's error stack instead of letting HDF5 print it.
enum H5 {
    /// The zstd filter's registration status (registered once per process, on first use).
    private static let zstdRegistration: Int32 = {
        ch5_silence_errors()
        return fz_register_zstd()
    }()

    /// Call at each public entry point: silences HDF5's auto-printing on this thread (HDF5 keeps it
    /// per thread) and makes sure the zstd filter is registered.
    static func begin(_ path: String) throws {
        ch5_silence_errors()
        if zstdRegistration < 0 { throw failure(path, "register the zstd filter (id 32015)") }
    }

    /// The error for a failed `operation` on `path`, draining HDF5's error stack.
    static func failure(_ path: String, _ operation: String) -> HDF5Error {
        var message = "HDF5 reported no detail"
        if let p = ch5_take_error() {
            message = String(cString: p)
            ch5_string_free(p)
        }
        return HDF5Error(path: path, operation: operation, message: message)
    }

    /// Throws unless `status` is non-negative.
    static func check(_ status: herr_t, _ path: String, _ operation: @autoclosure () -> String) throws {
        if status < 0 { throw failure(path, operation()) }
    }

    /// Returns `id`, or throws if HDF5 returned a negative identifier.
    static func check(id: hid_t, _ path: String, _ operation: @autoclosure () -> String) throws -> hid_t {
        if id < 0 { throw failure(path, operation()) }
        return id
    }

}

/// An HDF5 identifier (file, dataset, dataspace, datatype, property list, attribute) that is
/// closed exactly once: explicitly with `close()` where the result matters, else on deinit.
final class H5Object {
    /// The raw identifier.
    let id: hid_t
    private let closer: (hid_t) -> herr_t
    private var open = true

    init(_ id: hid_t, closer: @escaping (hid_t) -> herr_t) {
        self.id = id
        self.closer = closer
    }

    /// Closes now and reports failure (a file's close flushes its metadata).
    func close(_ path: String, _ what: String) throws {
        guard open else { return }
        // Marked closed before closing, so a failed close is never retried (not even on deinit).
        open = false
        try H5.check(closer(id), path, "close \(what)")
    }

    deinit {
        if open { _ = closer(id) }
    }

    static func file(_ id: hid_t) -> H5Object { H5Object(id, closer: H5Fclose) }
    static func dataset(_ id: hid_t) -> H5Object { H5Object(id, closer: H5Dclose) }
    static func space(_ id: hid_t) -> H5Object { H5Object(id, closer: H5Sclose) }
    static func type(_ id: hid_t) -> H5Object { H5Object(id, closer: H5Tclose) }
    static func plist(_ id: hid_t) -> H5Object { H5Object(id, closer: H5Pclose) }
    static func attribute(_ id: hid_t) -> H5Object { H5Object(id, closer: H5Aclose) }
}
