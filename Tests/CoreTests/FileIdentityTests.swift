import Core
import Foundation
import TestSupport
import XCTest

final class FileIdentityTests: XCTestCase {
    /// The identity keeps the file system's nanoseconds (a Date round trip would not) and sees a rewrite.
    func testTheIdentityIsTheStatToTheNanosecond() throws {
        let url = try Fixtures.scratch("identity").appendingPathComponent("a.dcm")
        try Data("twelve bytes".utf8).write(to: url)
        try FileIdentityTests.setModified(url, seconds: 1_700_000_000, nanoseconds: 123_456_789)
        let identity = try XCTUnwrap(FileIdentity(url))
        XCTAssertEqual(identity.size, 12)
        XCTAssertEqual(identity.mtimeNanoseconds, 1_700_000_000_123_456_789)
        XCTAssertEqual(FileIdentity(path: url.path), identity)
        XCTAssertNil(FileIdentity(path: url.path + ".missing"))
        XCTAssertTrue(identity.isRacy(recordedAt: 1_700_000_001_123_456_789), "modified exactly a second before")
        XCTAssertFalse(identity.isRacy(recordedAt: 1_700_000_001_123_456_790))
        try Data("twelve BYTES".utf8).write(to: url)
        XCTAssertNotEqual(FileIdentity(url), identity, "a rewrite moves the mtime")
    }

    /// Sets `url`'s access and modification times.
    static func setModified(_ url: URL, seconds: Int, nanoseconds: Int) throws {
        var times = [timespec(tv_sec: seconds, tv_nsec: nanoseconds), timespec(tv_sec: seconds, tv_nsec: nanoseconds)]
        guard utimensat(AT_FDCWD, url.path, &times, 0) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }
}
