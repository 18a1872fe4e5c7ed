import Foundation
import Core
import TestSupport
import XCTest

/// The cache's checksum equals the reference xxHash library's XXH64 (libxxhash through ctypes).
final class XXH64Tests: XCTestCase {
    func testEqualsLibxxhash() throws {
        let inputs: [[UInt8]] = [[], Array("a".utf8), Array("abcd".utf8), Array(0..<255) + Array(repeating: 7, count: 1000) + [1, 2, 3]]
        let ours = inputs.map { bytes in bytes.withUnsafeBytes { XXH64.hex($0) } }
        XCTAssertEqual(ours[0], "ef46db3751d8e999")
        let r = try Fixtures.python("""
        import ctypes, sys
        lib = ctypes.CDLL("libxxhash.so.0")
        lib.XXH64.restype = ctypes.c_uint64
        lib.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
        for b in [b"", b"a", b"abcd", bytes(range(255)) + bytes([7]) * 1000 + bytes([1, 2, 3])]:
            print("%016x" % lib.XXH64(b, len(b), 0))
        """)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").map(String.init), ours)
    }

    /// The streaming hash (the cache's file digests, read a block at a time) equals the one-shot hash of the whole,
    /// whatever the pieces: empty ones, ones shorter than a stripe, ones that end mid-stripe, one whole.
    func testStreamEqualsOneShot() {
        var generator = SplitMix64(seed: 20)
        for length in [0, 1, 7, 31, 32, 33, 63, 64, 65, 100, 1000, 4099] {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let expected = bytes.withUnsafeBytes { XXH64.hash($0) }
            for pieceSizes in [[length], [1], [3, 0, 5], [31, 1], [32], [33, 2], [7, 64, 13]] {
                var stream = XXH64.Stream()
                var offset = 0, k = 0
                while offset < length {
                    let size = min(pieceSizes[k % pieceSizes.count], length - offset)
                    bytes.withUnsafeBytes { stream.update(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + size)])) }
                    offset += size
                    k += 1
                    if k > 10 * length + 10 { break }
                }
                XCTAssertEqual(stream.digest(), expected, "length \(length), pieces \(pieceSizes)")
            }
        }
        XCTAssertEqual(XXH64.Stream().hex(), "ef46db3751d8e999")
    }
}
