import Foundation
import Shards
import TestSupport
import Train
import XCTest

final class LoaderTests: XCTestCase {
    /// Every batch of one epoch: study ids and the raw bytes of all its tensors.
    private func epoch(_ loader: ShardLoader, _ number: Int = 0) throws -> [(ids: [Int64], bytes: [UInt8])] {
        let batches = loader.batches(from: LoaderPosition(epoch: number))
        var out: [(ids: [Int64], bytes: [UInt8])] = []
        while let batch = try batches.next() {
            out.append((batch.studyIDs, try batch.volumes.bytes() + batch.labels.bytes() + batch.present.bytes() + batch.keypoints.bytes()))
        }
        return out
    }

    func testSameBatchesForOneAndThreeThreadsWithKnownContents() throws {
        let dataset = try ShardDataset(directory: try LoaderFixtures.folder(count: 23, perShard: 5))
        let one = try ShardLoader(dataset: dataset, options: LoaderOptions(batchSize: 4, seed: 7, dropLast: false, threads: 1, prefetch: 2))
        let three = try ShardLoader(dataset: dataset, options: LoaderOptions(batchSize: 4, seed: 7, dropLast: false, threads: 3, prefetch: 2))
        let a = try epoch(one), b = try epoch(three)
        XCTAssertEqual(a.count, 6)
        XCTAssertEqual(a.map(\.ids), b.map(\.ids))
        XCTAssertTrue(zip(a, b).allSatisfy { $0.bytes == $1.bytes })
        XCTAssertEqual(Set(a.flatMap(\.ids)), Set((0..<23).map(LoaderFixtures.studyID)))
        XCTAssertNotEqual(a.flatMap(\.ids), (0..<23).map(LoaderFixtures.studyID), "shuffled")

        // The second batch's tensors hold exactly its samples' voxels, labels, flags and keypoints.
        let batch = try XCTUnwrap(three.batches(from: LoaderPosition(epoch: 0, batch: 1)).next())
        let seeds = batch.studyIDs.map { Int($0 - 2_000_000) }
        XCTAssertEqual(batch.volumes.shape, [4, 3, 6, 5, 4])
        XCTAssertEqual(batch.volumes.dtype, .float16)
        XCTAssertEqual(try batch.volumes.toArray(Float16.self), seeds.flatMap { LoaderFixtures.volume($0) })
        XCTAssertEqual(try batch.labels.toArray(Int64.self), seeds.flatMap { s in LoaderFixtures.sample(s).labels.map(Int64.init) })
        XCTAssertEqual(try batch.present.toArray(Float.self), seeds.flatMap { s in LoaderFixtures.sample(s).present.map(Float.init) })
        let keypoints = try batch.keypoints.toArray(Float.self)
        XCTAssertEqual(keypoints[9], 4.5 + Float(seeds[0]))
        XCTAssertTrue(keypoints[6].isNaN)
    }

    func testAnotherSeedAnotherOrderAndEachEpochItsOwn() throws {
        let dataset = try ShardDataset(directory: try LoaderFixtures.folder(count: 32, perShard: 4))
        func order(seed: UInt64, epoch: Int, window: Int = 8) throws -> [Int] {
            try ShardLoader(dataset: dataset, options: LoaderOptions(seed: seed, shuffleWindow: window)).order(epoch: epoch)
        }
        let base = try order(seed: 1, epoch: 0)
        XCTAssertEqual(base.sorted(), Array(0..<32))
        XCTAssertEqual(try order(seed: 1, epoch: 0), base)
        XCTAssertNotEqual(try order(seed: 2, epoch: 0), base)
        XCTAssertNotEqual(try order(seed: 1, epoch: 1), base)
        // Windows of 2 shards: each run of 8 positions (two whole shards of 4) draws from exactly two shards.
        let windowed = try order(seed: 3, epoch: 0, window: 2)
        XCTAssertEqual(windowed.sorted(), Array(0..<32))
        for start in stride(from: 0, to: 32, by: 8) {
            XCTAssertEqual(Set(windowed[start..<(start + 8)].map { dataset.locate($0).shard }).count, 2, "window at \(start)")
        }
        XCTAssertEqual(try ShardLoader(dataset: dataset, options: LoaderOptions(shuffle: false)).order(epoch: 3), Array(0..<32))
    }

    func testResumedLoaderContinuesWithTheInterruptedRunsNextBatch() throws {
        let dataset = try ShardDataset(directory: try LoaderFixtures.folder(count: 20, perShard: 6))
        let options = LoaderOptions(batchSize: 3, seed: 11, threads: 2, prefetch: 2)
        let full = try epoch(try ShardLoader(dataset: dataset, options: options), 2)
        XCTAssertEqual(full.count, 6)

        let interrupted = try ShardLoader(dataset: dataset, options: options).batches(from: LoaderPosition(epoch: 2))
        for _ in 0..<4 { _ = try interrupted.next() }
        let saved = try JSONEncoder().encode(interrupted.position)
        let position = try JSONDecoder().decode(LoaderPosition.self, from: saved)
        XCTAssertEqual(position, LoaderPosition(epoch: 2, batch: 4))

        let resumed = try ShardLoader(dataset: dataset, options: options).batches(from: position)
        let next = try XCTUnwrap(resumed.next())
        XCTAssertEqual(next.studyIDs, full[4].ids)
        XCTAssertEqual(try next.volumes.bytes() + next.labels.bytes() + next.present.bytes() + next.keypoints.bytes(), full[4].bytes)
        XCTAssertEqual(resumed.position, LoaderPosition(epoch: 2, batch: 5))
        XCTAssertNotNil(try resumed.next())
        XCTAssertNil(try resumed.next())
    }

    func testSelectionChannelSubsetAndLastPartialBatch() throws {
        let dataset = try ShardDataset(directory: try LoaderFixtures.folder(count: 12, perShard: 5))
        let fold: Set<Int64> = Set([1, 2, 3, 5, 8, 9, 10].map(LoaderFixtures.studyID))
        let options = LoaderOptions(batchSize: 3, shuffle: false, dropLast: false, threads: 2, channels: [2, 0])
        let loader = try ShardLoader(dataset: dataset, studies: fold, options: options)
        XCTAssertEqual(loader.batchesPerEpoch, 3)
        let batches = loader.batches(from: LoaderPosition(epoch: 0))
        var seen: [Int64] = []
        var sizes: [Int] = []
        while let batch = try batches.next() {
            seen += batch.studyIDs
            sizes.append(batch.count)
            let seeds = batch.studyIDs.map { Int($0 - 2_000_000) }
            XCTAssertEqual(batch.volumes.shape, [batch.count, 2, 6, 5, 4])
            XCTAssertEqual(try batch.volumes.toArray(Float16.self), seeds.flatMap { LoaderFixtures.volume($0, channels: [2, 0]) })
            XCTAssertEqual(try batch.present.toArray(Float.self), seeds.flatMap { [1, LoaderFixtures.sample($0).present[0]].map(Float.init) })
        }
        XCTAssertEqual(seen, [1, 2, 3, 5, 8, 9, 10].map(LoaderFixtures.studyID))
        XCTAssertEqual(sizes, [3, 3, 1])

        var dropping = options
        dropping.dropLast = true
        let dropped = try ShardLoader(dataset: dataset, studies: fold, options: dropping)
        XCTAssertEqual(dropped.batchesPerEpoch, 2)
        XCTAssertEqual(try epoch(dropped).flatMap(\.ids).count, 6)
    }

    func testWeightsOversampleARareStudy() throws {
        let dataset = try ShardDataset(directory: try LoaderFixtures.folder(count: 20, perShard: 10))
        let rare = LoaderFixtures.studyID(13)
        let loader = try ShardLoader(dataset: dataset, weights: [rare: 20], options: LoaderOptions(batchSize: 4, seed: 5, threads: 2))
        // Expected share 20 / 39 of the draws, against 1 / 20 unweighted.
        let drawn = try epoch(loader).flatMap(\.ids)
        XCTAssertEqual(drawn.count, 20)
        XCTAssertGreaterThanOrEqual(drawn.filter { $0 == rare }.count, 6)
        XCTAssertEqual(loader.order(epoch: 0), loader.order(epoch: 0))
        XCTAssertThrowsError(try ShardLoader(dataset: dataset, weights: Dictionary(uniqueKeysWithValues: dataset.studyIDs.map { ($0, 0.0) })))
    }

    func testReadersStopPrefetchBatchesAheadOfTheConsumer() throws {
        let dataset = try ShardDataset(directory: try LoaderFixtures.folder(count: 40, perShard: 8))
        let loader = try ShardLoader(dataset: dataset, options: LoaderOptions(batchSize: 2, threads: 3, prefetch: 2))
        let batches = loader.batches(from: LoaderPosition(epoch: 0))
        _ = try batches.next()
        // One batch taken: the readers may fill batches 1 and 2 (6 samples in all), then must wait. Three readers
        // counted as waiting is not yet that state: the consumer's wake-up after batch 0 leaves readers counted as
        // waiting until each takes the lock again (seen on a loaded machine: 3 waiting, 4 decoded). So wait for 6
        // decoded and all three waiting, then check that a while later none has decoded more.
        // Only a guard against a hang (the readers wait within milliseconds): generous on a loaded machine.
        let deadline = Date().addingTimeInterval(600)
        while (batches.readersWaiting < 3 || batches.samplesDecoded < 6) && Date() < deadline { usleep(1_000) }
        usleep(50_000)
        XCTAssertEqual(batches.readersWaiting, 3)
        XCTAssertEqual(batches.samplesDecoded, 6)
        var count = 1
        while try batches.next() != nil { count += 1 }
        XCTAssertEqual(count, 20)
        XCTAssertEqual(batches.samplesDecoded, 40)
        XCTAssertLessThanOrEqual(batches.peakBuffersInFlight, 2)
        // A second epoch reuses the buffers: 40 batches in all, at most prefetch + 2 buffers ever allocated.
        let again = loader.batches(from: LoaderPosition(epoch: 1))
        // A batch still held is never overwritten by later ones.
        var held: (batch: Batch, bytes: [UInt8])?
        while let next = try again.next() {
            if let held { XCTAssertEqual(try held.batch.volumes.bytes(), held.bytes) }
            held = (next, try next.volumes.bytes())
        }
        XCTAssertLessThanOrEqual(loader.buffersAllocated, 4)
    }

    /// The offsets of the zstd frames (magic 28 B5 2F FD) in a file: one per chunk, in writing order.
    private func frames(_ data: Data) -> [Int] {
        let bytes = [UInt8](data)
        return (0..<(bytes.count - 4)).filter { bytes[$0] == 0x28 && bytes[$0 + 1] == 0xB5 && bytes[$0 + 2] == 0x2F && bytes[$0 + 3] == 0xFD }
    }

    func testCorruptedChunkIsAnErrorNamingShardAndSample() throws {
        let dir = try LoaderFixtures.folder(count: 15, perShard: 5)
        let shard = dir.appendingPathComponent("shard-00001.h5")
        var data = try Data(contentsOf: shard)
        let starts = frames(data)
        XCTAssertEqual(starts.count, 15)
        // Frame 4 is sample 1, channel 1; garble its compressed body (size unchanged).
        for k in 8..<16 { data[starts[4] + k] ^= 0x5A }
        try data.write(to: shard)

        let dataset = try ShardDataset(directory: dir)
        let loader = try ShardLoader(dataset: dataset, options: LoaderOptions(batchSize: 2, shuffle: false, threads: 3, prefetch: 2))
        let batches = loader.batches(from: LoaderPosition(epoch: 0))
        for _ in 0..<3 { XCTAssertNotNil(try batches.next()) }
        XCTAssertThrowsError(try batches.next()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(shard.path + ": sample 1 (study 2000006)"), text)
            XCTAssertTrue(text.contains("channel 1"), text)
        }
        XCTAssertThrowsError(try batches.next(), "the error stays")
        XCTAssertEqual(batches.position, LoaderPosition(epoch: 0, batch: 3))

        var hashing = loader.options
        hashing.verifyChecksums = true
        let checked = try ShardLoader(dataset: try ShardDataset(directory: dir), options: hashing).batches(from: LoaderPosition(epoch: 0))
        for _ in 0..<2 { XCTAssertNotNil(try checked.next()) }
        XCTAssertThrowsError(try checked.next()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(shard.path + ": sample 0 (study 2000005): sha256 "), text)
            XCTAssertTrue(text.contains("differs from manifest.json's"), text)
        }
    }

    func testShardOfAnotherSizeThanTheManifestsIsRefusedNamingIt() throws {
        let dir = try LoaderFixtures.folder(count: 6, perShard: 3)
        let shard = dir.appendingPathComponent("shard-00001.h5")
        let handle = try FileHandle(forWritingTo: shard)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([1, 2, 3]))
        try handle.close()
        let loader = try ShardLoader(dataset: try ShardDataset(directory: dir), options: LoaderOptions(batchSize: 3, shuffle: false, threads: 2))
        let batches = loader.batches(from: LoaderPosition(epoch: 0))
        XCTAssertNotNil(try batches.next())
        XCTAssertThrowsError(try batches.next()) { error in
            // Two reader threads fail on samples of that shard; whichever fails first is reported, naming its sample.
            let named = (0..<3).contains { "\(error)".hasPrefix(shard.path + ": sample \($0) (study \(2000003 + $0)): size ") }
            XCTAssertTrue(named, "\(error)")
            XCTAssertTrue("\(error)".contains("differs from manifest.json's"), "\(error)")
        }
    }

    func testReadsAFolderThatH5pyWroteWithItsChecksums() throws {
        // bench/loader/make_shards.py: h5py + hdf5plugin shards (shuffle + zstd) and a manifest hashed by Python.
        let dir = try Fixtures.scratch().appendingPathComponent("shards")
        let script = Fixtures.repoRoot.appendingPathComponent("bench/loader/make_shards.py").path
        let made = try Fixtures.run(Fixtures.python, [script, dir.path, "5", "8", "2"])
        XCTAssertEqual(made.status, 0, made.stderr)
        let sums = try Fixtures.python("""
        import glob, sys, h5py, hdf5plugin, numpy as np
        for p in sorted(glob.glob(sys.argv[1] + "/shard-*.h5")):
            with h5py.File(p, "r") as f:
                for i, s in enumerate(f["study_id"][:]):
                    print(int(s), float(f["volumes"][i, 2].astype(np.float64).sum()), float(f["volumes"][i, 0].astype(np.float64).sum()))
        """, [dir.path])
        XCTAssertEqual(sums.status, 0, sums.stderr)
        var expected: [Int64: [Double]] = [:]
        for line in sums.stdout.split(separator: "\n") {
            let f = line.split(separator: " ")
            expected[Int64(f[0])!] = [Double(f[1])!, Double(f[2])!]
        }
        XCTAssertEqual(expected.count, 5)

        let options = LoaderOptions(batchSize: 2, dropLast: false, threads: 2, channels: [2, 0], verifyChecksums: true)
        let batches = try ShardLoader(dataset: try ShardDataset(directory: dir), options: options).batches(from: LoaderPosition(epoch: 0))
        var seen = 0
        while let batch = try batches.next() {
            let v = try batch.volumes.toArray(Float16.self)
            let per = 8 * 8 * 8
            for (k, id) in batch.studyIDs.enumerated() {
                for c in 0..<2 {
                    let sum = v[((2 * k + c) * per)..<((2 * k + c + 1) * per)].reduce(0.0) { $0 + Double($1) }
                    XCTAssertEqual(sum, try XCTUnwrap(expected[id])[c], accuracy: 1e-6, "study \(id) channel \(c)")
                }
                seen += 1
            }
        }
        XCTAssertEqual(seen, 5)
    }
}
