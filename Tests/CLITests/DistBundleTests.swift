import Foundation
import TestSupport
import XCTest

/// `make dist`'s bundle, copied to a fresh folder and run with an environment that does not point into
/// the build tree: scan and ingest work, and every library it loads comes from the bundle or the system.
final class DistBundleTests: XCTestCase {
    static let name = "fuse3d-0.1.0-linux-x86_64"
    static let script = Fixtures.repoRoot.appendingPathComponent("scripts/dist.sh")

    /// The bundle made from the debug binary (its Swift runtime is copied like the other libraries):
    /// the same script and checks as the release bundle, in seconds, on every test run.
    func testBundleOfTheDebugBuildRunsFromACleanFolder() throws {
        let out = try Fixtures.scratch("dist-debug")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try Fixtures.run(URL(fileURLWithPath: "/bin/bash"), [Self.script.path, out.path, "--binary", Fixtures.fuse3d.path, "--no-tar"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        try checkBundle(out.appendingPathComponent(Self.name))
    }

    /// The real `make dist` (release build with the Swift runtime static, tarball): minutes of compiling,
    /// so it runs only with FUSE3D_DIST_RELEASE=1.
    func testReleaseTarballRunsFromACleanFolder() throws {
        guard ProcessInfo.processInfo.environment["FUSE3D_DIST_RELEASE"] == "1" else {
            throw XCTSkip("set FUSE3D_DIST_RELEASE=1 to build and test the release bundle (a release build)")
        }
        let out = try Fixtures.scratch("dist-release")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try Fixtures.run(URL(fileURLWithPath: "/bin/bash"), [Self.script.path, out.path])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let unpacked = try Fixtures.scratch("dist-unpacked")
        defer { try? FileManager.default.removeItem(at: unpacked) }
        let tar = try Fixtures.run(URL(fileURLWithPath: "/bin/tar"),
                                   ["-xzf", out.appendingPathComponent(Self.name + ".tar.gz").path, "-C", unpacked.path])
        XCTAssertEqual(tar.status, 0, tar.stderr)
        let bundle = unpacked.appendingPathComponent(Self.name)
        let ldd = try Fixtures.run(URL(fileURLWithPath: "/usr/bin/ldd"), [bundle.appendingPathComponent("fuse3d").path])
        XCTAssertFalse(ldd.stdout.contains("libswiftCore"), "the Swift runtime should be static: \(ldd.stdout)")
        try checkBundle(bundle)
    }

    private func checkBundle(_ built: URL) throws {
        let place = try Fixtures.scratch("dist-copy")
        defer { try? FileManager.default.removeItem(at: place) }
        let cp = try Fixtures.run(URL(fileURLWithPath: "/bin/cp"), ["-a", built.path, place.path])
        XCTAssertEqual(cp.status, 0, cp.stderr)
        let bundle = place.appendingPathComponent(Self.name)
        let fuse3d = bundle.appendingPathComponent("fuse3d")
        for file in ["torch/build-torch-shim.sh", "torch/src/torch_api.cpp", "torch/src/torch_distributed.cpp", "torch/src/ctorch_functions.h",
                     "torch/src/include/ctorch.h", "README.txt"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: bundle.appendingPathComponent(file).path), file)
        }

        let ldd = try TorchBridgeCLITests.runClean(URL(fileURLWithPath: "/usr/bin/ldd"), [fuse3d.path])
        XCTAssertEqual(ldd.status, 0, ldd.stderr)
        XCTAssertFalse(ldd.stdout.contains("not found"), ldd.stdout)
        XCTAssertFalse(ldd.stdout.contains(Fixtures.repoRoot.path), "resolved from the build tree: \(ldd.stdout)")
        XCTAssertFalse(ldd.stdout.contains("/opt/swift"), ldd.stdout)
        let gdcm = ldd.stdout.split(separator: "\n").first { $0.contains("libgdcmMSFF") } ?? ""
        XCTAssertTrue(gdcm.contains("=> \(bundle.path)/lib/"), "GDCM not taken from the bundle: \(gdcm)")

        let cohort = place.appendingPathComponent("cohort"), shards = place.appendingPathComponent("shards")
        let synth = try TorchBridgeCLITests.runClean(fuse3d, ["synth", "--studies", "2", "--out", cohort.path, "--seed", "5",
                                                             "--sagittal-matrix", "64", "--axial-matrix", "64"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let scan = try TorchBridgeCLITests.runClean(fuse3d, ["scan", cohort.path, "--json"])
        XCTAssertEqual(scan.status, 0, scan.stderr)
        XCTAssertTrue(scan.stdout.contains("\"studies\""), scan.stdout)
        let ingest = try TorchBridgeCLITests.runClean(fuse3d, ["ingest", cohort.path, "--out", shards.path, "--size", "16"])
        XCTAssertEqual(ingest.status, 0, ingest.stderr)
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: shards.appendingPathComponent("manifest.json")))
        XCTAssertNotNil(manifest as? [String: Any])

        let version = try TorchBridgeCLITests.runClean(fuse3d, ["version"])
        XCTAssertEqual(version.status, 0, version.stderr)
        XCTAssertTrue(version.stdout.contains("\(bundle.path)/torch/build-torch-shim.sh /path/to/python"), version.stdout)
    }
}
