import Foundation
import TestSupport
import Train
import XCTest

/// Runs `python/fuse3d/models.py` (the PyTorch twins of our models) in the project's .venv.
enum PyTorchTwin {
    static var script: String { Fixtures.repoRoot.appendingPathComponent("python/fuse3d/models.py").path }

    /// Arguments naming `spec` for models.py.
    static func arguments(_ spec: ModelSpec) -> [String] {
        var a = ["--model", spec.name, "--variant", spec.variant, "--size", String(spec.inputSize[0]), "--heads", String(spec.heads)]
        if let w = spec.width { a += ["--width", String(w)] }
        if let c = spec.levelCrop { a += ["--level-crop"] + c.map(String.init) }
        return a
    }

    /// Arguments naming a two-stage `layout` for models.py (`--two-stage` and its options, `--source-crops` with its
    /// reach and spacing).
    static func arguments(_ layout: TwoStageLayout) -> [String] {
        var a = ["--two-stage"] + layout.crops.size.map(String.init)
            + ["--crop-scale", String(layout.crops.scale), "--pool"] + layout.pool.map(String.init) + ["--localizer-width", String(layout.localizerWidth)]
        if let shift = layout.sideShift { a += ["--side-shift", String(shift)] }
        if layout.conditionCrops { a += ["--condition-crops"] }
        if layout.conditionPoints { a += ["--condition-points"] }
        if let crops = layout.sourceCrops { a += arguments(crops) }
        return a
    }

    /// Arguments naming source `crops` for models.py.
    static func arguments(_ crops: SourceCrops) -> [String] {
        ["--source-crops", String(crops.slices), String(crops.size), String(crops.millimetres),
         "--source-reach", String(crops.reach), "--source-spacing", String(crops.fallbackSpacing),
         "--source-groups"] + crops.groups.map(String.init)
    }

    /// `sources` as the tensors models.py's `SourceBatch.load` reads from a safetensors file.
    static func tensors(_ sources: SourceBatch) -> [String: Tensor] {
        var t = ["voxel_mm": sources.voxelMm]
        for c in 0..<3 {
            t["pixels.\(c)"] = sources.pixels[c]
            t["geometry.\(c)"] = sources.geometry[c]
            t["valid.\(c)"] = sources.valid[c]
        }
        return t
    }

    /// Runs a models.py command; fails the test with Python's stderr when it exits non-zero.
    static func run(_ command: String, _ spec: ModelSpec, _ extra: [String] = []) throws -> String {
        try run(command, arguments: arguments(spec) + extra)
    }

    /// Runs a models.py command with exactly `arguments` (`source-crops` names no model); fails as `run(_:_:_:)`.
    static func run(_ command: String, arguments: [String]) throws -> String {
        let r = try Fixtures.run(Fixtures.python, [script, command] + arguments)
        guard r.status == 0 else { throw TorchError("models.py \(command) failed: \(r.stderr)") }
        return r.stdout
    }
}
