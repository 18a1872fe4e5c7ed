import Foundation
import TestSupport
import Train
import XCTest

/// The two-stage model (localizer, then level crops at its points) gives the PyTorch twin's probabilities and points,
/// both ways (to 1e-4 and 1e-3 voxels).
final class TwoStageParityTests: XCTestCase {
    /// A tiny two-stage model on a 24³ grid: crops 6 × 8 × 6 at 1.5 grid voxels, the localizer (width 4) at 12 × 24 × 12.
    /// Side crops (two per level, the right one mirrored) with `sides`.
    /// With `points`, the localizer predicts every label column's point.
    static func spec(sides: Bool = false, conditions: Bool = false, points: Bool = false) -> ModelSpec {
        var spec = ModelSpec(name: "efficientnet3d", inputSize: [24, 24, 24], width: 0.25)
        spec.twoStage = try! TwoStageLayout(crops: PointCrops(size: [6, 8, 6], scale: 1.5), localizerWidth: 4, pool: [2, 1, 2],
                                            sideShift: sides ? 2.25 : nil, conditionCrops: conditions, conditionPoints: points)
        return spec
    }
    static var spec: ModelSpec { spec() }

    func runTwin(_ command: String, _ extra: [String], spec: ModelSpec = TwoStageParityTests.spec) throws {
        let layout = spec.twoStage!
        var arguments = ["--two-stage"] + layout.crops.size.map(String.init)
            + ["--crop-scale", String(layout.crops.scale), "--pool"] + layout.pool.map(String.init) + ["--localizer-width", String(layout.localizerWidth)]
        if let shift = layout.sideShift { arguments += ["--side-shift", String(shift)] }
        if layout.conditionCrops { arguments += ["--condition-crops"] }
        if layout.conditionPoints { arguments += ["--condition-points"] }
        _ = try PyTorchTwin.run(command, spec, arguments + extra)
    }

    /// Probabilities and every label column's points of one forward pass (no gradients).
    func forward(_ model: OrdinalClassifier, _ x: Tensor) throws -> (probs: Tensor, points: Tensor) {
        let output = try Torch.noGrad { try model.forward(ModelInput(x)) }
        return (output.probabilities, try XCTUnwrap(output.located).columns)
    }

    func testOursInPyTorch() throws { try oursInPyTorch(Self.spec) }

    func testOursInPyTorchWithSideCrops() throws { try oursInPyTorch(Self.spec(sides: true)) }

    func testOursInPyTorchWithConditionCrops() throws { try oursInPyTorch(Self.spec(conditions: true)) }

    /// The default: the localizer's 25 points, a crop at each.
    func testOursInPyTorchWithConditionPoints() throws { try oursInPyTorch(Self.spec(conditions: true, points: true)) }

    func testPyTorchsInOursWithConditionPoints() throws { try pytorchsInOurs(Self.spec(conditions: true, points: true)) }

    func oursInPyTorch(_ spec: ModelSpec) throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        Torch.manualSeed(3)
        let model = try spec.make()
        for (name, t) in model.namedBuffers() where name.hasSuffix("running_mean") { try t.uniform_(-0.1, 0.1) }
        for (name, t) in model.namedBuffers() where name.hasSuffix("running_var") { try t.uniform_(0.5, 1.5) }
        // Condition offsets (saved with the weights): each column's own, so a misplaced column would show.
        for (name, t) in model.namedBuffers() where name.hasSuffix("offsets") { try t.uniform_(-3, 3) }
        model.eval()
        let x = try Tensor.randn([2, 3, 24, 24, 24])
        let (probs, points) = try forward(model, x)
        XCTAssertEqual(probs.shape, [2, 25, 3])
        XCTAssertEqual(points.shape, [2, 25, 3])
        let w = dir.appendingPathComponent("w.safetensors"), i = dir.appendingPathComponent("x.safetensors")
        let o = dir.appendingPathComponent("y.safetensors")
        try Checkpoint.saveWeights(model, to: w)
        try SafeTensors.write(["x": x], to: i)
        try runTwin("forward", ["--weights", w.path, "--input", i.path, "--out", o.path], spec: spec)
        let theirs = try SafeTensors.read(o).tensors
        XCTAssertLessThan(try (probs - XCTUnwrap(theirs["probs"])).abs().max().item(), 1e-4)
        XCTAssertLessThan(try (points - XCTUnwrap(theirs["points"])).abs().max().item(), 1e-3)
    }

    func testPyTorchsInOurs() throws { try pytorchsInOurs(Self.spec) }

    func pytorchsInOurs(_ spec: ModelSpec) throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = dir.appendingPathComponent("w.safetensors"), i = dir.appendingPathComponent("x.safetensors")
        let o = dir.appendingPathComponent("y.safetensors")
        try runTwin("export", ["--seed", "5", "--weights", w.path, "--input", i.path, "--out", o.path], spec: spec)
        let model = try spec.make()
        try Checkpoint.loadWeights(w, into: model)
        model.eval()
        let x = try XCTUnwrap(SafeTensors.read(i).tensors["x"])
        let theirs = try SafeTensors.read(o).tensors
        let (probs, points) = try forward(model, x)
        XCTAssertLessThan(try (probs - XCTUnwrap(theirs["probs"])).abs().max().item(), 1e-4)
        XCTAssertLessThan(try (points - XCTUnwrap(theirs["points"])).abs().max().item(), 1e-3)
        // The points spread inside the grid (the twin's heatmaps are peaked): the loaded localizer is really used.
        let p = try points.toArray(Float.self)
        XCTAssertTrue(p.allSatisfy { $0 > -1 && $0 < 24 }, "\(p)")
        XCTAssertGreaterThan((p.max() ?? 0) - (p.min() ?? 0), 1, "\(p)")
    }
}
