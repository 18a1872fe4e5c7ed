import Foundation
import TestSupport
import XCTest

/// Cache entries no dataset uses are removed, with the space freed reported: by the ingest itself after a
/// full run with the folder's own cache, by `fuse3d cache prune --keep` for a shared one.
final class CachePruneTests: XCTestCase {
    // Set once by the class setUp before any test of the class runs; XCTest runs them one at a time.
    nonisolated(unsafe) static var root: URL!
    nonisolated(unsafe) static var cohort: URL!
    static let common = ["--size", "24", "--workers", "1"]

    override class func setUp() {
        super.setUp()
        root = try! Fixtures.scratch("cache-prune")
        cohort = root.appendingPathComponent("cohort")
        let synth = try! Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "3", "--out", cohort.path, "--seed", "9",
                                                        "--sagittal-matrix", "64", "--axial-matrix", "48"])
        precondition(synth.status == 0, synth.stderr)
    }

    func entries(_ cache: URL) -> [String] {
        (FileManager.default.enumerator(atPath: cache.path)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".entry") } ?? []).sorted()
    }

    func copyCohort(_ name: String) throws -> URL {
        let copy = Self.root.appendingPathComponent(name)
        try FileManager.default.copyItem(at: Self.cohort, to: copy)
        return copy
    }

    func removeFirstStudy(_ archive: URL) throws {
        let images = archive.appendingPathComponent("train_images")
        let first = try FileManager.default.contentsOfDirectory(atPath: images.path).sorted()[0]
        try FileManager.default.removeItem(at: images.appendingPathComponent(first))
    }

    /// A study removed from the archive: its entry leaves the folder's own cache after the next full run, the
    /// others stay (the run after that is all cache hits); a partitioned run prunes nothing.
    func testAFullRunPrunesItsOwnCacheOfStudiesNoLongerInTheArchive() throws {
        let archive = try copyCohort("own")
        let out = Self.root.appendingPathComponent("own-out")
        XCTAssertEqual(try Fixtures.run(Fixtures.fuse3d, ["ingest", archive.path, "--out", out.path] + Self.common).status, 0)
        let cache = out.appendingPathComponent(".cache")
        let before = entries(cache)
        XCTAssertEqual(before.count, 3)
        var bytes: [String: Int] = [:]
        for name in before { bytes[name] = try FileManager.default.attributesOfItem(atPath: cache.appendingPathComponent(name).path)[.size] as? Int }

        try removeFirstStudy(archive)
        let part = try Fixtures.run(Fixtures.fuse3d, ["ingest", archive.path, "--out", out.path, "--partition", "0/1"] + Self.common)
        XCTAssertEqual(part.status, 0, part.stderr)
        XCTAssertFalse(part.stdout.contains("pruned"), part.stdout)
        XCTAssertEqual(entries(cache).count, 3)

        let full = try Fixtures.run(Fixtures.fuse3d, ["ingest", archive.path, "--out", out.path] + Self.common)
        XCTAssertEqual(full.status, 0, full.stderr)
        XCTAssertTrue(full.stdout.contains("(2 from the cache, 0 computed)"), full.stdout)
        let after = entries(cache)
        XCTAssertEqual(after.count, 2)
        let gone = try XCTUnwrap(Set(before).subtracting(after).first)
        let freed = try XCTUnwrap(bytes[gone])
        XCTAssertGreaterThan(freed, 1000)
        XCTAssertTrue(full.stdout.contains(String(format: "cache: 1 entr(ies) no longer used pruned, %.1f MB freed", Double(freed) / 1_000_000)),
                      full.stdout)
        let keys = try JSONDecoder().decode([String].self, from: Data(contentsOf: out.appendingPathComponent(".cache-keys.json")))
        XCTAssertEqual(Set(keys), Set(after.map { String($0.split(separator: "/")[1].dropLast(".entry".count)) }))
        let warm = try Fixtures.run(Fixtures.fuse3d, ["ingest", archive.path, "--out", out.path] + Self.common)
        XCTAssertTrue(warm.stdout.contains("(2 from the cache, 0 computed)"), warm.stdout)
        XCTAssertFalse(warm.stdout.contains("pruned"), warm.stdout)
    }

    /// A shared cache is never pruned by an ingest; `cache prune` keeps what any --keep output uses.
    func testASharedCacheIsPrunedOnlyByTheCommandKeepingEveryNamedOutput() throws {
        let archive = try copyCohort("shared")
        let cache = Self.root.appendingPathComponent("shared-cache")
        let a = Self.root.appendingPathComponent("shared-a"), b = Self.root.appendingPathComponent("shared-b")
        XCTAssertEqual(try Fixtures.run(Fixtures.fuse3d, ["ingest", archive.path, "--out", a.path, "--cache", cache.path] + Self.common).status, 0)
        try removeFirstStudy(archive)
        let rb = try Fixtures.run(Fixtures.fuse3d, ["ingest", archive.path, "--out", b.path, "--cache", cache.path] + Self.common)
        XCTAssertTrue(rb.stdout.contains("(2 from the cache, 0 computed)"), rb.stdout)
        XCTAssertEqual(entries(cache).count, 3)

        let both = try Fixtures.run(Fixtures.fuse3d, ["cache", "prune", cache.path, "--keep", a.path, "--keep", b.path])
        XCTAssertEqual(both.status, 0, both.stderr)
        XCTAssertTrue(both.stdout.contains("0 entr(ies) pruned, 0.0 MB freed; 3 kept"), both.stdout)
        let onlyB = try Fixtures.run(Fixtures.fuse3d, ["cache", "prune", cache.path, "--keep", b.path])
        XCTAssertTrue(onlyB.stdout.contains("1 entr(ies) pruned"), onlyB.stdout)
        XCTAssertTrue(onlyB.stdout.contains("; 2 kept"), onlyB.stdout)
        XCTAssertEqual(entries(cache).count, 2)
        let notADataset = try Fixtures.run(Fixtures.fuse3d, ["cache", "prune", cache.path, "--keep", archive.path])
        XCTAssertNotEqual(notADataset.status, 0)
        XCTAssertTrue(notADataset.stderr.contains(".cache-keys.json: missing: not the output of a finished fuse3d ingest"), notADataset.stderr)
        XCTAssertEqual(entries(cache).count, 2)
    }
}
