import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Size, modification time (ns) and inode of a file, from one `stat`: unchanged means nobody replaced or rewrote
/// it (short of `touch -r` after an in-place rewrite). The one definition the header index, the study cache, the
/// dataset's state, the shard writer's fingerprints and the decoders' quarantine compare.
public struct FileIdentity: Codable, Hashable, Sendable {
    /// Bytes.
    public var size: Int64
    /// The modification time in nanoseconds since 1970, exactly as the file system keeps it.
    public var mtimeNanoseconds: Int64
    /// The inode number.
    public var inode: UInt64

    /// An identity as a record holds it.
    public init(size: Int64, mtimeNanoseconds: Int64, inode: UInt64) {
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
        self.inode = inode
    }

    /// The identity of the file at `path` (links followed); nil when it cannot be stat'ed.
    public init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        size = Int64(st.st_size)
        mtimeNanoseconds = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        inode = UInt64(st.st_ino)
    }

    /// The identity of the file at `url`; nil when it cannot be stat'ed.
    public init?(_ url: URL) { self.init(path: url.path) }

    /// Whether the file was modified less than a second before `instant` (ns since 1970) or after it: then a
    /// rewrite within the file system's timestamp granularity may have kept this mtime (the "racy" case git guards
    /// against), and a record made at `instant` cannot vouch for the content by its identity alone.
    public func isRacy(recordedAt instant: Int64) -> Bool { mtimeNanoseconds >= instant - 1_000_000_000 }

    /// The time now in nanoseconds since 1970 (the clock that `mtimeNanoseconds` and `isRacy` use).
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
