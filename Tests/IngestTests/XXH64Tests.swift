import Foundation
import Shards
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
}
