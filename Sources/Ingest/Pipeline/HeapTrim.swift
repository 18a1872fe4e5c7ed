import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Hands the heap's free pages back to the system (glibc's `malloc_trim`), so that a long run's resident memory follows
/// what it holds, not what it once held. Each study's decoded results and report are allocated on one thread and freed
/// on another; glibc keeps such freed pages in their arenas, and the resident set grew with the studies (at
/// 400 small studies heaptrack saw a live heap peak of 21 MB in a resident set of 88 MB; trimming every 16 studies took the
/// resident peak at 1,000 studies from 162 to 117 MB). Glibc's module map has no malloc.h, so the function is found at run
/// time; where there is none (another libc) this is a no-op.
enum HeapTrim {
    private typealias Trim = @convention(c) (Int) -> Int32
    private static let trim: Trim? = dlsym(nil, "malloc_trim").map { unsafeBitCast($0, to: Trim.self) }

    /// Returns the free pages of every arena to the system (a few milliseconds; ingest calls it every 16 studies).
    static func returnFreePages() { _ = trim?(0) }
}
