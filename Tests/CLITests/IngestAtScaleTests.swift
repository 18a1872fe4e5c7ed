import Foundation
import TestSupport
import XCTest

/// `fuse3d ingest` as archives are really converted: parallel workers, incremental re-runs through the
/// study cache, resume after kill -9, partitions joined by `fuse3d merge`. Every comparison is of bytes
/// (or, across a merge, of sample arrays) against one uninterrupted single-worker run.
final class IngestAtScaleTests: XCTestCase {
    // Set once by the class setUp before any test of the class runs; XCTest runs them one at a time.
    nonisolated(unsafe) static var root: URL!
    nonisolated(unsafe) static var cohort: URL!
    /// The reference: a cold run of the whole cohort with one worker.
    nonisolated(unsafe) static var reference: URL!
    static let common = ["--size", "32", "--samples-per-shard", "3"]

    override class func setUp() {
        super.setUp()
        root = try! Fixtures.scratch("scale")
        cohort = root.appendingPathComponent("cohort")
        reference = root.appendingPathComponent("reference")
        let synth = try! Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "4", "--out", cohort.path, "--seed", "5",
                                                        "--sagittal-matrix", "64", "--axial-matrix", "48"])
        precondition(synth.status == 0, synth.stderr)
        let r = try! ingest(cohort, reference, ["--workers", "1"])
        precondition(r.status == 0, r.stderr + r.stdout)
    }

    @discardableResult
    static func ingest(_ archive: URL, _ out: URL, _ extra: [String] = [], environment: [String: String]? = nil) throws
        -> (status: Int32, stdout: String, stderr: String) {
        try Fixtures.run(Fixtures.fuse3d, ["ingest", archive.path, "--out", out.path] + common + extra, environment: environment)
    }

    /// The dataset's files (shards, manifest, report) by name.
    func outputs(_ dir: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where !name.hasPrefix(".") {
            files[name] = try Data(contentsOf: dir.appendingPathComponent(name))
        }
        return files
    }

    /// Same files with the same bytes; `otherArchive`: the report's `archive` (the archive's path) may differ.
    func assertSameBytes(_ a: URL, _ b: URL, otherArchive: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws {
        var x = try outputs(a), y = try outputs(b)
        if otherArchive {
            for report in [a, b] {
                let url = report.appendingPathComponent("ingest-report.json")
                let archive = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])["archive"] as! String
                let text = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "\"archive\" : \"\(archive)\"", with: "")
                if report == a { x["ingest-report.json"] = Data(text.utf8) } else { y["ingest-report.json"] = Data(text.utf8) }
            }
        }
        XCTAssertEqual(x.keys.sorted(), y.keys.sorted(), file: file, line: line)
        XCTAssertTrue(x.keys.contains("manifest.json") && x.keys.contains("shard-00001.h5"), "\(x.keys.sorted())", file: file, line: line)
        for (name, data) in x { XCTAssertTrue(y[name] == data, "\(name) differs between \(a.path) and \(b.path)", file: file, line: line) }
    }

    /// `out` holds what a cold run (a new folder: no cache, no index) makes of `archive` as it is now.
    func assertEqualsColdRun(_ archive: URL, _ out: URL, _ extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let cold = out.deletingLastPathComponent().appendingPathComponent(out.lastPathComponent + "-cold-\(UUID().uuidString.prefix(8))")
        let r = try Self.ingest(archive, cold, extra)
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stdout.contains("(0 from the cache, "), r.stdout, file: file, line: line)
        let warm = try outputs(out), fresh = try outputs(cold)
        XCTAssertEqual(warm.keys.sorted(), fresh.keys.sorted(), file: file, line: line)
        XCTAssertTrue(warm.keys.contains("manifest.json") && warm.keys.contains("shard-00000.h5"), "\(warm.keys.sorted())", file: file, line: line)
        for (name, data) in warm { XCTAssertTrue(fresh[name] == data, "\(name) is not the cold run's", file: file, line: line) }
        try FileManager.default.removeItem(at: cold)
    }

    func copyCohort(_ name: String) throws -> URL {
        let copy = Self.root.appendingPathComponent(name)
        try FileManager.default.copyItem(at: Self.cohort, to: copy)
        return copy
    }

    func studyFolders(_ archive: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: archive.appendingPathComponent("train_images").path).sorted()
    }

    /// Two workers write exactly the bytes of one; running again is all cache hits and the same bytes.
    func testTwoWorkersAndAWarmRerunGiveTheReferenceBytes() throws {
        let out = Self.root.appendingPathComponent("two-workers")
        let cold = try Self.ingest(Self.cohort, out, ["--workers", "2"])
        XCTAssertEqual(cold.status, 0, cold.stderr)
        XCTAssertTrue(cold.stdout.contains("(0 from the cache, 4 computed)"), cold.stdout)
        try assertSameBytes(out, Self.reference)
        func inode(_ name: String) throws -> Int {
            try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: out.appendingPathComponent(name).path)[.systemFileNumber] as? Int)
        }
        let before = try [inode("shard-00000.h5"), inode("shard-00001.h5")]
        let warm = try Self.ingest(Self.cohort, out, ["--workers", "2"])
        XCTAssertEqual(warm.status, 0, warm.stderr)
        XCTAssertTrue(warm.stdout.contains("(4 from the cache, 0 computed)"), warm.stdout)
        XCTAssertTrue(warm.stdout.contains("peak RSS"), warm.stdout)
        try assertSameBytes(out, Self.reference)
        // Unchanged shards are kept as they are (their fingerprint and stat match), not rewritten and renamed.
        XCTAssertEqual(try [inode("shard-00000.h5"), inode("shard-00001.h5")], before)
    }

    /// Added studies are fused, removed ones leave, a changed label row, a moved keypoint, a rewritten DICOM file or
    /// a fusion parameter redoes what it touches; each time the folder equals a cold run of the archive as it is then
    /// (not only the counters say so).
    func testIncrementalUpdatesEqualColdRuns() throws {
        let archive = try copyCohort("incremental")
        let images = archive.appendingPathComponent("train_images")
        let studies = try studyFolders(archive)
        let parked = Self.root.appendingPathComponent("parked-study")
        try FileManager.default.moveItem(at: images.appendingPathComponent(studies[1]), to: parked)
        let out = Self.root.appendingPathComponent("incremental-out")
        XCTAssertEqual(try Self.ingest(archive, out).status, 0)
        let threeStudies = try outputs(out)

        // Added: only the new study is fused, and the result is the four-study reference.
        try FileManager.default.moveItem(at: parked, to: images.appendingPathComponent(studies[1]))
        let added = try Self.ingest(archive, out)
        XCTAssertTrue(added.stdout.contains("(3 from the cache, 1 computed)"), added.stdout + added.stderr)
        try assertSameBytes(out, Self.reference, otherArchive: true)

        // Removed: nothing is fused and the folder is the three-study run again.
        try FileManager.default.moveItem(at: images.appendingPathComponent(studies[1]), to: parked)
        let removed = try Self.ingest(archive, out)
        XCTAssertTrue(removed.stdout.contains("(3 from the cache, 0 computed)"), removed.stdout + removed.stderr)
        XCTAssertEqual(try outputs(out), threeStudies)

        // A changed label row in train.csv redoes that study only.
        let csv = archive.appendingPathComponent("train.csv")
        var rows = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let row = try XCTUnwrap(rows.firstIndex { $0.hasPrefix(studies[0] + ",") })
        rows[row] = rows[row].contains("Severe") ? rows[row].replacingOccurrences(of: "Severe", with: "Moderate")
            : rows[row].replacingOccurrences(of: "Normal/Mild", with: "Severe")
        try rows.joined(separator: "\n").write(to: csv, atomically: true, encoding: .utf8)
        let relabelled = try Self.ingest(archive, out)
        XCTAssertTrue(relabelled.stdout.contains("(2 from the cache, 1 computed)"), relabelled.stdout + relabelled.stderr)
        try assertEqualsColdRun(archive, out)

        // A moved point in train_label_coordinates.csv redoes that study only, and its keypoints move.
        let beforeMove = try outputs(out)
        let coordinates = archive.appendingPathComponent("train_label_coordinates.csv")
        var lines = try String(contentsOf: coordinates, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let x = try XCTUnwrap(lines[0].split(separator: ",").firstIndex(of: "x"))
        let point = try XCTUnwrap(lines.firstIndex { $0.hasPrefix(studies[0] + ",") })
        var cells = lines[point].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        cells[x] = String(format: "%.3f", try XCTUnwrap(Double(cells[x])) + 6)
        lines[point] = cells.joined(separator: ",")
        try lines.joined(separator: "\n").write(to: coordinates, atomically: true, encoding: .utf8)
        let moved = try Self.ingest(archive, out)
        XCTAssertTrue(moved.stdout.contains("(2 from the cache, 1 computed)"), moved.stdout + moved.stderr)
        XCTAssertNotEqual(try outputs(out), beforeMove, "a moved keypoint changed nothing")
        try assertEqualsColdRun(archive, out)

        // A DICOM file rewritten in place with the same size: the stat differs, the digest decides.
        let series = images.appendingPathComponent(studies[2])
        let dicom = try XCTUnwrap(FileManager.default.enumerator(atPath: series.path)?.compactMap { $0 as? String }
            .filter { $0.hasSuffix(".dcm") }.sorted().first)
        let dicomURL = series.appendingPathComponent(dicom)
        var bytes = try Data(contentsOf: dicomURL)
        try bytes.write(to: dicomURL)
        let touched = try Self.ingest(archive, out)
        XCTAssertTrue(touched.stdout.contains("(3 from the cache, 0 computed)"), touched.stdout + touched.stderr)
        try assertEqualsColdRun(archive, out)
        bytes[bytes.count - 2] ^= 0x40
        try bytes.write(to: dicomURL)
        let changed = try Self.ingest(archive, out)
        XCTAssertTrue(changed.stdout.contains("(2 from the cache, 1 computed)"), changed.stdout + changed.stderr)
        XCTAssertTrue(changed.stdout.contains("1 cache entr(ies) corrupt or stale"), changed.stdout)
        try assertEqualsColdRun(archive, out)

        // Another fusion parameter (the grid size; later flags win) redoes every study.
        let resized = try Self.ingest(archive, out, ["--size", "24"])
        XCTAssertTrue(resized.stdout.contains("(0 from the cache, 3 computed)"), resized.stdout + resized.stderr)
        XCTAssertEqual(try Fixtures.run(Fixtures.fuse3d, ["verify", out.path]).status, 0)
        try assertEqualsColdRun(archive, out, ["--size", "24"])
    }

    /// A truncated and a bit-flipped cache entry are recomputed, never packed.
    func testCorruptCacheEntriesAreRecomputed() throws {
        let out = Self.root.appendingPathComponent("corrupt")
        XCTAssertEqual(try Self.ingest(Self.cohort, out).status, 0)
        let cache = out.appendingPathComponent(".cache")
        let entries = try XCTUnwrap(FileManager.default.enumerator(atPath: cache.path)?.compactMap { $0 as? String }
            .filter { $0.hasSuffix(".entry") }.sorted())
        XCTAssertEqual(entries.count, 4)
        let truncated = cache.appendingPathComponent(entries[0])
        try Data(try Data(contentsOf: truncated).prefix(1000)).write(to: truncated)
        let flipped = cache.appendingPathComponent(entries[1])
        var bytes = try Data(contentsOf: flipped)
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: flipped)
        let r = try Self.ingest(Self.cohort, out)
        XCTAssertTrue(r.stdout.contains("(2 from the cache, 2 computed)"), r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("2 cache entr(ies) corrupt or stale"), r.stdout)
        try assertSameBytes(out, Self.reference)
    }

    /// Cache entries are fsynced and renamed into place on a background queue, waited for before the dataset is
    /// written: after a run every study has its entry and no temporary file is left; an entry that cannot be renamed
    /// into place (a folder stands at its name) is counted in the summary, its temporary file removed, and the
    /// dataset is the reference's all the same.
    func testCacheEntriesAreInPlaceWhenTheRunEnds() throws {
        let out = Self.root.appendingPathComponent("entries")
        XCTAssertEqual(try Self.ingest(Self.cohort, out, ["--workers", "2"]).status, 0)
        let cache = out.appendingPathComponent(".cache")
        func files(_ suffix: String) -> [String] {
            (FileManager.default.enumerator(atPath: cache.path)?.compactMap { $0 as? String }.filter { $0.hasSuffix(suffix) } ?? []).sorted()
        }
        let entries = files(".entry")
        XCTAssertEqual(entries.count, 4)
        XCTAssertEqual(files(".tmp"), [])

        for entry in entries.prefix(2) {
            let path = cache.appendingPathComponent(entry)
            try FileManager.default.removeItem(at: path)
            try FileManager.default.createDirectory(at: path, withIntermediateDirectories: false)
            try Data("x".utf8).write(to: path.appendingPathComponent("blocker"))
        }
        try FileManager.default.removeItem(at: out.appendingPathComponent(".ingest-state.json"))
        let r = try Self.ingest(Self.cohort, out, ["--workers", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("(2 from the cache, 2 computed)"), r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("2 cache entr(ies) could not be written"), r.stdout)
        XCTAssertEqual(files(".tmp"), [])
        try assertSameBytes(out, Self.reference)
    }

    /// kill -9 in the middle: no partial file under a final name; the same command finishes from the
    /// cache with exactly the bytes of an uninterrupted run.
    func testKilledIngestResumesToIdenticalBytes() throws {
        let out = Self.root.appendingPathComponent("killed")
        let p = try Fixtures.start(Fixtures.fuse3d, ["ingest", Self.cohort.path, "--out", out.path, "--workers", "1"] + Self.common)
        let cache = out.appendingPathComponent(".cache")
        func entries() -> Int {
            (FileManager.default.enumerator(atPath: cache.path)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".entry") }.count) ?? 0
        }
        // The timeout only stops a hang (it is no measure of speed): generous on a loaded machine.
        let landed = Fixtures.kill(p, when: { entries() >= 2 }, timeout: 600)
        XCTAssertTrue(landed, "the ingest never cached two studies")
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "the ingest ended before the kill")
        let done = entries()
        XCTAssertGreaterThanOrEqual(done, 2)
        XCTAssertLessThan(done, 4, "the kill landed after every study was fused")

        for name in try FileManager.default.contentsOfDirectory(atPath: out.path) {
            if name.hasSuffix(".h5") {
                let r = try Fixtures.run(Fixtures.fuse3d, ["inspect", out.appendingPathComponent(name).path])
                XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
            }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: out.path)
        XCTAssertFalse(names.contains("manifest.json"), "a killed run left a manifest: \(names)")
        let partialEntries = FileManager.default.enumerator(atPath: cache.path)?.compactMap { $0 as? String }
            .filter { !$0.hasSuffix(".entry") && $0.count > 2 } ?? []
        for name in partialEntries { XCTAssertTrue(name.hasSuffix(".tmp"), "\(name) is neither an entry nor a temporary file") }

        let rerun = try Self.ingest(Self.cohort, out, ["--workers", "1"])
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertTrue(rerun.stdout.contains("(\(done) from the cache, \(4 - done) computed)"), rerun.stdout)
        try assertSameBytes(out, Self.reference)
    }

    /// A second ingest into a folder another one is writing is refused (the lock dies with its holder).
    func testASecondIngestIntoTheSameFolderIsRefused() throws {
        let out = Self.root.appendingPathComponent("locked")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let fd = open(out.appendingPathComponent(".ingest.lock").path, O_RDWR | O_CREAT, 0o644)
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        let refused = try Self.ingest(Self.cohort, out)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("another fuse3d ingest is writing to this folder"), refused.stderr)
        close(fd)
        XCTAssertEqual(try Self.ingest(Self.cohort, out).status, 0)
    }

    /// Two partitions run as separate processes (one told by --partition, one by a Slurm array's
    /// environment) and merged hold the same studies and sample arrays as one run.
    func testPartitionsMergedEqualOneRun() throws {
        let parts = Self.root.appendingPathComponent("parts")
        let p0 = parts.appendingPathComponent("part-0"), p1 = parts.appendingPathComponent("part-1")
        let r0 = try Self.ingest(Self.cohort, p0, ["--partition", "0/2"])
        XCTAssertEqual(r0.status, 0, r0.stderr)
        XCTAssertTrue(r0.stdout.contains("partition 0/2 (from --partition)"), r0.stdout)
        let r1 = try Self.ingest(Self.cohort, p1, [], environment: ["SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "7",
                                                                   "SLURM_ARRAY_TASK_COUNT": "2"])
        XCTAssertEqual(r1.status, 0, r1.stderr)
        XCTAssertTrue(r1.stdout.contains("partition 1/2 (from the Slurm job array's environment)"), r1.stdout)

        let merged = Self.root.appendingPathComponent("merged")
        let m = try Fixtures.run(Fixtures.fuse3d, ["merge", p0.path, p1.path, "--out", merged.path])
        XCTAssertEqual(m.status, 0, m.stderr)
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: merged.appendingPathComponent("manifest.json"))) as! [String: Any]
        let files = (manifest["shards"] as! [[String: Any]]).map { $0["file"] as! String }
        XCTAssertTrue(files.allSatisfy { $0.hasPrefix("../parts/part-") || $0.hasPrefix("../part-") }, "\(files)")
        XCTAssertEqual(manifest["samples"] as? Int, 4)
        let verify = try Fixtures.run(Fixtures.fuse3d, ["verify", merged.path])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        XCTAssertEqual(try Fixtures.run(Fixtures.fuse3d, ["inspect", merged.path]).status, 0)

        // Per study, every array of the merged dataset equals the single run's (read through the manifests).
        let r = try Fixtures.python("""
        import sys, json, os, numpy as np, h5py, hdf5plugin
        def samples(folder):
            out = {}
            for shard in json.load(open(os.path.join(folder, "manifest.json")))["shards"]:
                with h5py.File(os.path.normpath(os.path.join(folder, shard["file"])), "r") as f:
                    for i, sid in enumerate(f["study_id"][:]):
                        out[int(sid)] = {k: f[k][i] for k in ["volumes", "labels", "present", "affine", "keypoints", "norm"]}
            return out
        a, b = samples(sys.argv[1]), samples(sys.argv[2])
        assert sorted(a) == sorted(b) and len(a) == 4, (sorted(a), sorted(b))
        for sid in a:
            for k in a[sid]:
                assert np.array_equal(a[sid][k], b[sid][k], equal_nan=k != "labels"), (sid, k)
        print("ok", len(a))
        """, [merged.path, Self.reference.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("ok 4"), r.stdout)
    }

    /// Merge refuses a missing part, a part made with other parameters and parts sharing studies.
    func testMergeRefusals() throws {
        let parts = Self.root.appendingPathComponent("refusals")
        let p0 = parts.appendingPathComponent("part-0"), p1 = parts.appendingPathComponent("part-1")
        XCTAssertEqual(try Self.ingest(Self.cohort, p0, ["--partition", "0/2"]).status, 0)
        XCTAssertEqual(try Self.ingest(Self.cohort, p1, ["--partition", "1/2", "--zstd-level", "5"]).status, 0)
        let out = parts.appendingPathComponent("merged")

        let missing = try Fixtures.run(Fixtures.fuse3d, ["merge", p0.path, "--out", out.path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("part(s) 1/2 missing"), missing.stderr)

        let other = try Fixtures.run(Fixtures.fuse3d, ["merge", p0.path, p1.path, "--out", out.path])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("other parameters") && other.stderr.contains("zstd_level 1 vs 5"), other.stderr)

        // The whole reference dressed up as part 1/2 shares part 0's studies.
        let fake = parts.appendingPathComponent("fake-1")
        try FileManager.default.copyItem(at: Self.reference, to: fake)
        let reportURL = fake.appendingPathComponent("ingest-report.json")
        var report = try JSONSerialization.jsonObject(with: Data(contentsOf: reportURL)) as! [String: Any]
        report["partition"] = ["index": 1, "count": 2, "source": "--partition"]
        try JSONSerialization.data(withJSONObject: report).write(to: reportURL)
        let overlap = try Fixtures.run(Fixtures.fuse3d, ["merge", p0.path, fake.path, "--out", out.path])
        XCTAssertNotEqual(overlap.status, 0)
        XCTAssertTrue(overlap.stderr.contains("the parts overlap"), overlap.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("manifest.json").path))
    }

    /// `ingest --help` reads as prose: no sentence broken by the source's line ends, each default stated once.
    func testIngestHelpReadsAsProse() throws {
        let help = try Fixtures.run(Fixtures.fuse3d, ["ingest", "--help"]).stdout
        let flat = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(flat.contains("Running the same command again on the same --out is an incremental update"), help)
        XCTAssertFalse(help.contains(". (default:"), help)
        XCTAssertFalse(help.contains("(default: the number of cores). (default"), help)
        // A line of prose is followed by another only when the next word would not have fit in 80 columns.
        let prose = help.components(separatedBy: "USAGE:")[0].split(separator: "\n", omittingEmptySubsequences: false)
        for (line, next) in zip(prose, prose.dropFirst()) where !line.isEmpty && !next.isEmpty && !line.hasPrefix(" ") && !next.hasPrefix(" ") {
            let word = next.split(separator: " ").first ?? ""
            XCTAssertGreaterThanOrEqual(line.count + 1 + word.count, 80, "broken mid-sentence: '\(line)' / '\(next)'")
        }
    }
}
