import Foundation
import TestSupport
import Train
import XCTest

private func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
/// a + s · b.
private func axpy(_ a: [Double], _ s: Double, _ b: [Double]) -> [Double] { zip(a, b).map { $0 + s * $1 } }
private func unit(_ a: [Double]) -> [Double] { let l = dot(a, a).squareRoot(); return a.map { $0 / l } }
private func cross(_ a: [Double], _ b: [Double]) -> [Double] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// Source crops give the PyTorch twin's (python/fuse3d/models.py `SourceCrops`): the operator's crops of every column
/// group's reading to 1e-4 and which came from the slices exactly; the two-stage model cutting its condition crops from
/// the source slices its probabilities to 1e-4 and points to 1e-3 voxels, both ways. The slices are tilted, their pixels
/// anisotropic, stored along or against their normal, not aligned with each other and of several sizes; some points lie
/// among them, some beside the stack and some beyond reach, and one sample lacks a series: a sign or an axis swapped on
/// either side changes the crops.
final class SourceCropsParityTests: XCTestCase {
    /// A stack of parallel slices in grid voxels (d, h, w): `count` slices whose centres lie `spacing` voxels apart along
    /// `normal` from `first` (a negative spacing stores them against it), each shifted a little further along its
    /// columns; the columns run along `column` projected onto the planes, the rows along normal × column; `pixel` voxels
    /// per column and per row, `rows` × `columns` pixels.
    struct Stack {
        var count: Int, first: [Double], spacing: Double, normal: [Double], column: [Double]
        var pixel: (column: Double, row: Double), rows: Int, columns: Int

        var unitNormal: [Double] { unit(normal) }

        /// Slice i's centre (before its shift along the columns).
        func centre(_ i: Int) -> [Double] { axpy(first, Double(i) * spacing, unitNormal) }

        /// Slice i's 12 geometry numbers (`SourceBatch.geometry`): the centre of pixel (0, 0), the column step, the row
        /// step, the unit normal (column × row, as the loader stores it).
        func geometry(_ i: Int) -> [Float] {
            let n = unitNormal
            let c = unit(axpy(column, -dot(column, n), n))
            let r = cross(n, c)
            let columnStep = c.map { $0 * pixel.column }, rowStep = r.map { $0 * pixel.row }
            var origin = axpy(centre(i), 0.37 * Double(i), columnStep)
            origin = axpy(origin, -Double(columns - 1) / 2, columnStep)
            origin = axpy(origin, -Double(rows - 1) / 2, rowStep)
            return (origin + columnStep + rowStep + cross(c, r)).map(Float.init)
        }
    }

    /// A batch of `stacks[sample][channel]` (nil: the sample has no slice of that series), padded as the loader pads:
    /// standard normal pixel values (libtorch's generator) in float16, zero beyond each slice's rows and columns and for
    /// padding slices, whose geometry is zero.
    static func sources(_ stacks: [[Stack?]], voxelMm: [Float]) throws -> SourceBatch {
        let b = stacks.count
        var pixels: [Tensor] = [], geometry: [Tensor] = [], valid: [Tensor] = []
        for c in 0..<3 {
            let present = stacks.compactMap { $0[c] }
            let s = max(1, present.map(\.count).max() ?? 0)
            let r = max(1, present.map(\.rows).max() ?? 0), w = max(1, present.map(\.columns).max() ?? 0)
            var mask = [Float](repeating: 0, count: b * s * r * w), g = [Float](repeating: 0, count: b * s * 12)
            var v = [Float](repeating: 0, count: b * s)
            for (i, sample) in stacks.enumerated() {
                guard let stack = sample[c] else { continue }
                for k in 0..<stack.count {
                    for y in 0..<stack.rows { for x in 0..<stack.columns { mask[((i * s + k) * r + y) * w + x] = 1 } }
                    g.replaceSubrange(((i * s + k) * 12)..<((i * s + k) * 12 + 12), with: stack.geometry(k))
                    v[i * s + k] = 1
                }
            }
            pixels.append(try (Tensor.randn([b, s, r, w]) * Tensor(mask, shape: [b, s, r, w])).to(.float16))
            geometry.append(try Tensor(g, shape: [b, s, 12]))
            valid.append(try Tensor(v, shape: [b, s]))
        }
        return SourceBatch(pixels: pixels, geometry: geometry, valid: valid, voxelMm: try Tensor(voxelMm, shape: [b]))
    }

    /// Writes `tensors` to `name` in `dir`.
    static func write(_ tensors: [String: Tensor], _ name: String, in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try SafeTensors.write(tensors, to: url)
        return url
    }

    // MARK: The operator alone

    /// Two samples on a 20 × 24 × 28 grid of 1 and 1.6 mm voxels. Sagittal T1: five slices along +d (sample 0), three
    /// stored against their normal and narrower than the grid (sample 1); sagittal T2/STIR: four slices (sample 0) and
    /// none (sample 1: every canal crop falls back); axial T2: five slices stored upwards and four downwards, tilted.
    static let operatorStacks: [[Stack?]] = [
        [Stack(count: 5, first: [2, 11, 13], spacing: 2.4, normal: [1, 0.15, -0.1], column: [0, 0, 1], pixel: (0.7, 0.55), rows: 52, columns: 46),
         Stack(count: 4, first: [6, 12, 14], spacing: 2, normal: [1, 0.05, 0.2], column: [0, 0, 1], pixel: (0.6, 0.6), rows: 48, columns: 50),
         Stack(count: 5, first: [10, 20, 14], spacing: -3, normal: [0.1, 1, -0.2], column: [0, 0, 1], pixel: (0.6, 0.5), rows: 44, columns: 48)],
        [Stack(count: 3, first: [13, 12, 14], spacing: -2.5, normal: [1, -0.05, 0.12], column: [0, 0.1, 1], pixel: (0.5, 0.8), rows: 36, columns: 40),
         nil,
         Stack(count: 4, first: [9, 4, 13], spacing: 3.5, normal: [-0.05, 1, 0.1], column: [0.2, 0, 1], pixel: (0.45, 0.7), rows: 30, columns: 56)],
    ]
    static let operatorGrid = [20, 24, 28], operatorVoxelMm: [Float] = [1, 1.6]

    /// (5 readings, B, G = 6, 3) points: for each reading's series and sample, one among the slices (between the second
    /// and the third), one beside the first slice (the window clamps), one `reach` and 1.5 voxels beyond the last along
    /// the normal (the grid's fallback), then three uniform over the grid and a voxel or two beyond it.
    static func operatorPoints(reach: Double) throws -> Tensor {
        let random = try (Tensor.rand([5, 2, 3, 3]) * Tensor(operatorGrid.map { Float($0) + 2 }, shape: [1, 1, 1, 3]) - 1.5)
            .toArray(Float.self)
        var points: [Float] = []
        for (r, reading) in SourceCrops.columnReadings.enumerated() {
            for sample in 0..<2 {
                // A sample without the series: the other's stack places the points.
                let stack = (operatorStacks[sample][reading.channel] ?? operatorStacks[1 - sample][reading.channel])!
                let n = stack.unitNormal, along: Double = stack.spacing < 0 ? -1 : 1
                let beyond = reach / Double(operatorVoxelMm[sample]) + 1.5
                let designed = [
                    axpy(axpy(stack.centre(1), 0.4 * stack.spacing, n), 1, [0.7, -1.3, 2.1]),
                    axpy(axpy(stack.centre(0), -0.6 * stack.spacing, n), 1, [0, 1.1, -0.8]),
                    axpy(stack.centre(stack.count - 1), along * beyond, n),
                ]
                points += designed.flatMap { $0.map(Float.init) }
                points += random[((r * 2 + sample) * 9)..<((r * 2 + sample) * 9 + 9)]
            }
        }
        return try Tensor(points, shape: [5, 2, 6, 3])
    }

    func testTheOperatorGivesTheTwinsCropsForEveryReading() throws {
        for crops in [try SourceCrops(slices: 3, size: 6, millimetres: 1.3, reach: 5, fallbackSpacing: 2.5),
                      try SourceCrops(slices: 5, size: 5, millimetres: 0.9)] {
            try operatorParity(crops)
        }
    }

    /// `crops` of every reading at `operatorPoints` against the twin's.
    func operatorParity(_ crops: SourceCrops, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        Torch.manualSeed(11)
        let sources = try Self.sources(Self.operatorStacks, voxelMm: Self.operatorVoxelMm)
        let x = try Tensor.randn([2, 3] + Self.operatorGrid)
        let points = try Self.operatorPoints(reach: crops.reach)
        let i = try Self.write(["x": x, "points": points], "x.safetensors", in: dir)
        let s = try Self.write(PyTorchTwin.tensors(sources), "s.safetensors", in: dir)
        let o = dir.appendingPathComponent("y.safetensors")
        _ = try PyTorchTwin.run("source-crops", arguments: PyTorchTwin.arguments(crops) + ["--sources", s.path, "--input", i.path, "--out", o.path])
        let theirs = try SafeTensors.read(o).tensors
        var taken: [[Float]] = []
        for (r, reading) in SourceCrops.columnReadings.enumerated() {
            let ours = try crops(x, sources: sources, points: try points.select(0, r), reading: reading)
            let crop = try XCTUnwrap(theirs["crops.\(r)"]), fromSlices = try XCTUnwrap(theirs["from_slices.\(r)"])
            XCTAssertEqual(ours.crops.shape, [6 * 2, 3, crops.slices, crops.size, crops.size], file: file, line: line)
            XCTAssertEqual(crop.shape, ours.crops.shape, file: file, line: line)
            XCTAssertLessThan(try (ours.crops - crop).abs().max().item(), 1e-4, "reading \(r)", file: file, line: line)
            XCTAssertGreaterThan(try ours.crops.abs().max().item(), 1, "reading \(r)", file: file, line: line)
            let flags = try ours.fromSlices.to(.float32).toArray(Float.self)
            XCTAssertEqual(flags, try fromSlices.to(.float32).toArray(Float.self), "reading \(r)", file: file, line: line)
            taken.append(flags)
        }
        // Every reading but the canal's has crops from its slices in both samples, and each sample's third point
        // (beyond reach) falls back; sample 1 has no canal slice: all six of its canal crops fall back.
        for (r, flags) in taken.enumerated() {
            for sample in 0..<2 {
                let own = Array(flags[(sample * 6)..<(sample * 6 + 6)])
                XCTAssertEqual(own[2], 0, "reading \(r), sample \(sample): the point beyond reach", file: file, line: line)
                if r == 0 && sample == 1 {
                    XCTAssertEqual(own, [0, 0, 0, 0, 0, 0], "the canal of a sample without its series", file: file, line: line)
                } else {
                    XCTAssertEqual(Array(own[0..<2]), [1, 1], "reading \(r), sample \(sample): the points at the slices", file: file, line: line)
                }
            }
        }
    }

    // MARK: The two-stage model

    /// The two-stage model of TwoStageParityTests (24³ grid, efficientnet3d of width 0.25, the localizer's 25 points, a
    /// crop per label column) with its condition crops cut from the source slices: 3 slices of 8 × 8 pixels of 1.5 mm.
    /// With `groups`, only those condition groups read from the slices.
    static func spec(groups: [Int] = [0, 1, 2]) -> ModelSpec {
        var spec = ModelSpec(name: "efficientnet3d", inputSize: [24, 24, 24], width: 0.25)
        spec.twoStage = try! TwoStageLayout(crops: PointCrops(size: [6, 8, 6], scale: 1.5), localizerWidth: 4, pool: [2, 1, 2],
                                            conditionCrops: true, conditionPoints: true,
                                            sourceCrops: try SourceCrops(slices: 3, size: 8, millimetres: 1.5, groups: groups))
        return spec
    }
    static var spec: ModelSpec { spec() }

    /// Sources for a batch of two on the 24³ grid. Sample 0 (1 mm voxels): every series covers the grid with slices
    /// about 3 voxels apart, the sagittal T2/STIR stored against its normal, so every point is within reach. Sample 1
    /// (1.5 mm voxels, reach 5.3 voxels): sagittal slices over part of the grid (d 4 to 9 and 9 to 15), no axial
    /// series, so every recess crop and the crops far from those slices fall back.
    static func modelSources() throws -> SourceBatch {
        try sources([
            [Stack(count: 10, first: [-3, 12, 12], spacing: 3.1, normal: [1, 0.12, -0.08], column: [0, 0, 1], pixel: (0.9, 0.85), rows: 34, columns: 32),
             Stack(count: 9, first: [26, 11, 12.5], spacing: -3.4, normal: [1, -0.1, 0.05], column: [0, 0.1, 1], pixel: (0.8, 0.9), rows: 32, columns: 34),
             Stack(count: 9, first: [12, -2, 12], spacing: 3.3, normal: [0.08, 1, 0.1], column: [0, 0, 1], pixel: (0.85, 0.8), rows: 34, columns: 33)],
            [Stack(count: 3, first: [4, 12, 12], spacing: 2.5, normal: [1, 0.05, 0.1], column: [0, 0, 1], pixel: (0.6, 0.6), rows: 40, columns: 40),
             Stack(count: 4, first: [15, 12, 11], spacing: -2, normal: [1, 0, -0.1], column: [0, -0.1, 1], pixel: (0.7, 0.5), rows: 50, columns: 36),
             nil],
        ], voxelMm: [1, 1.5])
    }

    /// Probabilities, every label column's points and which crops came from the slices, of one forward pass.
    func forward(_ model: OrdinalClassifier, _ x: Tensor, _ sources: SourceBatch) throws -> (probs: Tensor, points: Tensor, fromSlices: [Float]) {
        let output = try Torch.noGrad { try model.forward(ModelInput(x, sources: sources)) }
        let located = try XCTUnwrap(output.located)
        let fromSlices = try XCTUnwrap(located.fromSlices)
        XCTAssertEqual(fromSlices.shape, [2, 25])
        return (output.probabilities, located.columns, try fromSlices.to(.float32).toArray(Float.self))
    }

    /// The running-variance floor of `calibrate`, and of the twin's export (`--calibrate-norms`).
    static let varianceFloor = 3e-4

    /// Sets the running statistics of `model`'s crop network's BatchNorms to their batch statistics over one pass of `x`
    /// and `sources` (the variance plus `varianceFloor`, which bounds the gain of near-constant channels). With random
    /// statistics this tiny untrained network's activations shrink through its depth until its probabilities no longer
    /// depend on its crops to 1e-7, and the parity would check nothing of them.
    static func calibrate(_ model: OrdinalClassifier, _ x: Tensor, _ sources: SourceBatch) throws {
        func norms(_ m: Module) -> [BatchNorm3d] { ((m as? BatchNorm3d).map { [$0] } ?? []) + m.namedChildren().flatMap { norms($0.1) } }
        let inner = try XCTUnwrap((model.backbone as? TwoStageBackbone)?.inner as? Module)
        let found = norms(inner)
        XCTAssertGreaterThan(found.count, 10)
        model.eval()
        // Momentum 0.1 from zero: a tenth of the batch statistics.
        for bn in found {
            try bn.runningMean.fill_(0)
            try bn.runningVar.fill_(0)
            bn.train()
        }
        _ = try Torch.noGrad { try model.forward(ModelInput(x, sources: sources)) }
        for bn in found {
            try bn.runningMean.mul_(10)
            try bn.runningVar.mul_(10)
            try bn.runningVar.add_(varianceFloor)
        }
        model.eval()
    }

    /// The probabilities of `model` depend on the slices' pixels: blank ones change them by more than 1e-3.
    func assertReadsThePixels(_ model: OrdinalClassifier, _ x: Tensor, _ sources: SourceBatch, _ probs: Tensor,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        var blank = sources
        blank.pixels = try sources.pixels.map { try $0 * 0.0 }
        XCTAssertGreaterThan(try (probs - forward(model, x, blank).probs).abs().max().item(), 1e-3, file: file, line: line)
    }

    /// Every crop of sample 0 from the slices (they cover the grid), every recess crop of sample 1 (no axial series) a
    /// fallback.
    func assertMixed(_ fromSlices: [Float], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Array(fromSlices[0..<25]), [Float](repeating: 1, count: 25), file: file, line: line)
        XCTAssertEqual(Array(fromSlices[(25 + 15)..<50]), [Float](repeating: 0, count: 10), file: file, line: line)
    }

    func testOursInPyTorch() throws { try oursInPyTorch(Self.spec) }

    /// The recesses alone read from the slices: the canal's and the foramina's crops are the grid's in both.
    func testOursInPyTorchWithTheRecessesAloneFromTheSlices() throws { try oursInPyTorch(Self.spec(groups: [2]), recessesAlone: true) }

    func oursInPyTorch(_ spec: ModelSpec, recessesAlone: Bool = false) throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        Torch.manualSeed(3)
        let model = try spec.make()
        for (name, t) in model.namedBuffers() where name.hasSuffix("running_mean") { try t.uniform_(-0.1, 0.1) }
        for (name, t) in model.namedBuffers() where name.hasSuffix("running_var") { try t.uniform_(0.5, 1.5) }
        // Peaked heatmaps, as the twin's export makes them: the 25 points spread over the grid.
        let heat = model.namedParameters().filter { $0.0 == "backbone.localizer.heat.weight" }
        XCTAssertEqual(heat.count, 1)
        for (_, t) in heat { try Torch.noGrad { try t.mul_(40) } }
        let x = try Tensor.randn([2, 3, 24, 24, 24])
        let sources = try Self.modelSources()
        try Self.calibrate(model, x, sources)
        let (probs, points, fromSlices) = try forward(model, x, sources)
        XCTAssertEqual(probs.shape, [2, 25, 3])
        XCTAssertEqual(points.shape, [2, 25, 3])
        if recessesAlone {
            // Sample 0's recess crops from the slices, nothing else; sample 1 has no axial series.
            XCTAssertEqual(fromSlices, [Float](repeating: 0, count: 15) + [Float](repeating: 1, count: 10) + [Float](repeating: 0, count: 25))
        } else {
            assertMixed(fromSlices)
        }
        try assertReadsThePixels(model, x, sources, probs)

        let w = dir.appendingPathComponent("w.safetensors"), o = dir.appendingPathComponent("y.safetensors")
        try Checkpoint.saveWeights(model, to: w)
        let i = try Self.write(["x": x], "x.safetensors", in: dir)
        let s = try Self.write(PyTorchTwin.tensors(sources), "s.safetensors", in: dir)
        _ = try PyTorchTwin.run("forward", spec, PyTorchTwin.arguments(spec.twoStage!)
            + ["--weights", w.path, "--input", i.path, "--sources", s.path, "--out", o.path])
        let theirs = try SafeTensors.read(o).tensors
        XCTAssertLessThan(try (probs - XCTUnwrap(theirs["probs"])).abs().max().item(), 1e-4)
        XCTAssertLessThan(try (points - XCTUnwrap(theirs["points"])).abs().max().item(), 1e-3)
        XCTAssertEqual(fromSlices, try XCTUnwrap(theirs["from_slices"]).to(.float32).toArray(Float.self))
    }

    func testPyTorchsInOurs() throws {
        let dir = try Fixtures.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        Torch.manualSeed(4)
        let spec = Self.spec
        let sources = try Self.modelSources()
        let s = try Self.write(PyTorchTwin.tensors(sources), "s.safetensors", in: dir)
        let w = dir.appendingPathComponent("w.safetensors"), i = dir.appendingPathComponent("x.safetensors")
        let o = dir.appendingPathComponent("y.safetensors")
        _ = try PyTorchTwin.run("export", spec, PyTorchTwin.arguments(spec.twoStage!)
            + ["--seed", "5", "--calibrate-norms", String(Self.varianceFloor), "--weights", w.path, "--input", i.path,
               "--sources", s.path, "--out", o.path])
        let model = try spec.make()
        try Checkpoint.loadWeights(w, into: model)
        model.eval()
        let x = try XCTUnwrap(SafeTensors.read(i).tensors["x"])
        let theirs = try SafeTensors.read(o).tensors
        let (probs, points, fromSlices) = try forward(model, x, sources)
        XCTAssertLessThan(try (probs - XCTUnwrap(theirs["probs"])).abs().max().item(), 1e-4)
        XCTAssertLessThan(try (points - XCTUnwrap(theirs["points"])).abs().max().item(), 1e-3)
        XCTAssertEqual(fromSlices, try XCTUnwrap(theirs["from_slices"]).to(.float32).toArray(Float.self))
        assertMixed(fromSlices)
        try assertReadsThePixels(model, x, sources, probs)
        // The points spread over the grid (the twin's heatmaps are peaked), so the crops sit at different slices.
        let p = try points.toArray(Float.self)
        XCTAssertGreaterThan((p.max() ?? 0) - (p.min() ?? 0), 1, "\(p)")
    }
}
