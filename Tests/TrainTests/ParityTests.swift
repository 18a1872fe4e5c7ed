import Foundation
import TestSupport
import Train
import XCTest

/// fuse3d's weights in PyTorch and PyTorch's weights in fuse3d give the same outputs (to 1e-4).
final class ParityTests: XCTestCase {
    func maxDifference(_ a: Tensor, _ b: Tensor) throws -> Double { try (a - b).abs().max().item() }

    /// Our model's weights → the PyTorch twin, same input, eval mode.
    func swiftToPython(_ spec: ModelSpec) throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        Torch.manualSeed(21)
        let model = try spec.make()
        for (name, t) in model.namedBuffers() where name.hasSuffix("running_mean") { try t.uniform_(-0.1, 0.1) }
        for (name, t) in model.namedBuffers() where name.hasSuffix("running_var") { try t.uniform_(0.5, 1.5) }
        if let levels = model.backbone as? LevelCropBackbone {  // five distinct crop positions, one clamped at the edge
            let n = Float(spec.inputSize[0])
            var centres: [Float] = []
            for l in 0..<5 { centres += [Float(l) * 2.5 + 1.4, n * Float(l + 1) / 6, n - 1] }
            try levels.atlas.copy_(try Tensor(centres, shape: [5, 3]))
        }
        model.eval()
        let x = try Tensor.randn([2, 3] + spec.inputSize)
        let ours = try Torch.noGrad { try model(x) }
        let weights = dir.appendingPathComponent("w.safetensors"), input = dir.appendingPathComponent("x.safetensors")
        let output = dir.appendingPathComponent("y.safetensors")
        try Checkpoint.saveWeights(model, to: weights)
        try SafeTensors.write(["x": x], to: input)
        _ = try PyTorchTwin.run("forward", spec, ["--weights", weights.path, "--input", input.path, "--out", output.path])
        let theirs = try XCTUnwrap(SafeTensors.read(output).tensors["probs"])
        XCTAssertEqual(theirs.shape, [2, spec.heads, spec.classes])
        XCTAssertLessThan(try maxDifference(ours, theirs), 1e-4, spec.name)
    }

    /// The PyTorch twin's weights → our model, same input, eval mode.
    func pythonToSwift(_ spec: ModelSpec) throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let weights = dir.appendingPathComponent("w.safetensors"), input = dir.appendingPathComponent("x.safetensors")
        let output = dir.appendingPathComponent("y.safetensors")
        _ = try PyTorchTwin.run("export", spec, ["--seed", "5", "--weights", weights.path, "--input", input.path, "--out", output.path])
        let model = try spec.make()
        try Checkpoint.loadWeights(weights, into: model)
        model.eval()
        let x = try XCTUnwrap(SafeTensors.read(input).tensors["x"])
        let theirs = try XCTUnwrap(SafeTensors.read(output).tensors["probs"])
        let ours = try Torch.noGrad { try model(x) }
        XCTAssertLessThan(try maxDifference(ours, theirs), 1e-4, spec.name)
        // The loaded model is not a fresh one: its outputs differ from a fresh model's.
        let fresh = try spec.make()
        fresh.eval()
        XCTAssertGreaterThan(try maxDifference(try Torch.noGrad { try fresh(x) }, theirs), 1e-4)
    }

    func testEfficientNetBothWays() throws {
        try swiftToPython(ModelTests.tinyEfficientNet)
        try pythonToSwift(ModelTests.tinyEfficientNet)
    }

    /// Level crops (atlas buffer, shared backbone, per-condition head) load both ways and cut the same crops.
    func testLevelCropsBothWays() throws {
        var spec = ModelSpec(name: "efficientnet3d", inputSize: [24, 24, 24], width: 0.25)
        spec.levelCrop = [8, 8, 6]
        try swiftToPython(spec)
        try pythonToSwift(spec)
    }

    func testViTBothWays() throws {
        let spec = ModelSpec(name: "vit3d", variant: "tiny", inputSize: [32, 32, 32], heads: 7)
        try swiftToPython(spec)
        try pythonToSwift(spec)
    }

    func testWeightsOfAnotherModelAreRejectedWithTheFileName() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("vit.safetensors")
        try Checkpoint.saveWeights(ModelSpec(name: "vit3d", inputSize: [32, 32, 32]).make(), to: url)
        XCTAssertThrowsError(try Checkpoint.loadWeights(url, into: ModelTests.tinyEfficientNet.make())) { error in
            XCTAssertTrue("\(error)".hasPrefix(url.path), "\(error)")
            XCTAssertTrue("\(error)".contains("missing"), "\(error)")
        }
    }
}
