import Foundation
import TestSupport
import Train
import XCTest

final class CheckpointTests: XCTestCase {
    func testSafeTensorsRoundTripKeepsDTypesShapesAndMetadata() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.safetensors")
        let tensors = [
            "a": try Tensor([Float(1.5), -2, 3, 4, 5, 6], shape: [2, 3]),
            "b": try Tensor([Float16(0.5)], shape: [1]),
            "c": try Tensor(bfloat16Bits: [0x3FC0], shape: []),
            "d": try Tensor([Int64(-1), 7], shape: [2]),
        ]
        try SafeTensors.write(tensors, metadata: ["epoch": "3"], to: url)
        let (back, meta) = try SafeTensors.read(url)
        XCTAssertEqual(meta, ["epoch": "3"])
        XCTAssertEqual(try back["a"]?.toArray(Float.self), [1.5, -2, 3, 4, 5, 6])
        XCTAssertEqual(back["a"]?.shape, [2, 3])
        XCTAssertEqual(back["b"]?.dtype, .float16)
        XCTAssertEqual(back["c"]?.dtype, .bfloat16)
        XCTAssertEqual(try back["c"]?.item(), 1.5)
        XCTAssertEqual(try back["d"]?.toArray(Int64.self), [-1, 7])
        // Python's safetensors reads the same file.
        let r = try Fixtures.python("""
            import sys; from safetensors.torch import load_file; t = load_file(sys.argv[1])
            print(t["a"].tolist(), t["c"].dtype, t["d"].tolist())
            """, [url.path])
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       "[[1.5, -2.0, 3.0], [4.0, 5.0, 6.0]] torch.bfloat16 [-1, 7]", r.stderr)
    }

    func testCheckpointResumesModelOptimizerScheduleAndRNG() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ckpt.safetensors")
        let spec = ModelSpec(name: "efficientnet3d", inputSize: [16, 16, 16], width: 0.25, heads: 3)
        Torch.manualSeed(1)
        let x = try Tensor.randn([2, 3, 16, 16, 16])
        let labels = try Tensor([Int64(0), 1, 2, 2, -1, 0], shape: [2, 3])
        let schedule = WarmupCosine(peak: 1e-3, warmup: 2, total: 10)

        let model = try spec.make()
        let opt = try AdamW(model.namedParameters(), learningRate: 1e-3)
        let step = TrainingStep(model: model, optimizer: opt, schedule: schedule)
        try step(x, labels: labels)
        try Checkpoint(epoch: 2, step: step.step, info: ["model": "efficientnet3d"]).save(model: model, optimizer: opt, to: url)
        let afterSave = try Tensor.rand([4]).toArray(Float.self)
        let lossA = try step(x, labels: labels)

        Torch.manualSeed(99)
        let restored = try spec.make()
        let opt2 = try AdamW(restored.namedParameters(), learningRate: 1e-3)
        let record = try Checkpoint.load(url, into: restored, optimizer: opt2)
        XCTAssertEqual(record.epoch, 2)
        XCTAssertEqual(record.step, 1)
        XCTAssertEqual(record.info, ["model": "efficientnet3d"])
        XCTAssertEqual(try Tensor.rand([4]).toArray(Float.self), afterSave, "RNG state restored")
        let step2 = TrainingStep(model: restored, optimizer: opt2, schedule: schedule, step: record.step)
        let lossB = try step2(x, labels: labels)
        // Same weights, moments, schedule position and dropout/stochastic-depth draws → the same step.
        XCTAssertEqual(lossA, lossB, accuracy: 1e-6)
        for ((name, a), (_, b)) in zip(model.namedParameters(), restored.namedParameters()) {
            XCTAssertLessThan(try (a - b).abs().max().item(), 1e-6, name)
        }
    }

    func testOptimizerStateOfAnotherKindIsRejected() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ckpt.safetensors")
        let model = try LogisticCumulativeLink(heads: 2, classes: 3)
        try Checkpoint(epoch: 0, step: 0).save(model: model, optimizer: try SGD(model.namedParameters(), learningRate: 1), to: url)
        XCTAssertThrowsError(try Checkpoint.load(url, into: model, optimizer: try AdamW(model.namedParameters()))) { error in
            XCTAssertTrue("\(error)".contains("holds no AdamW state"), "\(error)")
        }
    }
}

final class SafeTensorsErrorTests: XCTestCase {
    func testTruncatedFileNamesTheFileAndTheProblem() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("cut.safetensors")
        try SafeTensors.write(["w": try Tensor.ones([64])], to: url)
        let data = try Data(contentsOf: url)
        try data.prefix(data.count - 8).write(to: url)
        XCTAssertThrowsError(try SafeTensors.read(url)) { error in
            XCTAssertEqual("\(error)", "\(url.path): w: data range [0, 256] beyond the file")
        }
    }
}
