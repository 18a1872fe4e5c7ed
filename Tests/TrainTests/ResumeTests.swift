import Foundation
import Shards
import TestSupport
import XCTest
@testable import Train

final class ResumeTests: XCTestCase {
    /// Every tensor of a checkpoint file, as bytes.
    private func contents(_ url: URL) throws -> [String: [UInt8]] {
        try SafeTensors.read(url).tensors.mapValues { try $0.bytes() }
    }

    func testAStoppedAndResumedFoldEndsBitIdenticalToAnUninterruptedOne() throws {
        let shards = try TrainerCohort.make(studies: 10, keypoints: true)
        var config = tinyConfig(epochs: 2)
        config.emaDecay = 0.9
        config.checkpointEvery = 2
        let dataset = try ShardDataset(directory: shards)

        let straight = try Fixtures.scratch("straight")
        try Trainer(config: config, dataset: dataset, run: straight).train(folds: [0])

        // Stopped mid-epoch (step 3 of 2 × 2), then mid-way again at an epoch boundary, then resumed to the end.
        let interrupted = try Fixtures.scratch("interrupted")
        for stop in [3, 1] {
            let t = try Trainer(config: config, dataset: dataset, run: interrupted)
            t.stopAfterSteps = stop
            XCTAssertThrowsError(try t.train(folds: [0], resume: true)) { XCTAssertTrue($0 is Trainer.Stopped, "\($0)") }
        }
        try Trainer(config: config, dataset: dataset, run: interrupted).train(folds: [0], resume: true)

        for name in ["last.safetensors", "best.safetensors"] {
            let a = try contents(straight.appendingPathComponent("fold-0/\(name)"))
            let b = try contents(interrupted.appendingPathComponent("fold-0/\(name)"))
            XCTAssertEqual(Set(a.keys), Set(b.keys), name)
            XCTAssertTrue(a.keys.contains { $0.hasPrefix("ema/") } || name == "best.safetensors")
            for key in a.keys.sorted() { XCTAssertTrue(a[key] == b[key], "\(name): \(key) differs") }
        }
        // The validation history agrees too (all columns but the timings).
        func scores(_ run: URL) throws -> [String] {
            try String(contentsOf: run.appendingPathComponent("fold-0/metrics.csv"), encoding: .utf8)
                .split(separator: "\n").map { $0.split(separator: ",").prefix(9).joined(separator: ",") }
        }
        XCTAssertEqual(try scores(straight), try scores(interrupted))
    }

    /// The CUDA generators are saved beside the CPU's only where libtorch has CUDA: on a CPU-only libtorch the
    /// checkpoint is as before, and the shim's CUDA entry points exist and answer with libtorch's error, not a crash.
    /// (Restoring them on a GPU is not exercised here: this machine has none.)
    func testCUDAGeneratorsAreSavedOnlyWhereLibtorchHasCUDA() throws {
        try XCTSkipIf(Torch.cudaAvailable, "a CUDA libtorch: this test covers the CPU-only path")
        XCTAssertEqual(Torch.cudaDeviceCount, 0)
        XCTAssertEqual(try Torch.cudaRNGStates().count, 0)
        XCTAssertThrowsError(try Torch.cudaRNGState(device: 0)) { error in
            XCTAssertTrue((error as? TorchError)?.message.contains("CUDA") == true, "\(error)")
        }
        let model = try Linear(3, 2)
        let url = try Fixtures.scratch("cuda-rng").appendingPathComponent("last.safetensors")
        try Checkpoint(epoch: 0, step: 0).save(model: model, optimizer: nil, to: url)
        let keys = Set(try SafeTensors.read(url).tensors.keys)
        XCTAssertTrue(keys.contains("rng/cpu"))
        XCTAssertFalse(keys.contains { $0.hasPrefix("rng/cuda") }, "\(keys)")
        // A checkpoint made on a GPU resumes on the CPU: its CUDA states are skipped, the CPU generator restored.
        let before = try Torch.rngState().bytes()
        var tensors = try SafeTensors.read(url)
        tensors.tensors["rng/cuda:0"] = try Torch.rngState()
        try SafeTensors.write(tensors.tensors, metadata: tensors.metadata, to: url)
        _ = try Tensor.rand([4])
        XCTAssertNoThrow(try Checkpoint.load(url, into: model))
        XCTAssertEqual(try Torch.rngState().bytes(), before)
    }
}
