@testable import Core
import Foundation
import TestSupport
import XCTest

/// The one atomic writer: a file is replaced whole or not at all, and no temporary file outlives a write.
final class AtomicFileTests: XCTestCase {
    private func names(_ dir: URL) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() }

    func testAWriteReplacesTheFileWholeAndLeavesNoTemporaryFile() throws {
        let dir = try Fixtures.scratch("atomic-write")
        let url = dir.appendingPathComponent("record.json")
        try AtomicFile.write(Data("old contents".utf8), to: url)
        try AtomicFile.write(Data("new".utf8), to: url)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "new")
        XCTAssertEqual(try names(dir), ["record.json"])
        // Through a name of the caller's (the study cache's, unique per process), then an empty file.
        try AtomicFile.write(Data("third".utf8), to: url, temporary: dir.appendingPathComponent(".record.1234.tmp"))
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "third")
        try AtomicFile.write(Data(), to: url)
        XCTAssertEqual(try Data(contentsOf: url).count, 0)
        XCTAssertEqual(try names(dir), ["record.json"])
    }

    /// A write that fails half way (here the process's file size limit, as a full disk or a quota would) throws,
    /// removes its temporary file and leaves the earlier file as it was.
    func testAFailedWriteLeavesTheEarlierFileAndNoPartialFile() throws {
        let dir = try Fixtures.scratch("atomic-write-fails")
        let url = dir.appendingPathComponent("weights.bin")
        try AtomicFile.write(Data("the earlier file".utf8), to: url)
        var limit = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit), 0)
        let previousHandler = signal(SIGXFSZ, SIG_IGN)
        var small = limit
        small.rlim_cur = 4096
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &small), 0)
        let failure = Result { try AtomicFile.write(Data(repeating: 7, count: 64 << 10), to: url) }
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit), 0)
        signal(SIGXFSZ, previousHandler)
        XCTAssertThrowsError(try failure.get()) { error in
            XCTAssertEqual((error as? FileError)?.path, AtomicFile.partial(for: url).path)
            XCTAssertEqual((error as? FileError)?.message, "cannot write: File too large")
        }
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "the earlier file")
        XCTAssertEqual(try names(dir), ["weights.bin"], "no partial file is left")
    }

    /// A rename that fails (the name is a folder) removes the synced temporary file and leaves the folder alone.
    func testAFailedRenameRemovesTheTemporaryFile() throws {
        let dir = try Fixtures.scratch("atomic-rename-fails")
        let url = dir.appendingPathComponent("summary.json")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("inside"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try AtomicFile.write(Data("{}".utf8), to: url)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(url.path): cannot rename summary.json.partial into place: "), "\(error)")
        }
        XCTAssertEqual(try names(dir), ["summary.json"])
        XCTAssertEqual(try names(url), ["inside"])
    }

    /// A file a library writes to a path (libpng, GDCM) is committed the same way; a body that throws leaves nothing.
    func testAFileWrittenByABodyIsCommittedOrLeftOut() throws {
        let dir = try Fixtures.scratch("atomic-body")
        let url = dir.appendingPathComponent("picture.png")
        try AtomicFile.write(to: url) { partial in
            XCTAssertEqual(partial.lastPathComponent, "picture.png.partial")
            try Data([1, 2, 3]).write(to: partial)
        }
        XCTAssertEqual(try Data(contentsOf: url), Data([1, 2, 3]))
        struct Refused: Error {}
        XCTAssertThrowsError(try AtomicFile.write(to: url) { partial in
            try Data([9]).write(to: partial)
            throw Refused()
        })
        XCTAssertEqual(try Data(contentsOf: url), Data([1, 2, 3]))
        XCTAssertEqual(try names(dir), ["picture.png"])
    }

    /// The first half (the study cache's store) writes every byte without renaming; `commit` puts it in place.
    func testAnUnsyncedWriteIsCommittedLater() throws {
        let dir = try Fixtures.scratch("atomic-two-halves")
        let temporary = dir.appendingPathComponent(".entry.42.tmp"), url = dir.appendingPathComponent("entry")
        try AtomicFile.writeUnsynced(Data("entry bytes".utf8), to: temporary)
        XCTAssertEqual(try names(dir), [".entry.42.tmp"])
        try AtomicFile.commit(temporary, to: url)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "entry bytes")
        XCTAssertEqual(try names(dir), ["entry"])
    }
}
