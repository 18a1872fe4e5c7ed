import Core
import Foundation
@testable import Ingest
import Shards
import TestSupport
import XCTest

/// The study cache's stamps, the dataset state's manifest stat and a fresh `FileIdentity` are one value for one file
/// (issue 28: four hand-written stats, one of them rounded through a Date).
final class FileIdentityAgreementTests: XCTestCase {
    func testTheCacheAndTheDatasetStateRecordTheFilesIdentityExactly() throws {
        let dir = try Fixtures.scratch("identity-agreement")
        let manifest = dir.appendingPathComponent(Manifest.fileName)
        try Data("{}".utf8).write(to: manifest)
        var times = [timespec(tv_sec: 1_700_000_000, tv_nsec: 987_654_321), timespec(tv_sec: 1_700_000_000, tv_nsec: 987_654_321)]
        XCTAssertEqual(utimensat(AT_FDCWD, manifest.path, &times, 0), 0)
        let identity = try XCTUnwrap(FileIdentity(manifest))
        XCTAssertEqual(identity.mtimeNanoseconds, 1_700_000_000_987_654_321)

        XCTAssertEqual(StudyCache.stamp(path: Manifest.fileName, root: dir.path).identity, identity)
        XCTAssertEqual(StudyCache.stamp(path: "absent.dcm", root: dir.path).identity.size, -1)

        try UnchangedDataset.record(signature: "s", in: dir)
        let state = try JSONDecoder().decode(UnchangedDataset.State.self,
                                              from: Data(contentsOf: dir.appendingPathComponent(UnchangedDataset.fileName)))
        XCTAssertEqual(state.manifest, identity)
    }
}
