import Core
import Foundation
@testable import Ingest
import TestSupport
import XCTest

/// The "racy" rule of the header index and the study cache (git's): a file whose mtime is less than a second before
/// the scan (or the cache entry) that recorded it may have been rewritten within the file system's timestamp
/// granularity after it was stat'ed, keeping its stat, so its stat is not trusted: it is read (or digested) again.
/// Every archive the other tests ingest is backdated, so only these tests fail when the rule is removed.
final class RacyStatTests: XCTestCase {
    private let second: Int64 = 1_000_000_000

    func testTheHeaderIndexTrustsAStatOnlyWhenTheFileIsOverASecondOlderThanTheScan() throws {
        let path = Fixtures.dicom("MR_small.dcm").path
        let stat = try XCTUnwrap(FileIdentity(path: path))
        let m = stat.mtimeNanoseconds
        var index = HeaderIndex(root: "/archive", scannedAt: m)
        index.entries["a.dcm"] = HeaderIndex.Entry(stat: stat, header: HeaderSummary(try DicomReader.readHeader(path)))
        // Modified 0, 0.4 s and exactly 1 s before the scan began: read again.
        for before in [0, 400_000_000, second] {
            index.scannedAt = m + before
            XCTAssertNil(index.trusted("a.dcm", stat: stat), "a file modified \(Double(before) / 1e9) s before the scan is read again")
        }
        // Over a second before: its entry is used as long as the stat matches.
        index.scannedAt = m + second + 1
        XCTAssertNotNil(index.trusted("a.dcm", stat: stat))
        var touched = stat
        touched.mtimeNanoseconds += 1
        XCTAssertNil(index.trusted("a.dcm", stat: touched))
        // The rule survives the index's round trip through its file (scannedAt is saved).
        index.scannedAt = m + 300_000_000
        let url = try Fixtures.scratch("racy-index").appendingPathComponent(HeaderIndex.fileName)
        let writer = try HeaderIndex.FileWriter(url: url, root: "/archive", scannedAt: index.scannedAt)
        try writer.append(index.entries.map { (path: $0.key, entry: $0.value) })
        try writer.commit()
        let loaded = try XCTUnwrap(HeaderIndex.load(from: url, root: "/archive"))
        XCTAssertEqual(loaded.scannedAt, index.scannedAt)
        XCTAssertNil(loaded.trusted("a.dcm", stat: stat))
    }

    /// A file rewritten in place keeping its size, mtime and inode after the cache entry digested it: within a
    /// second of the entry it is digested again and the change is seen; later the stat is trusted (what no stat can
    /// see, as the cache's documentation says).
    func testTheCacheDigestsAFileModifiedWithinASecondOfItsEntry() throws {
        let root = try Fixtures.scratch("racy-cache")
        let file = root.appendingPathComponent("a.dcm")
        try Data("the bytes digested".utf8).write(to: file)
        let recorded = try StudyCache.digest(file)
        // Rewritten with the same size, then its mtime put back: the stat is the one recorded.
        let before = StudyCache.stamp(path: "a.dcm", root: root.path)
        try Data("THE BYTES DIGESTED".utf8).write(to: file)
        var times = [timespec(tv_sec: Int(before.identity.mtimeNanoseconds / second), tv_nsec: Int(before.identity.mtimeNanoseconds % second)),
                     timespec(tv_sec: Int(before.identity.mtimeNanoseconds / second), tv_nsec: Int(before.identity.mtimeNanoseconds % second))]
        XCTAssertEqual(utimensat(AT_FDCWD, file.path, &times, 0), 0)
        let now = StudyCache.stamp(path: "a.dcm", root: root.path)
        XCTAssertEqual(now, before, "same size, mtime and inode")
        XCTAssertNotEqual(try StudyCache.digest(file), recorded)
        var stamp = before
        stamp.xxh64 = recorded
        let key = StudyCache.StudyKey(hex: String(repeating: "0", count: 64), files: [now])
        let m = now.identity.mtimeNanoseconds
        for made in [m, m + 500_000_000, m + second] {
            XCTAssertEqual(StudyCache.staleFile(key, stamps: [stamp], madeAt: made, root: root.path), "a.dcm: content changed",
                           "an entry made \(Double(made - m) / 1e9) s after the file's mtime digests it again")
        }
        XCTAssertNil(StudyCache.staleFile(key, stamps: [stamp], madeAt: m + second + 1, root: root.path))
        // With the file as digested, the racy check passes.
        stamp.xxh64 = try StudyCache.digest(file)
        XCTAssertNil(StudyCache.staleFile(key, stamps: [stamp], madeAt: m, root: root.path))
    }
}
