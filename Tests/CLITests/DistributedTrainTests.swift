import Foundation
import TestSupport
import XCTest

/// Data-parallel `fuse3d train` through the real binary: two CPU ranks over Gloo, started by the .venv's torchrun and
/// by `--nproc`, against one process with the same flags, on a 12-study phantom cohort at 16³ with a tiny ViT.
final class DistributedTrainTests: XCTestCase {
    // Set once by the class setUp before any test of the class runs; XCTest runs them one at a time.
    nonisolated(unsafe) static var root: URL!
    nonisolated(unsafe) static var shards: URL!
    nonisolated(unsafe) static var config: URL!

    override class func setUp() {
        super.setUp()
        root = try! Fixtures.scratch("distributed-train-cli")
        let cohort = root.appendingPathComponent("cohort")
        shards = root.appendingPathComponent("shards")
        let synth = try! Fixtures.run(Fixtures.fuse3d, ["synth", "--studies", "12", "--out", cohort.path, "--seed", "5"])
        precondition(synth.status == 0, synth.stderr)
        let ingest = try! Fixtures.run(Fixtures.fuse3d, ["ingest", cohort.path, "--out", shards.path, "--size", "16"])
        precondition(ingest.status == 0, ingest.stderr + ingest.stdout)
        // 4 folds of 12 studies: 9 training studies (2 steps of the global batch 4), 3 validated (2 + 1 across 2 ranks).
        config = root.appendingPathComponent("train.yaml")
        try! "folds: 4\nepochs: 2\nthreads: 1\ncheckpoint_every: 1\nloader:\n  threads: 1\n".write(to: config, atomically: true, encoding: .utf8)
    }

    private func train(_ out: String, _ extra: [String] = [], launcher: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        let arguments = ["train", Self.shards.path, "--out", Self.root.appendingPathComponent(out).path, "--model", "vit3d",
                         "--batch", "4", "--config", Self.config.path, "--fold", "0"] + extra
        if launcher.isEmpty { return try Fixtures.run(Fixtures.fuse3d, arguments) }
        return try Fixtures.run(Fixtures.repoRoot.appendingPathComponent(".venv/bin/torchrun"), launcher + [Fixtures.fuse3d.path] + arguments)
    }

    /// The float32 tensors of a safetensors file, by name.
    private func weights(_ run: String) throws -> [String: [Float]] {
        let data = try Data(contentsOf: Self.root.appendingPathComponent(run).appendingPathComponent("fold-0/best.safetensors"))
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any])
        var out: [String: [Float]] = [:]
        for (name, entry) in header where name != "__metadata__" {
            let entry = try XCTUnwrap(entry as? [String: Any])
            XCTAssertEqual(entry["dtype"] as? String, "F32", name)
            let r = try XCTUnwrap(entry["data_offsets"] as? [Int])
            out[name] = data.subdata(in: (8 + n + r[0])..<(8 + n + r[1])).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return out
    }

    private func score(_ run: String) throws -> Double {
        let data = try Data(contentsOf: Self.root.appendingPathComponent(run).appendingPathComponent("fold-0/result.json"))
        return try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["val_rsna_score"] as? Double)
    }

    /// ‖a − b‖ / ‖a‖ over every weight of the model taken as one vector.
    private func relativeDistance(_ a: [String: [Float]], _ b: [String: [Float]]) -> Double {
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        var difference = 0.0, norm = 0.0
        for (name, x) in a {
            for (u, v) in zip(x, b[name] ?? []) {
                difference += (Double(u) - Double(v)) * (Double(u) - Double(v))
                norm += Double(u) * Double(u)
            }
        }
        return (difference / norm).squareRoot()
    }

    func testTwoGlooRanksUnderTorchrunEndAsOneProcessSurviveAKilledRankAndResumeExactly() throws {
        let single = try train("single")
        XCTAssertEqual(single.status, 0, single.stderr)

        let torchrun = try train("torchrun", launcher: ["--nproc-per-node", "2", "--no-python"])
        XCTAssertEqual(torchrun.status, 0, torchrun.stderr)
        XCTAssertTrue(torchrun.stdout.contains("rank 0 of 2 (local 0 of 2, torchrun), backend gloo"), torchrun.stdout)
        XCTAssertTrue(torchrun.stdout.contains("rank 1 of 2 (local 1 of 2, torchrun), backend gloo"), torchrun.stdout)
        XCTAssertTrue(torchrun.stdout.contains("batch 4 (2 on each of 2 ranks)"), torchrun.stdout)
        XCTAssertEqual(torchrun.stdout.components(separatedBy: "mean validation score").count - 1, 1, "rank 0 alone reports")

        // Same best weights up to the order of float sums (Adam's normalisation turns the last bits of near-zero
        // gradients into visible steps for a few biases, so the model is compared as one vector), same score.
        let one = try weights("single"), two = try weights("torchrun")
        let distance = relativeDistance(one, two)
        XCTAssertLessThanOrEqual(distance, 1e-5)
        XCTAssertGreaterThan(one.values.reduce(0) { $0 + $1.count }, 100_000)
        XCTAssertEqual(try score("torchrun"), try score("single"), accuracy: 1e-6)

        // --nproc 2, stopped after its first step (both ranks, exit 3), then resumed: the uninterrupted two-rank run's bytes.
        let stopped = try train("resumed", ["--nproc", "2", "--stop-after-steps", "1"])
        XCTAssertEqual(stopped.status, 3, stopped.stderr + stopped.stdout)
        let resumed = try train("resumed", ["--nproc", "2", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("rank 1 of 2 (local 1 of 2, torchrun), backend gloo"), resumed.stdout)
        XCTAssertEqual(try weights("resumed"), two)
        XCTAssertEqual(try score("resumed"), try score("torchrun"))

        // Rank 1 killed (SIGKILL) once rank 0 has saved its first checkpoint: rank 0 fails with the reason instead of
        // hanging, and a resume with two ranks again ends with the uninterrupted run's weights.
        let killed = Self.root.appendingPathComponent("killed")
        let port = try freePort()
        let ranks = try (0..<2).map { rank -> (Process, Pipe) in
            let p = Process(), err = Pipe()
            p.executableURL = Fixtures.fuse3d
            p.arguments = ["train", Self.shards.path, "--out", killed.path, "--model", "vit3d", "--batch", "4", "--config", Self.config.path,
                           "--fold", "0", "--dist-timeout", "60"]
            p.environment = ProcessInfo.processInfo.environment.merging([
                "RANK": String(rank), "LOCAL_RANK": String(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": String(port),
            ]) { $1 }
            p.standardOutput = FileHandle.nullDevice
            p.standardError = err
            try p.run()
            return (p, err)
        }
        let checkpoint = killed.appendingPathComponent("fold-0/last.safetensors").path
        XCTAssertTrue(Fixtures.kill(ranks[1].0, when: { FileManager.default.fileExists(atPath: checkpoint) }),
                      "rank 1 ended before rank 0 saved its first checkpoint")
        XCTAssertEqual(ranks[1].0.terminationReason, .uncaughtSignal, "rank 1 finished before it could be killed")
        let message = String(decoding: ranks[0].1.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        ranks[0].0.waitUntilExit()
        XCTAssertNotEqual(ranks[0].0.terminationStatus, 0)
        XCTAssertTrue(message.contains("rank 0 of 2:") && message.contains("failed (another rank died"), message)
        let again = try train("killed", ["--nproc", "2", "--resume"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try weights("killed"), two)
    }

    private func freePort() throws -> Int {
        let r = try Fixtures.python("import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
        return try XCTUnwrap(Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// The default two-stage model on two ranks: it trains, and its localizer's held-out error covers every validation
    /// study (each rank locates its share; the points are gathered), as one process's does.
    func testTwoStageOnTwoRanksMeasuresTheLocalizerOnEveryHeldOutStudy() throws {
        func run(_ out: String, _ extra: [String]) throws -> [String: Any] {
            let r = try Fixtures.run(Fixtures.fuse3d, ["train", Self.shards.path, "--out", Self.root.appendingPathComponent(out).path,
                                                       "--batch", "4", "--config", Self.config.path, "--fold", "0"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
            let data = try Data(contentsOf: Self.root.appendingPathComponent(out).appendingPathComponent("fold-0/result.json"))
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
        let one = try run("two-stage-one", []), two = try run("two-stage-two", ["--nproc", "2"])
        let onePoints = try XCTUnwrap((one["localization"] as? [String: Any])?["points"] as? Int)
        let twoPoints = try XCTUnwrap((two["localization"] as? [String: Any])?["points"] as? Int)
        XCTAssertGreaterThan(onePoints, 5, "3 held-out studies with up to 5 labelled canal points each")
        XCTAssertEqual(twoPoints, onePoints)
        let held = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.root.appendingPathComponent("two-stage-two/fold-0/points.json"))) as! [String: Any]
        XCTAssertEqual((held["studies"] as? [Any])?.count, 3)
    }
}
