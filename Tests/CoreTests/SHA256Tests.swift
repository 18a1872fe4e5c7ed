import Foundation
@testable import Core
import TestSupport
import XCTest

final class SHA256Tests: XCTestCase {
    func testFIPSVectors() {
        XCTAssertEqual(SHA256.hex(of: Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(of: Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(of: Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    func testStreamingInOddPiecesMatchesPythonHashlib() throws {
        let bytes = Data((0..<200_003).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) })
        var hash = SHA256()
        var offset = 0
        for piece in [1, 63, 64, 65, 1000, 4096] + [Int](repeating: 50_000, count: 4) where offset < bytes.count {
            let end = min(bytes.count, offset + piece)
            hash.update(bytes[offset..<end])
            offset = end
        }
        hash.update(bytes[offset...])
        let url = try Fixtures.scratch().appendingPathComponent("blob")
        try bytes.write(to: url)
        let python = try Fixtures.python("import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())", [url.path])
        XCTAssertEqual(python.status, 0, python.stderr)
        let expected = python.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(hash.finalizeHex(), expected)
        XCTAssertEqual(try SHA256.hex(ofFile: url), expected)
    }

    /// The SHA-NI compression (where the CPU has it) and the portable one give the same digests, whole and streamed.
    func testHardwareAndPortableCompressionAgree() {
        for count in [0, 3, 55, 56, 64, 65, 1000, 100_003] {
            let bytes = Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 5) })
            var fast = SHA256()
            var slow = SHA256()
            slow.portable = true
            fast.update(bytes)
            slow.update(bytes)
            XCTAssertEqual(fast.finalizeHex(), slow.finalizeHex(), "\(count) bytes")
        }
        var slow = SHA256()
        slow.portable = true
        slow.update(Data("abc".utf8))
        XCTAssertEqual(slow.finalizeHex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
