import Foundation
import TestSupport
import XCTest

/// issue 20: a warm re-run reads no DICOM header of an unchanged file (`OUT/.headers.index`), and the cache stays
/// exact: whatever changed, the re-run's dataset is byte for byte a cold run's of the archive as it is now.
final class HeaderIndexTests: XCTestCase {
    // Set once by the class setUp before any test of the class runs; XCTest runs them one at a time.
    nonisolated(unsafe) static var root: URL!
    /// Four phantom studies; the archives of the tests hold the first three (the fourth is "added").
    nonisolated(unsafe) static var cohort: URL!
    static let common = ["--size", "32", "--workers", "2"]

    override class func setUp() {
        super.setUp()
        root = try! Fixtures.scratch("header-index")
        cohort = root.appendingPathComponent("cohort")
        let synth = try! Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "4", "--out", cohort.path, "--seed", "5",
                                                        "--sagittal-matrix", "48", "--axial-matrix", "40"])
        precondition(synth.status == 0, synth.stderr)
    }

    /// The cohort's study folders, sorted.
    static func studies(_ archive: URL) throws -> [URL] {
        let images = archive.appendingPathComponent("train_images")
        return try FileManager.default.contentsOfDirectory(atPath: images.path).sorted().map { images.appendingPathComponent($0) }
    }

    /// A copy of the cohort without its last study, every file last modified two hours ago (as in a real archive:
    /// a file modified within a second of a scan is read again by the next one, see `HeaderIndex`).
    func archive(_ name: String) throws -> URL {
        let copy = Self.root.appendingPathComponent(name)
        try FileManager.default.copyItem(at: Self.cohort, to: copy)
        try FileManager.default.removeItem(at: try Self.studies(copy).last!)
        try backdate(copy)
        return copy
    }

    func backdate(_ folder: URL, seconds: TimeInterval = 7200) throws {
        let fm = FileManager.default
        for case let rel as String in fm.enumerator(atPath: folder.path)! {
            let path = folder.appendingPathComponent(rel).path
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue {
                try fm.setAttributes([.modificationDate: Date().addingTimeInterval(-seconds)], ofItemAtPath: path)
            }
        }
    }

    func images(_ archive: URL) throws -> [URL] {
        try Self.studies(archive).flatMap { study in
            try FileManager.default.contentsOfDirectory(atPath: study.path).sorted().flatMap { series in
                try FileManager.default.contentsOfDirectory(atPath: study.appendingPathComponent(series).path).sorted()
                    .map { study.appendingPathComponent(series).appendingPathComponent($0) }
            }
        }
    }

    func ingest(_ archive: URL, _ out: URL, _ extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let run = try Fixtures.run(Fixtures.fuse3d, ["ingest", archive.path, "--out", out.path] + Self.common + extra)
        XCTAssertEqual(run.status, 0, run.stderr, file: file, line: line)
        XCTAssertFalse(run.stderr.contains("error"), run.stderr, file: file, line: line)
        return run.stdout
    }

    /// The dataset's files (shards, manifest, report, cache keys) by name.
    func dataset(_ out: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: out.path)
        where name.hasSuffix(".h5") || ["manifest.json", "ingest-report.json", ".cache-keys.json"].contains(name) {
            files[name] = try Data(contentsOf: out.appendingPathComponent(name))
        }
        XCTAssertGreaterThanOrEqual(files.count, 4)
        return files
    }

    /// The dataset `out` holds is the one a cold run (a new output folder, no index, no cache) makes of `archive`.
    func assertEqualsColdRun(_ archive: URL, _ out: URL, _ extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let cold = out.deletingLastPathComponent().appendingPathComponent(out.lastPathComponent + "-cold-\(UUID().uuidString.prefix(8))")
        let stdout = try ingest(archive, cold, extra, file: file, line: line)
        XCTAssertTrue(stdout.contains(", 0 from the index"), stdout, file: file, line: line)
        XCTAssertEqual(try dataset(out), try dataset(cold), "not the cold run's bytes", file: file, line: line)
        try FileManager.default.removeItem(at: cold)
    }

    /// Untouched archive: the warm run reads no header, fuses nothing, writes the same bytes (the cache keys made
    /// from the index's headers are the keys made from the files' own: `.cache-keys.json` is compared too).
    func testAnUntouchedArchiveReadsNoHeaderAndRecomputesNothing() throws {
        let archive = try archive("untouched")
        let files = try images(archive).count
        let out = Self.root.appendingPathComponent("untouched-out")
        let cold = try ingest(archive, out)
        XCTAssertTrue(cold.contains("(0 from the cache, 3 computed)"), cold)
        XCTAssertTrue(cold.contains("headers: \(files) read, 0 from the index"), cold)
        let before = try dataset(out)
        let warm = try ingest(archive, out)
        XCTAssertTrue(warm.contains("(3 from the cache, 0 computed)"), warm)
        XCTAssertTrue(warm.contains("headers: 0 read, \(files) from the index"), warm)
        XCTAssertEqual(try dataset(out), before)
        let overwrite = try ingest(archive, out, ["--overwrite"])
        XCTAssertTrue(overwrite.contains("(0 from the cache, 3 computed)"), overwrite)
        XCTAssertTrue(overwrite.contains("headers: \(files) read, 0 from the index"), overwrite)
        XCTAssertEqual(try dataset(out), before)
    }

    /// A touched file (new mtime, same bytes): its header alone is read again, its study comes from the cache
    /// (the cache digests it and finds it unchanged).
    func testATouchedButUnchangedFileIsReadAgainButNothingIsRefused() throws {
        let archive = try archive("touched")
        let files = try images(archive)
        let out = Self.root.appendingPathComponent("touched-out")
        _ = try ingest(archive, out)
        let before = try dataset(out)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-3600)], ofItemAtPath: files[5].path)
        let warm = try ingest(archive, out)
        XCTAssertTrue(warm.contains("(3 from the cache, 0 computed)"), warm)
        XCTAssertTrue(warm.contains("headers: 1 read, \(files.count - 1) from the index"), warm)
        XCTAssertEqual(try dataset(out), before)
    }

    /// A changed file (new pixel bytes, same size, new mtime), an added and a removed study, another parameter:
    /// each re-run reads the headers of what changed only, fuses what it touches only, and equals a cold run.
    func testEachKindOfChangeRecomputesExactlyWhatItTouches() throws {
        let archive = try archive("changes")
        let out = Self.root.appendingPathComponent("changes-out")
        let files = try images(archive)
        _ = try ingest(archive, out)
        let before = try dataset(out)

        // A changed file: the last two bytes of pixel data of an uncompressed image, mtime an hour ago (not two).
        var bytes = try Data(contentsOf: files[3])
        bytes[bytes.count - 1] ^= 0x5A
        bytes[bytes.count - 2] ^= 0x3C
        try bytes.write(to: files[3])
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-3600)], ofItemAtPath: files[3].path)
        let changed = try ingest(archive, out)
        XCTAssertTrue(changed.contains("(2 from the cache, 1 computed)"), changed)
        XCTAssertFalse(changed.contains("dataset unchanged"), changed)
        XCTAssertTrue(changed.contains("1 cache entr(ies) corrupt or stale, recomputed"), changed)
        XCTAssertTrue(changed.contains("headers: 1 read, \(files.count - 1) from the index"), changed)
        XCTAssertNotEqual(try dataset(out)["shard-00000.h5"], before["shard-00000.h5"])
        try assertEqualsColdRun(archive, out)

        // An added study (copied with its old mtimes): only its files are read, only it is fused.
        let added = try Self.studies(Self.cohort).last!
        let copy = try Fixtures.run(URL(fileURLWithPath: "/bin/cp"), ["-a", added.path, archive.appendingPathComponent("train_images").path])
        XCTAssertEqual(copy.status, 0, copy.stderr)
        try backdate(archive.appendingPathComponent("train_images").appendingPathComponent(added.lastPathComponent))
        let addedFiles = try images(archive).count - files.count
        XCTAssertGreaterThan(addedFiles, 10)
        let grown = try ingest(archive, out)
        XCTAssertTrue(grown.contains("(3 from the cache, 1 computed)"), grown)
        XCTAssertTrue(grown.contains("headers: \(addedFiles) read, \(files.count) from the index"), grown)
        try assertEqualsColdRun(archive, out)

        // A removed study: nothing read, nothing fused.
        let removed = try Self.studies(archive).first!
        let removedFiles = try images(archive).filter { $0.path.hasPrefix(removed.path + "/") }.count
        try FileManager.default.removeItem(at: removed)
        let shrunk = try ingest(archive, out)
        XCTAssertTrue(shrunk.contains("(3 from the cache, 0 computed)"), shrunk)
        XCTAssertTrue(shrunk.contains("headers: 0 read, \(files.count + addedFiles - removedFiles) from the index"), shrunk)
        try assertEqualsColdRun(archive, out)

        // Another parameter: every study fused again, yet no header read (headers do not depend on it).
        let resized = try ingest(archive, out, ["--size", "24"])
        XCTAssertTrue(resized.contains("(0 from the cache, 3 computed)"), resized)
        XCTAssertTrue(resized.contains("headers: 0 read"), resized)
        try assertEqualsColdRun(archive, out, ["--size", "24"])
    }

    /// A damaged, truncated or other-version index is ignored without an error: every header is read, the
    /// dataset is the same, and the index is rewritten (the run after reads none).
    func testACorruptIndexIsIgnoredAndRebuilt() throws {
        let archive = try archive("corrupt")
        let files = try images(archive).count
        let out = Self.root.appendingPathComponent("corrupt-out")
        _ = try ingest(archive, out)
        let before = try dataset(out)
        let index = out.appendingPathComponent(".headers.index")
        let good = try Data(contentsOf: index)
        var flipped = good
        flipped[good.count / 2] ^= 0x01
        let otherVersion = Data("F3DHEADERS9\n".utf8) + good.dropFirst("F3DHEADERS3\n".count)
        for damaged in [flipped, good.prefix(good.count / 3), Data("garbage".utf8), otherVersion] {
            try damaged.write(to: index)
            let run = try ingest(archive, out)
            XCTAssertTrue(run.contains("(3 from the cache, 0 computed)"), run)
            XCTAssertTrue(run.contains("headers: \(files) read, 0 from the index"), run)
            XCTAssertEqual(try dataset(out), before)
        }
        let rebuilt = try ingest(archive, out)
        XCTAssertTrue(rebuilt.contains("headers: 0 read, \(files) from the index"), rebuilt)
    }
    /// Size, modification time and inode of each shard and the manifest: unchanged means the file was left in place.
    func identities(_ out: URL) throws -> [String: String] {
        var ids: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: out.path) where name.hasSuffix(".h5") || name == "manifest.json" {
            let a = try FileManager.default.attributesOfItem(atPath: out.appendingPathComponent(name).path)
            ids[name] = "\(a[.size]!) \((a[.modificationDate] as! Date).timeIntervalSince1970) \(a[.systemFileNumber]!)"
        }
        return ids
    }

    /// An unchanged archive and options: the re-run leaves the shards and the manifest as they are (same inode and
    /// mtime) and says so; the dataset is the cold run's. Each way the files on disk may have changed since — a shard
    /// rewritten, deleted, a manifest touched or deleted, a stray partial shard, another shard layout — is an ordinary
    /// run, which writes the cold run's bytes again.
    func testAnUnchangedDatasetIsLeftInPlaceUnlessItsFilesChanged() throws {
        let archive = try archive("kept")
        let out = Self.root.appendingPathComponent("kept-out")
        let cold = try ingest(archive, out)
        XCTAssertFalse(cold.contains("dataset unchanged"), cold)
        let before = try dataset(out)
        let ids = try identities(out)
        let warm = try ingest(archive, out)
        XCTAssertTrue(warm.contains("(3 from the cache, 0 computed)"), warm)
        XCTAssertTrue(warm.contains("dataset unchanged: shards and manifest left as they are"), warm)
        XCTAssertEqual(try identities(out), ids)
        XCTAssertEqual(try dataset(out), before)

        let shard = out.appendingPathComponent("shard-00000.h5")
        let manifest = out.appendingPathComponent("manifest.json")
        let damage: [(String, () throws -> Void)] = [
            ("a shard's bytes changed", {
                var bytes = try Data(contentsOf: shard)
                bytes[bytes.count / 2] ^= 0x01
                try bytes.write(to: shard)
            }),
            ("a shard deleted", { try FileManager.default.removeItem(at: shard) }),
            ("the manifest touched", {
                try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-60)], ofItemAtPath: manifest.path)
            }),
            ("the manifest deleted", { try FileManager.default.removeItem(at: manifest) }),
            ("the state file deleted", { try FileManager.default.removeItem(at: out.appendingPathComponent(".ingest-state.json")) }),
            ("a stray partial shard", { try Data("x".utf8).write(to: out.appendingPathComponent("shard-00001.h5.partial")) }),
        ]
        for (what, change) in damage {
            try change()
            let run = try ingest(archive, out)
            XCTAssertTrue(run.contains("(3 from the cache, 0 computed)"), "\(what): \(run)")
            XCTAssertFalse(run.contains("dataset unchanged"), "\(what): \(run)")
            XCTAssertEqual(try dataset(out), before, what)
            XCTAssertTrue(try ingest(archive, out).contains("dataset unchanged"), "\(what): the run after keeps the dataset again")
        }

        // Another shard layout (one sample per shard): the keys are the same, the shards are not.
        let split = try ingest(archive, out, ["--samples-per-shard", "1"])
        XCTAssertFalse(split.contains("dataset unchanged"), split)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".h5") }.count, 3)
        try assertEqualsColdRun(archive, out, ["--samples-per-shard", "1"])
        XCTAssertTrue(try ingest(archive, out, ["--samples-per-shard", "1"]).contains("dataset unchanged"))
        let joined = try ingest(archive, out)
        XCTAssertFalse(joined.contains("dataset unchanged"), joined)
        XCTAssertEqual(try dataset(out), before)
    }
    /// A kept dataset reads each cache entry's header only (its own checksum checked): a damaged chunk in an entry
    /// changes nothing while the shards are kept, and is found (and its study recomputed) by the first run that
    /// needs the chunks; a damaged header is found at once.
    func testAKeptDatasetChecksEntryHeadersAndLaterRunsTheChunks() throws {
        let archive = try archive("entries")
        let out = Self.root.appendingPathComponent("entries-out")
        _ = try ingest(archive, out)
        let before = try dataset(out)
        let cache = out.appendingPathComponent(".cache")
        let entries = try XCTUnwrap(FileManager.default.enumerator(atPath: cache.path)?.compactMap { $0 as? String }
            .filter { $0.hasSuffix(".entry") }.sorted()).map { cache.appendingPathComponent($0) }
        XCTAssertEqual(entries.count, 3)
        var bytes = try Data(contentsOf: entries[0])
        bytes[bytes.count - 100] ^= 0x01  // in the last chunk
        try bytes.write(to: entries[0])
        let kept = try ingest(archive, out)
        XCTAssertTrue(kept.contains("dataset unchanged"), kept)
        XCTAssertEqual(try dataset(out), before)
        try FileManager.default.removeItem(at: out.appendingPathComponent("shard-00000.h5"))
        let rewritten = try ingest(archive, out)
        XCTAssertTrue(rewritten.contains("(2 from the cache, 1 computed)"), rewritten)
        XCTAssertTrue(rewritten.contains("1 cache entr(ies) corrupt or stale, recomputed"), rewritten)
        XCTAssertEqual(try dataset(out), before)

        var header = try Data(contentsOf: entries[1])
        header[40] ^= 0x01  // in the header's JSON
        try header.write(to: entries[1])
        let damaged = try ingest(archive, out)
        XCTAssertFalse(damaged.contains("dataset unchanged"), damaged)
        XCTAssertTrue(damaged.contains("1 cache entr(ies) corrupt or stale, recomputed"), damaged)
        XCTAssertEqual(try dataset(out), before)
    }
}
