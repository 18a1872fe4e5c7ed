import Foundation
import TestSupport
import XCTest
@testable import Train

/// The report's localizer pictures belong to the run folder: written through it, removed by `clear()` (`--overwrite`).
final class RunFolderPictureTests: XCTestCase {
    func testTheLocalizerPicturesAreTheRunsOwnFiles() throws {
        let dir = try Fixtures.scratch("run-folder-pictures")
        let run = RunFolder(dir)
        try run.save(localizerPicture: Data([0x89, 0x50, 0x4E, 0x47]), fold: 0)
        try run.save(localizerPicture: Data([1]), fold: 3)
        XCTAssertEqual(run.localizerPictureURL(fold: 3).lastPathComponent, "localizer-fold-3.png")
        XCTAssertEqual(try Data(contentsOf: run.localizerPictureURL(fold: 0)), Data([0x89, 0x50, 0x4E, 0x47]))
        // A file of the user's that only looks alike stays.
        for name in ["localizer-fold-x.png", "localizer-fold-1.png.bak", "notes.txt"] {
            try Data("mine".utf8).write(to: dir.appendingPathComponent(name))
        }
        try run.clear()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(),
                       ["localizer-fold-1.png.bak", "localizer-fold-x.png", "notes.txt"])
    }
}
