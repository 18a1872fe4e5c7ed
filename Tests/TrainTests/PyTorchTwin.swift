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

    /// Runs a models.py command; fails the test with Python's stderr when it exits non-zero.
    static func run(_ command: String, _ spec: ModelSpec, _ extra: [String] = []) throws -> String {
        let r = try Fixtures.run(Fixtures.python, [script, command] + arguments(spec) + extra)
        guard r.status == 0 else { throw TorchError("models.py \(command) failed: \(r.stderr)") }
        return r.stdout
    }
}
