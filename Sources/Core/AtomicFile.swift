import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Complete-or-absent files, the one way the project writes one: the content goes to a temporary file in the same
/// folder (`NAME.partial`, or a name the caller makes unique), every write and the fsync are checked, the file is
/// renamed over `NAME`, and the folder is fsynced so that the rename itself survives a crash. On any failure the
/// temporary file is removed and an earlier `NAME` is left as it was.
public enum AtomicFile {
    /// What `partial(for:)` appends to a file's name (data-schema.md: a shard's `shard-NNNNN.h5.partial`).
    public static let partialSuffix = ".partial"

    /// Where `final` is written before it is committed.
    public static func partial(for final: URL) -> URL {
        final.deletingLastPathComponent().appendingPathComponent(final.lastPathComponent + partialSuffix)
    }

    /// Writes `data` to `final` atomically, through `temporary` (default `partial(for: final)`; give a unique name
    /// when several processes may write `final` at once). Both must be in one folder.
    public static func write(_ data: Data, to final: URL, temporary: URL? = nil) throws {
        let partial = temporary ?? partial(for: final)
        do {
            let fd = try create(partial)
            defer { close(fd) }
            try writeAll(data, to: fd, path: partial.path)
            guard Glibc.fsync(fd) == 0 else { throw FileError(path: partial.path, "fsync failed: \(errnoText())") }
        } catch {
            unlink(partial.path)
            throw error
        }
        do { try renameIntoPlace(partial, final) } catch {
            unlink(partial.path)
            throw error
        }
    }

    /// Writes `final` atomically with `body`, which writes the whole file at the URL it is given (a library that
    /// writes to a path); then fsync, rename and the folder's fsync as in `write`. A body that throws leaves no file.
    public static func write(to final: URL, using body: (URL) throws -> Void) throws {
        let partial = partial(for: final)
        do {
            try body(partial)
            try commit(partial, to: final)
        } catch {
            unlink(partial.path)
            throw error
        }
    }

    /// Writes `data` to a new file at `temporary` (replacing one left there), every write checked, not yet
    /// fsynced: the first half of a write whose `commit` runs later (the study cache commits on a background queue).
    public static func writeUnsynced(_ data: Data, to temporary: URL) throws {
        do {
            let fd = try create(temporary)
            defer { close(fd) }
            try writeAll(data, to: fd, path: temporary.path)
        } catch {
            unlink(temporary.path)
            throw error
        }
    }

    /// Fsyncs `partial`, renames it to `final` (replacing it) and fsyncs the folder.
    public static func commit(_ partial: URL, to final: URL) throws {
        try fsync(path: partial.path, directory: false)
        try renameIntoPlace(partial, final)
    }

    /// `commit`, returning the file's SHA-256: this thread hashes the file while another waits for its fsync, so the
    /// disk's time and the hash's overlap (issue 20: closing a 17 MB shard took fsync 13 ms + hash 22 ms one after
    /// the other). The rename comes after both, as in `commit`.
    public static func commitHashing(_ partial: URL, to final: URL) throws -> String {
        let fd = open(partial.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path: partial.path, "cannot open to fsync: \(errnoText())") }
        defer { close(fd) }
        let path = partial.path
        let sync = Background { guard Glibc.fsync(fd) == 0 else { throw FileError(path: path, "fsync failed: \(errnoText())") } }
        let digest = Result { try SHA256.hex(ofDescriptor: fd, path: path) }
        try sync.wait()
        let hex = try digest.get()
        try renameIntoPlace(partial, final)
        return hex
    }

    /// Renames a complete file `from` over `to` (both in one file system) and fsyncs the destination folder.
    public static func move(_ from: URL, to: URL) throws {
        guard rename(from.path, to.path) == 0 else {
            throw FileError(path: to.path, "cannot move \(from.path) into place: \(errnoText())")
        }
        try fsync(path: to.deletingLastPathComponent().path, directory: true)
    }

    /// Renames the synced `partial` to `final` and fsyncs the folder, so that the rename survives a crash.
    private static func renameIntoPlace(_ partial: URL, _ final: URL) throws {
        guard rename(partial.path, final.path) == 0 else {
            throw FileError(path: final.path, "cannot rename \(partial.lastPathComponent) into place: \(errnoText())")
        }
        try fsync(path: final.deletingLastPathComponent().path, directory: true)
    }

    /// Opens `url` for writing, created or truncated (mode 0666 less the umask, as Foundation's writes).
    private static func create(_ url: URL) throws -> Int32 {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw FileError(path: url.path, "cannot write: \(errnoText())") }
        return fd
    }

    /// Writes every byte of `data` to `fd`: a short write continues, an interrupted one is retried, any other
    /// failure (a full disk, a quota, a file size limit) throws.
    private static func writeAll(_ data: Data, to fd: Int32, path: String) throws {
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw FileError(path: path, "cannot write: \(n < 0 ? errnoText() : "no progress")") }
                offset += n
            }
        }
    }

    private static func fsync(path: String, directory: Bool) throws {
        let fd = open(path, (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path: path, "cannot open to fsync: \(errnoText())") }
        defer { close(fd) }
        guard Glibc.fsync(fd) == 0 else { throw FileError(path: path, "fsync failed: \(errnoText())") }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
