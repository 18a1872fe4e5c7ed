import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reading a whole file through one small buffer, for the hashes of files (the shard's SHA-256, the cache's input
/// digests): `pread` a block at a time into a buffer that stays in the core's cache between the read and the hash.
/// Neither maps the file (each `munmap` made the kernel interrupt the other core to flush its TLB while two workers
/// ran) nor goes through Foundation's `FileHandle.read(upToCount:)`, which reads 4 KiB a call into growing `Data`s
/// (issue 20).
public enum FileBlocks {
    /// Hands the open file `fd`, from its first byte to its end, to `body` in blocks of at most `blockSize` bytes. A
    /// read error throws `FileError(path:, "<failure>: <reason>")`.
    public static func forEach(of fd: Int32, blockSize: Int, path: String, failure: String,
                               _ body: (UnsafeRawBufferPointer) -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: blockSize, alignment: 64)
        defer { buffer.deallocate() }
        var offset: off_t = 0
        while true {
            let n = pread(fd, buffer.baseAddress, blockSize, offset)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw FileError(path: path, "\(failure): \(String(cString: strerror(errno)))") }
            if n == 0 { return }
            body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            offset += off_t(n)
        }
    }
}
