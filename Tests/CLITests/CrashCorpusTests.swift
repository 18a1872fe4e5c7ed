import Foundation
import TestSupport
import XCTest

/// Untrusted input never takes a run down: every file of the regression corpus (Tests/Fixtures/crash-corpus, minimized
/// inputs that crashed fuse3d, see its README.md) goes through the real binary, alone and together, by
/// `fuse3d scan --decode` and by `fuse3d ingest` beside good files, under glibc's heap checks (MALLOC_CHECK_=3,
/// MALLOC_PERTURB_). Each run must end by exiting, not by a signal, with status 0; each corpus file must be named as
/// skipped with a reason; and the study nobody touched must be fused.
final class CrashCorpusTests: XCTestCase {
    static let corpus = Fixtures.repoRoot.appendingPathComponent("Tests/Fixtures/crash-corpus")
    /// glibc's heap consistency checks abort on the first corruption they see; the perturb byte fills freed and fresh
    /// blocks so that a read of either shows.
    static let heapChecks = ["MALLOC_CHECK_": "3", "MALLOC_PERTURB_": "165"]

    /// What corpus.json says of one file: the synth slice (path under the archive) it stands in for, if any.
    struct Entry: Decodable {
        var file: String
        var replaces: String?
        var crashed: String
    }

    struct Manifest: Decodable {
        /// The `fuse3d synth` arguments of the cohort the synth-derived files were cut from.
        var synth: [String]
        /// The study (folder) whose files are replaced or joined by the corpus files; the other stays untouched.
        var victimStudy: String
        /// Where corpus files that replace nothing are put, relative to the archive.
        var addedTo: String
        var files: [Entry]
    }

    static func manifest() throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: corpus.appendingPathComponent("corpus.json")))
    }

    /// A finished child: how it ended (exit or signal), its status or signal number, and its output.
    struct Run {
        var signaled: Bool
        var status: Int32
        var stdout: String
        var stderr: String
        var how: String {
            if signaled && status == SIGKILL { return "killed by SIGKILL (a hang: still running after \(Int(CrashCorpusTests.timeout)) s)" }
            return signaled ? "killed by signal \(status) (\(String(cString: strsignal(status))))" : "exit \(status)"
        }
        var stderrTail: String { String(stderr.suffix(1500)) }
    }

    /// glibc 2.34 and later honour MALLOC_CHECK_ only with this library preloaded.
    static let mallocDebug = "/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0"
    /// Address space per run (KiB): a file that makes fuse3d allocate without bound fails fast instead of taking the
    /// machine's memory (libfuzzer-oom.dcm asks for more than 8 GB otherwise); the runs here need far less (an ingest
    /// of the synth cohort peaks near 50 MB resident).
    static let addressSpaceKiB = 2 * 1024 * 1024
    /// Seconds before a run is killed (and reported as a hang). Only a guard against a hang, no measure of speed: a run
    /// takes seconds, and the decoders' own limit per file is already 60 s, so it is generous on a loaded machine.
    static let timeout: TimeInterval = 600

    /// Runs fuse3d with the heap checks on, under the address-space limit and the timeout, draining both pipes, and
    /// tells an exit from a death by signal.
    static func fuse3d(_ arguments: [String]) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "ulimit -v \(addressSpaceKiB); exec \"$0\" \"$@\"", Fixtures.fuse3d.path] + arguments
        var env = ProcessInfo.processInfo.environment.merging(heapChecks) { $1 }
        env["SWIFT_BACKTRACE"] = "enable=no"  // glibc's message, not the backtracer's report, ends stderr
        if FileManager.default.fileExists(atPath: mallocDebug) { env["LD_PRELOAD"] = mallocDebug }
        p.environment = env
        let watchdog = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        defer { watchdog.cancel() }
        let r = try Fixtures.runToEnd(p) { DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog) }
        return Run(signaled: r.signaled, status: r.status, stdout: r.stdout, stderr: r.stderr)
    }

    func corpusFiles() throws -> [String] {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).filter { $0.hasSuffix(".dcm") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 4, "the corpus holds too few files")
        let listed = Set(try Self.manifest().files.map(\.file))
        XCTAssertEqual(Set(names), listed, "corpus.json and the folder's .dcm files differ")
        return names
    }

    /// Each file alone, then all of them in one folder, through `fuse3d scan --decode --json`.
    func testScanDecodeSkipsEveryCorpusFileWithAReason() throws {
        let names = try corpusFiles()
        let root = try Fixtures.scratch("crash-corpus-scan")
        for name in names {
            let solo = root.appendingPathComponent("solo-\(name)")
            try FileManager.default.createDirectory(at: solo, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Self.corpus.appendingPathComponent(name), to: solo.appendingPathComponent(name))
            let r = try Self.fuse3d(["scan", "--decode", "--json", solo.path])
            XCTAssertFalse(r.signaled, "scan --decode of \(name) alone: \(r.how)\n\(r.stderrTail)")
            XCTAssertEqual(r.status, 0, "scan --decode of \(name) alone: \(r.how)\n\(r.stderrTail)")
        }

        let all = root.appendingPathComponent("all")
        try FileManager.default.createDirectory(at: all, withIntermediateDirectories: true)
        for name in names { try FileManager.default.copyItem(at: Self.corpus.appendingPathComponent(name), to: all.appendingPathComponent(name)) }
        let r = try Self.fuse3d(["scan", "--decode", "--json", all.path])
        XCTAssertFalse(r.signaled, "scan --decode of the whole corpus: \(r.how)\n\(r.stderrTail)")
        XCTAssertEqual(r.status, 0, "scan --decode of the whole corpus: \(r.how)\n\(r.stderrTail)")
        let catalog = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        XCTAssertNotNil(catalog, "scan --decode printed no JSON catalog")
        let problems = (catalog?["problems"] as? [[String: Any]] ?? []).compactMap { p -> (String, String)? in
            guard let path = p["path"] as? String, let reason = p["reason"] as? String else { return nil }
            return (path, reason)
        }
        for name in names {
            let reasons = problems.filter { ($0.0 as NSString).lastPathComponent == name }.map(\.1)
            XCTAssertFalse(reasons.isEmpty, "\(name) is not listed as a problem by scan --decode")
            XCTAssertTrue(reasons.allSatisfy { !$0.trimmingCharacters(in: .whitespaces).isEmpty }, "\(name): empty reason")
        }
        let accounting = catalog?["accounting"] as? [String: Any]
        XCTAssertEqual(accounting?["filesSkipped"] as? Int, names.count, "every corpus file is skipped, none used")
    }

    /// A two-study synth archive: the corpus files replace or join files of one study, the other is untouched. The
    /// ingest finishes (status 0, no signal), names every corpus file as skipped with a reason, and fuses the
    /// untouched study.
    func testIngestSkipsCorpusFilesAndFusesTheUntouchedStudy() throws {
        let manifest = try Self.manifest()
        let names = try corpusFiles()
        let root = try Fixtures.scratch("crash-corpus-ingest")
        let archive = root.appendingPathComponent("archive")
        let synth = try Fixtures.run(Fixtures.fuse3d, ["synth", "--out", archive.path] + manifest.synth)
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let images = archive.appendingPathComponent("train_images")
        let studies = try FileManager.default.contentsOfDirectory(atPath: images.path).sorted()
        XCTAssertTrue(studies.contains(manifest.victimStudy), "synth no longer writes study \(manifest.victimStudy): \(studies)")
        let untouched = try XCTUnwrap(studies.first { $0 != manifest.victimStudy })

        for entry in manifest.files {
            let source = Self.corpus.appendingPathComponent(entry.file)
            let target = archive.appendingPathComponent(entry.replaces ?? "\(manifest.addedTo)/\(entry.file)")
            XCTAssertTrue(target.path.contains("/train_images/\(manifest.victimStudy)/"), target.path)
            if entry.replaces != nil {
                XCTAssertTrue(FileManager.default.fileExists(atPath: target.path), "synth wrote no \(entry.replaces!)")
                try? FileManager.default.removeItem(at: target)
            }
            try FileManager.default.copyItem(at: source, to: target)
        }

        let out = root.appendingPathComponent("out")
        let r = try Self.fuse3d(["ingest", archive.path, "--out", out.path, "--size", "16", "--samples-per-shard", "1", "--workers", "2"])
        XCTAssertFalse(r.signaled, "ingest: \(r.how)\n\(r.stderrTail)")
        XCTAssertEqual(r.status, 0, "ingest: \(r.how)\n\(r.stderrTail)")
        let reportURL = out.appendingPathComponent("ingest-report.json")
        guard let data = try? Data(contentsOf: reportURL),
              let report = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return XCTFail("ingest wrote no readable ingest-report.json (\(r.how))")
        }
        let studyStatus = Dictionary((report["studies"] as? [[String: Any]] ?? []).compactMap { s -> (String, String)? in
            guard let id = s["studyID"] as? String, let status = s["status"] as? String else { return nil }
            return (id, status)
        }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(studyStatus[untouched], "fused", "the untouched study \(untouched) is not fused: \(studyStatus)")
        let skipped = (report["files"] as? [[String: Any]] ?? []).compactMap { f -> (String, String)? in
            guard let path = f["path"] as? String, let reason = f["reason"] as? String else { return nil }
            return (path, reason)
        }
        for entry in manifest.files {
            let name = ((entry.replaces ?? entry.file) as NSString).lastPathComponent
            let reasons = skipped.filter { ($0.0 as NSString).lastPathComponent == name && $0.0.contains(manifest.victimStudy) }.map(\.1)
            XCTAssertFalse(reasons.isEmpty, "\(entry.file) (as \(name)) is not among the ingest report's skipped files")
            XCTAssertTrue(reasons.allSatisfy { !$0.trimmingCharacters(in: .whitespaces).isEmpty }, "\(entry.file): empty reason")
        }
        XCTAssertEqual(names.count, manifest.files.count)
    }
}
