import Foundation
import Shards
import TestSupport
import Train
import XCTest

/// Data-parallel pieces: the launchers' environments, the ranks' share of the order, DDP's buckets, and
/// c10d's Gloo collectives against a second, real process (PyTorch's own ProcessGroupGloo in the .venv).
final class DistributedTests: XCTestCase {
    func testTorchrunEnvironmentWithTheAgentStore() throws {
        let env = try XCTUnwrap(LaunchEnvironment.detect([
            "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "node7",
            "MASTER_PORT": "29411", "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "2",
        ]))
        XCTAssertEqual(env, LaunchEnvironment(rank: 3, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddress: "node7",
                                              masterPort: 29411, agentStore: true, storePrefix: "/worker/attempt_2",
                                              launcher: "torchrun"))
        XCTAssertFalse(env.servesStore)
        XCTAssertNil(try LaunchEnvironment.detect(["RANK": "0", "WORLD_SIZE": "1"]), "one rank is no group")
        XCTAssertNil(try LaunchEnvironment.detect([:]))
        XCTAssertThrowsError(try LaunchEnvironment.detect(["RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "1"])) {
            XCTAssertTrue("\($0)".contains("MASTER_ADDR"), "\($0)")
        }
        XCTAssertThrowsError(try LaunchEnvironment.detect(["RANK": "two", "WORLD_SIZE": "2"])) {
            XCTAssertTrue("\($0)".contains("RANK=\"two\""), "\($0)")
        }
    }

    func testSlurmEnvironmentMeetsAtTheFirstNode() throws {
        let env = try XCTUnwrap(LaunchEnvironment.detect([
            "SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1", "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
            "SLURM_JOB_NODELIST": "gpu[07-09,12],cpu3",
        ]))
        XCTAssertEqual(env, LaunchEnvironment(rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4, masterAddress: "gpu07",
                                              masterPort: 29500, agentStore: false, storePrefix: "", launcher: "slurm"))
        XCTAssertEqual(LaunchEnvironment.firstHost(ofNodeList: "a1,b2"), "a1")
        XCTAssertEqual(LaunchEnvironment.firstHost(ofNodeList: "n[3]"), "n3")
        XCTAssertNil(LaunchEnvironment.firstHost(ofNodeList: "n[3"))
        XCTAssertNil(try LaunchEnvironment.detect(["SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1"]))
    }

    func testRankSharesTogetherAreTheSingleProcessBatches() throws {
        let order = (0..<23).map { 100 + $0 }
        let shares = (0..<3).map { RankShare(rank: $0, ranks: 3).share(of: order, batchSize: 2) }
        XCTAssertEqual(shares[1], [102, 103, 108, 109, 114, 115])
        // Global batch k is rank 0's k-th batch, then rank 1's, then rank 2's: the first 18 samples in order.
        let interleaved = (0..<3).flatMap { k in shares.flatMap { Array($0[(2 * k)..<(2 * k + 2)]) } }
        XCTAssertEqual(interleaved, Array(order.prefix(18)))

        // Through the loader: two ranks of batch 2 read, batch by batch, the study ids one process reads in batches of 4.
        let dataset = try ShardDataset(directory: try LoaderFixtures.folder(count: 19, perShard: 5))
        func ids(_ options: LoaderOptions) throws -> [[Int64]] {
            let epoch = try ShardLoader(dataset: dataset, options: options).batches(from: LoaderPosition(epoch: 1))
            var out: [[Int64]] = []
            while let batch = try epoch.next() { out.append(batch.studyIDs) }
            return out
        }
        let single = try ids(LoaderOptions(batchSize: 4, seed: 3, threads: 2, prefetch: 2))
        var halves: [[[Int64]]] = []
        for rank in 0..<2 {
            var options = LoaderOptions(batchSize: 2, seed: 3, threads: 2, prefetch: 2)
            options.rankShare = RankShare(rank: rank, ranks: 2)
            XCTAssertEqual(try ShardLoader(dataset: dataset, options: options).batchesPerEpoch, 4)
            halves.append(try ids(options))
        }
        XCTAssertEqual(single.count, 4)
        XCTAssertEqual(zip(halves[0], halves[1]).map { $0 + $1 }, single)
        var undropped = LoaderOptions(batchSize: 2, dropLast: false)
        undropped.rankShare = RankShare(rank: 0, ranks: 2)
        XCTAssertThrowsError(try ShardLoader(dataset: dataset, options: undropped))
    }

    func testBucketsAreDDPs() {
        let mib = 1 << 20
        // Reverse order: 16 MiB alone (the first bucket's 1 MiB cap), 10 MiB, 30 MiB alone (over 25), then the small ones.
        let buckets = GradientBuckets(byteCounts: [4, 600_000, 600_000, 30 * mib, 10 * mib, 16 * mib])
        XCTAssertEqual(buckets.order, [5, 4, 3, 2, 1, 0])
        XCTAssertEqual(buckets.ends, [1, 2, 3, 6])
        XCTAssertEqual(GradientBuckets(byteCounts: [400_000, 400_000, 400_000]).ends, [2, 3])
        XCTAssertEqual(GradientBuckets(byteCounts: []).ends, [])
    }

    func testRankWeightsAreTheLossNormaliserAndTheBatchSplitsEvenly() throws {
        // Labels (2, 3): classes 0, 2, missing / 1, 1, 2 with weights 1, 2, 4 → 1 + 4 + 2 + 2 + 4 = 13.
        let labels = try Tensor([Int64(0), 2, -1, 1, 1, 2], shape: [2, 3])
        let loss = CumulativeLinkLoss()
        XCTAssertEqual(try loss.weightSum(labels), 13)
        // The loss is Σ w·(−log p) / Σ w: with every probability 1/2 it is log 2 whatever the weights, so the
        // weighted sum the ranks add up is 13 · log 2.
        let probs = try Tensor([Float](repeating: 0.5, count: 18), shape: [2, 3, 3])
        XCTAssertEqual(try loss(probs, labels).item() * loss.weightSum(labels), 13 * Foundation.log(2.0), accuracy: 1e-5)
        let one = TrainingRanks.single
        XCTAssertEqual(try one.localBatch(6), 6)
        XCTAssertEqual(one.validationShare([5, 6, 7]), [5, 6, 7])
    }

    func testAllReduceAgainstAPyTorchRankSumsAsOneProcess() throws {
        try requireGloo()
        let port = try freePort()
        let peer = try pythonPeer(port: port, script: """
            t = torch.tensor([0.25, 4.0, -1.0], dtype=torch.float64)
            pg.allreduce([t]).wait()
            print(" ".join(repr(v) for v in t.tolist()))
            flat = torch.arange(10, dtype=torch.float32) * 0.25
            pg.allreduce([flat]).wait()
            b = torch.tensor([7.0, -3.0])
            pg.broadcast(b, 0).wait()
            print(" ".join(repr(v) for v in b.tolist()))
            """)
        let group = try ProcessGroup(environment(port: port), backend: .gloo, timeout: .seconds(60))
        XCTAssertEqual(group.backendName, "gloo")
        XCTAssertTrue(group.summary.hasPrefix("rank 0 of 2"), group.summary)
        XCTAssertEqual(try group.allReduce([1.5, -2.0, 3.0]), [1.75, 2.0, 2.0])

        // Two tensors in one bucket, scaled by 0.5 here; the peer adds 0.25 × (0 ..< 10) to the flattened bucket.
        let a = try Tensor((0..<6).map { Float($0) + 1 }, shape: [2, 3]), b = try Tensor([Float(-8), 2, 4, 10])
        try group.allReduceBuckets([a, b], bucketEnds: [2], scale: 0.5)
        let flat = (0..<6).map { Float($0) + 1 } + [-8, 2, 4, 10]
        let expected = flat.enumerated().map { 0.5 * $0.element + 0.25 * Float($0.offset) }
        XCTAssertEqual(try a.toArray(Float.self) + b.toArray(Float.self), expected)
        XCTAssertEqual(a.shape, [2, 3])
        let sent = try Tensor([Float(7), -3])
        try group.broadcast(sent, root: 0)
        let output = try peer.finish()
        XCTAssertEqual(output.status, 0, output.stderr)
        XCTAssertEqual(output.stdout.split(separator: "\n"), ["1.75 2.0 2.0", "7.0 -3.0"])
    }

    func testADeadRankMakesTheOtherFailInsteadOfHanging() throws {
        try requireGloo()
        let port = try freePort()
        let peer = try pythonPeer(port: port, script: "pg.barrier().wait()\nos.kill(os.getpid(), signal.SIGKILL)")
        let group = try ProcessGroup(environment(port: port), backend: .gloo, timeout: .seconds(20))
        try group.barrier()
        XCTAssertThrowsError(try group.allReduce(Tensor([Float(1), 2]))) { error in
            XCTAssertTrue(error is DistributedError, "\(error)")
            XCTAssertTrue("\(error)".contains("rank 0 of 2: all-reduce failed"), "\(error)")
        }
        XCTAssertEqual(try peer.finish().status, 9)
    }

    func testMissingStoreFailsWithinTheTimeoutNamingIt() throws {
        try requireGloo()
        let port = try freePort()
        var env = environment(port: port)
        env.rank = 1
        XCTAssertThrowsError(try ProcessGroup(env, backend: .gloo, timeout: .seconds(3))) { error in
            XCTAssertTrue("\(error)".contains("cannot reach the rendezvous store at 127.0.0.1:\(port)"), "\(error)")
        }
    }

    // MARK: helpers

    private func requireGloo() throws {
        guard try ProcessGroup.availableBackends().contains(.gloo) else {
            throw XCTSkip("the libtorch bridge was built without Gloo (apt-get install libgloo-dev; make torch)")
        }
    }

    private func environment(port: Int) -> LaunchEnvironment {
        LaunchEnvironment(rank: 0, worldSize: 2, localRank: 0, localWorldSize: 2, masterAddress: "127.0.0.1", masterPort: port,
                          agentStore: false, storePrefix: "", launcher: "test")
    }

    private func freePort() throws -> Int { try LaunchEnvironment.freeLoopbackPort() }

    /// Rank 1 in PyTorch itself: a TCPStore client under the prefix fuse3d's ranks use, ProcessGroupGloo, then `script`.
    private func pythonPeer(port: Int, script: String) throws -> Peer {
        let code = """
            import os, signal, sys, datetime, torch, torch.distributed as dist
            store = dist.PrefixStore("fuse3d", dist.TCPStore("127.0.0.1", \(port), 2, False, timeout=datetime.timedelta(seconds=60)))
            pg = dist.ProcessGroupGloo(store, 1, 2, datetime.timedelta(seconds=60))

            """ + script + """

            # Leave without the interpreter's teardown: destroying the process group there while its Gloo threads are
            # still joinable aborts now and then ("terminate called without an active exception") after the work is done.
            sys.stdout.flush()
            os._exit(0)
            """
        return try Peer(Fixtures.python, ["-c", code])
    }

    /// A process running beside the test, its output collected when it ends.
    private final class Peer {
        let process = Process()
        let out = Pipe(), err = Pipe()

        init(_ executable: URL, _ arguments: [String]) throws {
            process.executableURL = executable
            process.arguments = arguments
            process.standardOutput = out
            process.standardError = err
            try process.run()
        }

        func finish() throws -> (status: Int32, stdout: String, stderr: String) {
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
                    String(decoding: stderr, as: UTF8.self))
        }
    }
}
