import Foundation
import Shards
import TestSupport
@testable import Train
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
            flat = torch.arange(12, dtype=torch.float32) * 0.25
            pg.allreduce([flat]).wait()
            print(" ".join(repr(v) for v in flat[10:].tolist()))
            b = torch.zeros(16, dtype=torch.uint8)
            pg.broadcast(b, 0).wait()
            print(" ".join(repr(v) for v in b[:8].view(torch.float32).tolist() + b[8:].view(torch.int64).tolist()))
            """)
        let group = try ProcessGroup(environment(port: port), backend: .gloo, timeout: .seconds(60))
        XCTAssertEqual(group.backendName, "gloo")
        XCTAssertTrue(group.summary.hasPrefix("rank 0 of 2"), group.summary)
        XCTAssertEqual(try group.allReduce([1.5, -2.0, 3.0]), [1.75, 2.0, 2.0])

        // Two parameters in one bucket; backward's hooks fill it (b's gradient doubled by its factor, then the bucket
        // scaled by 0.5) and start its all-reduce; the peer adds 0.25 × (0 ..< 12) to the flattened bucket, whose last
        // two entries are the parameters' "had a gradient" flags (1 each here).
        let a = try Tensor(Array(repeating: Float(0), count: 6), shape: [2, 3]), b = try Tensor(Array(repeating: Float(0), count: 4))
        a.requiresGrad = true
        b.requiresGrad = true
        let ca = (0..<6).map { Float($0) + 1 }, cb: [Float] = [-8, 2, 4, 10]
        let reducer = try BucketReducer(group: group, parameters: [a, b], bucketEnds: [2], buffers: [])
        try reducer.begin(factors: [1, 2], scale: 0.5)
        try ((a * (try Tensor(ca, shape: [2, 3]))).sum() + (b * (try Tensor(cb))).sum()).backward()
        XCTAssertEqual(reducer.startedDuringBackward, 1, "the bucket's all-reduce starts inside backward")
        try reducer.finish()
        let expected = ca.enumerated().map { 0.5 * $0.element + 0.25 * Float($0.offset) }
            + cb.enumerated().map { $0.element + 0.25 * Float(6 + $0.offset) }
        XCTAssertEqual(try XCTUnwrap(a.grad).toArray(Float.self) + XCTUnwrap(b.grad).toArray(Float.self), expected)
        XCTAssertEqual(a.grad?.shape, [2, 3])
        // Tensors of two dtypes in one broadcast, each at a multiple of 8 bytes.
        try group.broadcast([try Tensor([Float(7), -3]), try Tensor([Int64(5)])], root: 0)
        let output = try peer.finish()
        XCTAssertEqual(output.status, 0, output.stderr)
        XCTAssertEqual(output.stdout.split(separator: "\n"), ["1.75 2.0 2.0", "3.5 3.75", "7.0 -3.0 5"])
    }

    func testADeadRankMakesTheOtherFailInsteadOfHanging() throws {
        try requireGloo()
        let port = try freePort()
        let peer = try pythonPeer(port: port, script: "pg.barrier().wait()\nos.kill(os.getpid(), signal.SIGKILL)")
        // The peer's death is seen at once through its closed connection; the timeout only bounds a hang.
        let group = try ProcessGroup(environment(port: port), backend: .gloo, timeout: .seconds(60))
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

    /// The default two-stage model (BatchNorm in both stages, the localizer's own loss) on two ranks sums its gradients
    /// into the global batch's, as one process weighs them: the classifier's by each rank's share of the ordinal loss's
    /// class weights, the localizer's by its share of the labelled canal points its loss averages (here 10 of 17 on
    /// rank 0, while its share of the class weights differs); and rank 0's BatchNorm statistics reach rank 1.
    /// BatchNorm normalises over each rank's own samples (as DDP without SyncBatchNorm), so the one-process reference
    /// runs the model on each rank's half and weighs the two halves' losses as one loss over the whole batch would.
    func testTwoRanksOfTheTwoStageModelStepAsOneProcessWeighsTheirHalves() throws {
        try requireGloo()
        let folder = try TrainerCohort.make(studies: 4, keypoints: true)
        let loader = try ShardLoader(dataset: try ShardDataset(directory: folder),
                                     options: LoaderOptions(batchSize: 4, shuffle: false, dropLast: false, threads: 1))
        let batch = try XCTUnwrap(try loader.batches(from: LoaderPosition(epoch: 0)).next())
        // Rank 1's second study loses three of its five canal points: 10 labelled points on rank 0, 7 on rank 1.
        var points = try batch.keypoints.toArray(Float.self)
        for i in (3 * 25 * 3)..<(3 * 25 * 3 + 9) { points[i] = .nan }
        let keypoints = try Tensor(points, shape: [4, 25, 3])
        let x = try batch.volumes.to(.float32, device: .cpu)
        func half(_ t: Tensor, _ r: Int) throws -> Tensor { try t.narrow(0, start: 2 * r, length: 2).contiguous() }
        // The default two-stage model (tinyConfig's), with nothing random in its step: the ranks' threads share
        // libtorch's generator, so no jitter, dropout or stochastic depth.
        var config = tinyConfig(epochs: 1)
        config.twoStage?.jitter = 0
        // The localizer learns the canal points alone here, so its terms are the canal points counted above; with condition
        // points (the default) it averages every label column's, by the same reduction (TwoStageTrainingTests counts them).
        config.twoStage?.conditionPoints = false
        // Crops of the grid: what is tested is how the ranks' gradients are weighed, the same whatever the crops read
        // (the source crops' own tests are SourceCropsTests and TwoStageTrainingTests).
        config.twoStage?.sourceCrops = false
        let layout = try XCTUnwrap(try config.modelSpec(gridSize: [16, 16, 16]).twoStage)
        var network = EfficientNetConfig.b0
        network.width = 0.25
        network.dropout = 0
        network.stochasticDepth = 0
        func model() throws -> OrdinalClassifier {
            Torch.manualSeed(21)
            let m = try OrdinalClassifier(backbone: try TwoStageBackbone(inner: try EfficientNet3D(network), layout: layout))
            m.train()
            return m
        }
        let loss = CumulativeLinkLoss()
        let weights = try (0..<2).map { try loss.weightSum(half(batch.labels, $0)) }
        let shareOfWeights = weights[0] / (weights[0] + weights[1]), shareOfPoints = 10.0 / 17
        XCTAssertGreaterThan(Swift.abs(shareOfWeights - shareOfPoints), 0.05, "the two weightings must differ for this test to tell them apart")

        // One process: each half through the model, the losses weighed as one loss over the batch.
        let reference = try model()
        let named = reference.namedParameters()
        var buffersAfterRankZero: [String: [Float]] = [:]
        for r in 0..<2 {
            let output = try reference.forward(ModelInput(try half(x, r), keypoints: try half(keypoints, r)))
            let localization = try XCTUnwrap(output.extraLosses.first)
            XCTAssertEqual(try localization.terms.item(), r == 0 ? 10 : 7)
            let share = r == 0 ? shareOfPoints : 1 - shareOfPoints
            let value = try loss(output.probabilities, try half(batch.labels, r)) * (weights[r] / (weights[0] + weights[1]))
                + localization.value * (localization.weight * share)
            try value.backward()
            if r == 0 {
                for (name, b) in reference.namedBuffers() where b.dtype == .float32 { buffersAfterRankZero[name] = try b.toArray(Float.self) }
            }
        }
        let expected = try Dictionary(uniqueKeysWithValues: named.map { ($0.0, try XCTUnwrap($0.1.grad).toArray(Float.self)) })

        // Two ranks, one thread each, over Gloo: one TrainingStep each on its half (rate 0 and no clipping: the gradients
        // the step leaves are the reduced ones).
        final class Rank: @unchecked Sendable {
            var model: OrdinalClassifier?, error: Error?, grads: [String: [Float]] = [:], buffers: [String: [Float]] = [:]
            var run: (() throws -> Void)?, buckets = 0, startedDuringBackward = 0
        }
        let port = try LaunchEnvironment.freeLoopbackPort()
        let ranks = [Rank(), Rank()]
        for r in 0..<2 {
            let m = try model()
            ranks[r].model = m
            let xr = try half(x, r), lr = try half(batch.labels, r), kr = try half(keypoints, r)
            var env = environment(port: port)
            env.rank = r
            env.localRank = r
            ranks[r].run = { [env] in
                let group = try ProcessGroup(env, backend: .gloo, timeout: .seconds(600))
                let step = TrainingStep(model: m, optimizer: try AdamW(m.namedParameters(), learningRate: 0, weightDecay: 0), clipNorm: nil)
                // Buckets of 64 KiB (the first 16 KiB): many buckets, so one reduced twice or skipped shows.
                step.allReduce = try GradientAllReduce(group: group, parameters: m.namedParameters(), groups: m.parameterGroups,
                                                       buffers: m.namedBuffers(), firstBucketBytes: 16 << 10, bucketBytes: 64 << 10)
                try step.allReduce?.synchronizeModel()
                try step(xr, labels: lr, keypoints: kr)
                ranks[r].buckets = step.allReduce?.buckets.ends.count ?? 0
                ranks[r].startedDuringBackward = step.allReduce?.bucketsStartedDuringBackward ?? 0
                for (name, p) in m.namedParameters() { ranks[r].grads[name] = try p.grad?.toArray(Float.self) }
                for (name, b) in m.namedBuffers() where b.dtype == .float32 { ranks[r].buffers[name] = try b.toArray(Float.self) }
            }
        }
        let done = DispatchGroup()
        for rank in ranks {
            done.enter()
            Thread {
                do { try rank.run?() } catch { rank.error = error }
                done.leave()
            }.start()
        }
        // Only a guard against a hang (the step takes seconds): generous on a loaded machine.
        XCTAssertEqual(done.wait(timeout: .now() + 600), .success, "the ranks hung")
        for (r, rank) in ranks.enumerated() { XCTAssertNil(rank.error, "rank \(r): \(String(describing: rank.error))") }

        for rank in ranks {
            XCTAssertGreaterThan(rank.buckets, 5)
            XCTAssertGreaterThan(rank.startedDuringBackward, rank.buckets / 2, "most buckets start while backward runs")
        }
        // Every group's gradients as one process's, up to the order of float sums.
        let localizer = named.map(\.0).filter { $0.hasPrefix("backbone.localizer.") }
        XCTAssertFalse(localizer.isEmpty)
        for (r, rank) in ranks.enumerated() {
            for names in [localizer, named.map(\.0).filter { !$0.hasPrefix("backbone.localizer.") }] {
                var difference = 0.0, norm = 0.0
                for name in names {
                    let want = try XCTUnwrap(expected[name]), got = try XCTUnwrap(rank.grads[name], name)
                    for (a, b) in zip(want, got) { difference += Double(a - b) * Double(a - b); norm += Double(a) * Double(a) }
                }
                XCTAssertGreaterThan(norm, 0)
                XCTAssertLessThan((difference / norm).squareRoot(), 1e-4, "rank \(r), \(names.first!)…: ‖Δ‖/‖g‖")
            }
        }
        // BatchNorm's running statistics: rank 0's, on both ranks (rank 1's own half would give others).
        XCTAssertFalse(buffersAfterRankZero.isEmpty)
        for (name, want) in buffersAfterRankZero {
            for rank in ranks {
                let got = try XCTUnwrap(rank.buffers[name], name)
                XCTAssertLessThan(zip(want, got).map { Swift.abs($0 - $1) }.max() ?? 0, 1e-5, name)
            }
        }
        let statistic = try XCTUnwrap(buffersAfterRankZero.keys.sorted().first { $0.hasPrefix("backbone.localizer.") && $0.hasSuffix("running_mean") })
        XCTAssertNotEqual(try reference.namedBuffers().first { $0.0 == statistic }.map { try $0.1.toArray(Float.self) },
                          buffersAfterRankZero[statistic], "rank 1's half moves one process's statistics further")
    }

    /// Two ranks, 12 parameters in 6 buckets of at most 32 bytes: every bucket is summed exactly once, whatever order
    /// backward fills them in (one reduced twice or skipped would double or drop the other rank's share). A parameter
    /// only rank 0 uses (p1) gets rank 0's gradient on both ranks; one no rank uses (p0) gets none (not zeros, which
    /// AdamW's weight decay and moments would treat as a step); and neither hangs the reducer.
    func testEveryBucketIsSummedOnceAndUnusedParametersDoNotHang() throws {
        try requireGloo()
        let sizes = [3, 1, 4, 2, 5, 2, 6, 1, 3, 2, 4, 2]
        // Rank r's loss: Σ_i c_ri · Σ_j (j + 1) p_ij², so ∂/∂p_ij = 2 c_ri (j + 1) p_ij, with p_ij = i + j/4 at the start
        // (every product exact in float32, so the sums are asserted exactly).
        @Sendable func coefficient(_ r: Int, _ i: Int) -> Double { i == 0 || (i == 1 && r == 1) ? 0 : Double(r + 1) * (i % 3 == 0 ? -1 : 1) }
        @Sendable func start(_ i: Int, _ j: Int) -> Float { Float(i) + Float(j) / 4 }
        final class Rank: @unchecked Sendable { var grads: [[Float]?] = [], error: Error?, buckets = 0, started = 0 }
        let port = try freePort()
        let ranks = [Rank(), Rank()]
        let done = DispatchGroup()
        for r in 0..<2 {
            var env = environment(port: port)
            env.rank = r
            done.enter()
            Thread { [env] in
                defer { done.leave() }
                do {
                    let group = try ProcessGroup(env, backend: .gloo, timeout: .seconds(600))
                    let parameters = try sizes.enumerated().map { i, n in
                        let p = try Tensor((0..<n).map { start(i, $0) })
                        p.requiresGrad = true
                        return ("p\(i)", p)
                    }
                    let reduce = try GradientAllReduce(group: group, parameters: parameters, firstBucketBytes: 16, bucketBytes: 32)
                    // Both ranks weigh 1: each rank's gradients are halved and summed.
                    XCTAssertEqual(try reduce.beginStep(localLoss: Double(r), localWeight: 1), 0.5)
                    var loss: Tensor?
                    for (i, (_, p)) in parameters.enumerated() where coefficient(r, i) != 0 {
                        let ramp = try Tensor((0..<sizes[i]).map { Float($0 + 1) })
                        let term = try (p * p * ramp).sum() * coefficient(r, i)
                        loss = try loss.map { try $0 + term } ?? term
                    }
                    try XCTUnwrap(loss).backward()
                    try reduce.finishStep()
                    ranks[r].grads = try parameters.map { try $0.1.grad?.toArray(Float.self) }
                    ranks[r].buckets = reduce.buckets.ends.count
                    ranks[r].started = reduce.bucketsStartedDuringBackward
                } catch { ranks[r].error = error }
            }.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 600), .success, "the ranks hung")
        for (r, rank) in ranks.enumerated() { XCTAssertNil(rank.error, "rank \(r): \(String(describing: rank.error))") }
        for rank in ranks {
            // Reverse order, 16 bytes then 32: [p11] [p10 p9] [p8 p7] [p6 p5] [p4 p3] [p2 p1 p0]. Every bucket but the last
            // (p0 and p1 never fill in backward on rank 1) starts during backward.
            XCTAssertEqual(rank.buckets, 6)
            XCTAssertEqual(rank.started, 5)
            for i in sizes.indices {
                if i == 0 { XCTAssertNil(rank.grads[i], "p0: no rank used it"); continue }
                let want = (0..<sizes[i]).map { j in
                    Float((0..<2).map { 0.5 * 2 * coefficient($0, i) * Double(j + 1) * Double(start(i, j)) }.reduce(0, +))
                }
                XCTAssertEqual(try XCTUnwrap(rank.grads[i], "p\(i)"), want, "p\(i)")
            }
        }
    }

    // MARK: helpers

    /// A bridge without Gloo fails these tests rather than skipping them: CI builds it with Gloo
    /// (scripts/build-torch-shim.sh refuses to drop it unless FUSE3D_WITHOUT_GLOO=1), so a skip would hide a lost backend.
    private func requireGloo() throws {
        guard try ProcessGroup.availableBackends().contains(.gloo) else {
            throw DistributedError("the libtorch bridge was built without Gloo, so the data-parallel tests cannot run: "
                                   + "apt-get install libgloo-dev; make torch")
        }
    }

    private func environment(port: Int) -> LaunchEnvironment {
        LaunchEnvironment(rank: 0, worldSize: 2, localRank: 0, localWorldSize: 2, masterAddress: "127.0.0.1", masterPort: port,
                          agentStore: false, storePrefix: "", launcher: "test")
    }

    private func freePort() throws -> Int { try LaunchEnvironment.freeLoopbackPort() }

    /// Rank 1 in PyTorch itself: a TCPStore client under the prefix fuse3d's ranks use, ProcessGroupGloo, then `script`.
    /// Returns once the peer has imported torch (seconds, more on a loaded machine), so that the rendezvous timeout
    /// the test gives rank 0 covers the rendezvous only, not Python's start.
    private func pythonPeer(port: Int, script: String) throws -> Peer {
        let ready = try Fixtures.scratch("peer-ready").appendingPathComponent("imported")
        let code = """
            import os, signal, sys, datetime, torch, torch.distributed as dist
            open(\(String(reflecting: ready.path)), "w").close()
            store = dist.PrefixStore("fuse3d", dist.TCPStore("127.0.0.1", \(port), 2, False, timeout=datetime.timedelta(seconds=60)))
            pg = dist.ProcessGroupGloo(store, 1, 2, datetime.timedelta(seconds=60))

            """ + script + """

            # Leave without the interpreter's teardown: destroying the process group there while its Gloo threads are
            # still joinable aborts now and then ("terminate called without an active exception") after the work is done.
            sys.stdout.flush()
            os._exit(0)
            """
        let peer = try Peer(Fixtures.python, ["-c", code])
        // Only a guard against a hang (importing torch takes seconds): generous on a loaded machine.
        let deadline = Date().addingTimeInterval(600)
        while !FileManager.default.fileExists(atPath: ready.path) && peer.process.isRunning && Date() < deadline { usleep(10_000) }
        guard FileManager.default.fileExists(atPath: ready.path) else {
            let output = try peer.finish()
            throw DistributedError("the Python peer never imported torch (status \(output.status)): \(output.stderr)")
        }
        return peer
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
