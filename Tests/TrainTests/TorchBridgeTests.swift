import Foundation
import TestSupport
@testable import Train
import XCTest

/// The Train tests reach libtorch through the bridge that `make torch` built into the build folder;
/// these check that it is the one loaded, what it reports, and that its function table is current.
final class TorchBridgeTests: XCTestCase {
    func testGeneratedTableIsCurrent() throws {
        let r = try Fixtures.run(URL(fileURLWithPath: "/usr/bin/env"),
                                 ["python3", Fixtures.repoRoot.appendingPathComponent("scripts/gen_torch_stubs.py").path, "--check"])
        XCTAssertEqual(r.status, 0, "ctorch_functions.h is stale: run `make stubs`. \(r.stderr)")
    }

    func testTheBridgeInTheBuildFolderIsLoaded() throws {
        try Torch.load()
        let lib = try Torch.library()
        // FUSE3D_TORCH runs this suite through another bridge (docs/own-pytorch.md, "Versions checked").
        let chosen = ProcessInfo.processInfo.environment["FUSE3D_TORCH"].flatMap { $0.isEmpty ? nil : $0 }
        XCTAssertEqual(lib.bridgePath, chosen ?? Fixtures.repoRoot.appendingPathComponent(".build/torch/libfuse3d_torch.so").path)
        XCTAssertTrue(lib.version.hasPrefix("2."), lib.version)
        XCTAssertTrue(lib.libraryPath?.hasSuffix("/libtorch_cpu.so") ?? false, "\(lib.libraryPath ?? "nil")")
        XCTAssertEqual(lib.gpus.isEmpty, !Torch.cudaAvailable)
        XCTAssertTrue(lib.summary[0].hasPrefix("libtorch \(lib.version) at "), lib.summary[0])
        // A value computed through the table: 2 * 3 + 1 on libtorch.
        let x = try (try Tensor([3.0] as [Float]) * 2) + 1
        XCTAssertEqual(try x.item(), 7)
    }

    func testDeviceValidation() throws {
        XCTAssertNoThrow(try Torch.validate(.cpu))
        guard !Torch.cudaAvailable else { return XCTAssertNoThrow(try Torch.validate(.cuda(0))) }
        XCTAssertThrowsError(try Torch.validate(.cuda(0))) { error in
            let message = (error as? TorchError)?.message ?? ""
            // A CPU-only libtorch, or a CUDA one whose CUDA libraries are missing here: both say how to fix it.
            XCTAssertTrue(message.hasPrefix("--device cuda:0: ") && message.contains("make torch PYTHON="), message)
        }
        XCTAssertEqual(Device("cuda:2"), .cuda(2))
        XCTAssertNil(Device("gpu"))
    }
}
