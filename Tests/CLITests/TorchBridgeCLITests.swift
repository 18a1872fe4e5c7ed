import Foundation
import TestSupport
import XCTest

/// libtorch is opened only by training commands, through the bridge libfuse3d_torch.so: the other
/// commands start and run without it, and a missing or foreign bridge is one clear error.
final class TorchBridgeCLITests: XCTestCase {
    static let bridge = Fixtures.repoRoot.appendingPathComponent(".build/torch/libfuse3d_torch.so")

    /// A small phantom cohort shared by the tests of this class.
    static let cohort: URL = {
        let url = try! Fixtures.scratch("bridge-cohort")
        let r = try! Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "2", "--out", url.path, "--seed", "3",
                                                    "--sagittal-matrix", "64", "--axial-matrix", "64"])
        precondition(r.status == 0, r.stderr)
        return url
    }()

    /// Runs `executable` with exactly `environment` (nothing inherited from the test process).
    static func runClean(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws
        -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        p.environment = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "LANG": "C.UTF-8"].merging(environment) { $1 }
        let out = try Fixtures.scratch("clean-run").appendingPathComponent("out.txt")
        let err = out.deletingLastPathComponent().appendingPathComponent("err.txt")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
    }

    /// A copy of the debug fuse3d alone in a fresh folder (outside the build tree, no bridge beside it).
    static func copiedBinary() throws -> URL {
        let dir = try Fixtures.scratch("copied-fuse3d")
        let copy = dir.appendingPathComponent("fuse3d")
        try FileManager.default.copyItem(at: Fixtures.fuse3d, to: copy)
        return copy
    }

    func testVersionListsTheLibtorchFoundThroughTheBridge() throws {
        let r = try Fixtures.run(Fixtures.fuse3d, ["version"], environment: ["FUSE3D_TORCH": ""])
        XCTAssertEqual(r.status, 0, r.stderr)
        let torch = try Fixtures.python("import torch; print(torch.__version__.split('+')[0])").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(r.stdout.contains("libtorch \(torch) at "), r.stdout)
        XCTAssertTrue(r.stdout.contains("libtorch_cpu.so"), r.stdout)
        XCTAssertTrue(r.stdout.contains("bridge \(Self.bridge.path)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("CUDA"), r.stdout)
    }

    /// The dynamic loader's own log: scan, ingest, inspect and verify open neither the bridge nor any
    /// libtorch library, although both are within reach; `version` (the control) opens both.
    func testNonTrainingCommandsNeverLoadLibtorch() throws {
        let shards = try Fixtures.scratch("never-torch-shards")
        for arguments in [["scan", Self.cohort.path], ["ingest", Self.cohort.path, "--out", shards.path, "--size", "16"],
                          ["inspect", shards.path], ["verify", shards.path]] {
            let r = try Fixtures.run(Fixtures.fuse3d, arguments, environment: ["LD_DEBUG": "files"])
            XCTAssertEqual(r.status, 0, "\(arguments[0]): \(r.stdout)")
            XCTAssertTrue(r.stderr.contains("libgdcmMSFF"), "LD_DEBUG gave no log")
            XCTAssertFalse(r.stderr.contains("libtorch"), "\(arguments[0]) loaded libtorch")
            XCTAssertFalse(r.stderr.contains("libfuse3d_torch"), "\(arguments[0]) opened the bridge")
        }
        let version = try Fixtures.run(Fixtures.fuse3d, ["version"], environment: ["LD_DEBUG": "files", "FUSE3D_TORCH": ""])
        XCTAssertTrue(version.stderr.contains("libfuse3d_torch.so"), "version did not open the bridge")
        XCTAssertTrue(version.stderr.contains("libtorch_cpu.so"))
    }

    func testBinaryDoesNotLinkLibtorch() throws {
        let ldd = try Fixtures.run(URL(fileURLWithPath: "/usr/bin/ldd"), [Fixtures.fuse3d.path])
        XCTAssertEqual(ldd.status, 0)
        XCTAssertTrue(ldd.stdout.contains("libhdf5"), ldd.stdout)
        XCTAssertFalse(ldd.stdout.contains("torch"), ldd.stdout)
        XCTAssertFalse(ldd.stdout.contains("libc10"), ldd.stdout)
    }

    /// A copied binary with the bridge and libtorch out of reach: scan and ingest work, `version` says
    /// what is missing, where it looked and how to build it, and training stops with that one error.
    func testCommandsRunWithoutTheBridge() throws {
        let fuse3d = try Self.copiedBinary()
        let scan = try Self.runClean(fuse3d, ["scan", Self.cohort.path])
        XCTAssertEqual(scan.status, 0, scan.stderr)
        XCTAssertTrue(scan.stdout.contains("2 studies, "), scan.stdout)
        let shards = try Fixtures.scratch("no-bridge-shards")
        let ingest = try Self.runClean(fuse3d, ["ingest", Self.cohort.path, "--out", shards.path, "--size", "16"])
        XCTAssertEqual(ingest.status, 0, ingest.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: shards.appendingPathComponent("manifest.json").path))

        let version = try Self.runClean(fuse3d, ["version"])
        XCTAssertEqual(version.status, 0, version.stderr)
        XCTAssertTrue(version.stdout.contains("libtorch: not available"), version.stdout)
        XCTAssertTrue(version.stdout.contains("was not found"), version.stdout)
        XCTAssertTrue(version.stdout.contains(fuse3d.deletingLastPathComponent().appendingPathComponent("libfuse3d_torch.so").path), version.stdout)
        XCTAssertTrue(version.stdout.contains("make torch PYTHON=/path/to/python"), version.stdout)
        XCTAssertFalse(version.stdout.contains(".build/torch"), "a copied binary must not look in the build tree")

        let pointed = try Self.runClean(fuse3d, ["version"], environment: ["FUSE3D_TORCH": "/nonexistent/bridge"])
        XCTAssertTrue(pointed.stdout.contains("FUSE3D_TORCH=/nonexistent/bridge"), pointed.stdout)
        XCTAssertFalse(pointed.stdout.contains(".build/torch"), pointed.stdout)

        let train = try Self.runClean(fuse3d, ["bench", "train", "--model", "efficientnet3d", "--size", "16", "--steps", "1"])
        XCTAssertNotEqual(train.status, 0)
        let output = train.stdout + train.stderr
        XCTAssertEqual(output.components(separatedBy: "was not found").count - 1, 1, output)
    }

    /// A bridge built from another ctorch.h is refused by name, with the command that rebuilds it.
    func testForeignBridgeIsRefused() throws {
        let dir = try Fixtures.scratch("foreign-bridge")
        let source = dir.appendingPathComponent("foreign.c")
        try "const char *ctorch_shim_abi(void) { return \"0000000000000000\"; }\n".write(to: source, atomically: true, encoding: .utf8)
        let library = dir.appendingPathComponent("libfuse3d_torch.so")
        let cc = try Fixtures.run(URL(fileURLWithPath: "/usr/bin/cc"), ["-shared", "-fPIC", source.path, "-o", library.path])
        XCTAssertEqual(cc.status, 0, cc.stderr)
        let r = try Self.runClean(Fixtures.fuse3d, ["version"], environment: ["FUSE3D_TORCH": dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("another version of ctorch.h (interface 0000000000000000"), r.stdout)
        XCTAssertTrue(r.stdout.contains("make torch"), r.stdout)
    }
}
