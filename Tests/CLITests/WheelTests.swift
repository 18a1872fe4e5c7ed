import Foundation
import TestSupport
import XCTest

/// `make wheel`'s wheel installed as a user installs it: scripts/test-wheel.sh makes a plain venv (no system
/// site-packages), pip-installs the wheel and its dependencies from local wheel folders only, and runs
/// python/tests/installed_check.py from an empty folder with only the venv's bin on PATH.
final class WheelTests: XCTestCase {
    static let script = Fixtures.repoRoot.appendingPathComponent("scripts/test-wheel.sh")

    /// The wheel made from the debug binary (its Swift runtime grafted like the other libraries), without torch:
    /// synth, ingest, verify from PATH, the metric's known values, ShardDataset, and train refusing without libtorch.
    /// numpy and h5py come from .build/wheelhouse (filled once from the package index).
    func testWheelOfTheDebugBuildInstallsIntoAFreshVenv() throws {
        let r = try Fixtures.run(URL(fileURLWithPath: "/bin/bash"), [Self.script.path, "--binary", Fixtures.fuse3d.path])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("synth, ingest, verify from PATH: ok"), r.stdout)
        XCTAssertTrue(r.stdout.contains("without torch: train refuses"), r.stdout)
    }

    /// The Python API against its peers in the project's .venv, from the source tree: rsna_score equals scikit-learn's
    /// log_loss scoring, the chunk-wise Zstandard read equals hdf5plugin's, the docstring examples hold.
    func testPythonAPIAgainstScikitLearnAndHDF5Plugin() throws {
        let r = try Fixtures.run(Fixtures.python, [Fixtures.repoRoot.appendingPathComponent("python/tests/test_api.py").path])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("ok test_metric_equals_scikit_learn"), r.stdout)
    }

    /// The Python API's source slices (schema 2) from the source tree: their conversion to grid voxels by hand and against
    /// numpy, both Zstandard paths, padding as the loader pads, bad table rows refused, schema 1 beside 2, load_run's
    /// source-crop models taking them.
    func testPythonSourceSlices() throws {
        let r = try Fixtures.run(Fixtures.python, [Fixtures.repoRoot.appendingPathComponent("python/tests/test_sources.py").path])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        for name in ["test_voxels_by_hand", "test_bad_rows_are_refused", "test_run_takes_sources"] {
            XCTAssertTrue(r.stdout.contains("ok \(name)"), r.stdout)
        }
    }

    /// The real `make wheel` (release build, the bridge for the .venv's torch) with torch installed from the local
    /// CPU wheel: a DataLoader with 2 workers, `fuse3d train` through the shipped bridge, `load_run` scoring as the
    /// trainer did. A release build and a 190 MB torch install, so only with FUSE3D_WHEEL_RELEASE=1.
    func testReleaseWheelWithTorchTrainsAndLoadsTheRun() throws {
        guard ProcessInfo.processInfo.environment["FUSE3D_WHEEL_RELEASE"] == "1" else {
            throw XCTSkip("set FUSE3D_WHEEL_RELEASE=1 to build the release wheel and test it with torch (make wheel-test)")
        }
        let out = try Fixtures.scratch("wheel-release")
        defer { try? FileManager.default.removeItem(at: out) }
        let build = try Fixtures.run(URL(fileURLWithPath: "/bin/bash"),
                                     [Fixtures.repoRoot.appendingPathComponent("scripts/wheel.sh").path, out.path])
        XCTAssertEqual(build.status, 0, build.stdout + build.stderr)
        let wheel = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: out.path).first { $0.hasSuffix(".whl") })
        XCTAssertTrue(wheel.hasPrefix("fuse3d-0.1.0-py3-none-manylinux_2_"), wheel)
        let r = try Fixtures.run(URL(fileURLWithPath: "/bin/bash"),
                                 [Self.script.path, "--wheel", out.appendingPathComponent(wheel).path, "--torch"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("installed wheel: all checks passed"), r.stdout)
    }
}
