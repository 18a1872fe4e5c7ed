import Train
import XCTest

final class TensorTests: XCTestCase {
    func testRunsASupportedLibtorch() {
        let parts = Torch.version.split(separator: ".").compactMap { Int($0) }
        XCTAssertTrue(parts.count >= 2 && parts[0] == 2 && parts[1] >= 4, Torch.version)
    }

    func testFloat16AndBFloat16RoundTrip() throws {
        let h = try Tensor([Float16(1.5), -2, 0.25, 65504], shape: [2, 2])
        XCTAssertEqual(h.dtype, .float16)
        XCTAssertEqual(h.shape, [2, 2])
        XCTAssertEqual(try h.toArray(Float.self), [1.5, -2, 0.25, 65504])
        // 0x3FC0 is bfloat16 1.5; 0xC040 is −3.
        let b = try Tensor(bfloat16Bits: [0x3FC0, 0xC040], shape: [2])
        XCTAssertEqual(b.dtype, .bfloat16)
        XCTAssertEqual(try b.toArray(Float.self), [1.5, -3])
        XCTAssertEqual(try b.bytes(), [0xC0, 0x3F, 0x40, 0xC0])
    }

    func testArithmeticGivesKnownValues() throws {
        let a = try Tensor([Float(1), 2, 3])
        let b = try Tensor([Float(1), 1, 1])
        XCTAssertEqual(try (a * 2 + b).toArray(Float.self), [3, 5, 7])
        XCTAssertEqual(try (a * 2 + b).sum().item(), 15)
        let m = try Tensor([Float(1), 2, 3, 4], shape: [2, 2])
        XCTAssertEqual(try m.matmul(m).toArray(Float.self), [7, 10, 15, 22])
        XCTAssertEqual(try m.transpose(0, 1).contiguous().toArray(Float.self), [1, 3, 2, 4])
        XCTAssertEqual(try Tensor.cat([a, b], dim: 0).toArray(Float.self), [1, 2, 3, 1, 1, 1])
        XCTAssertEqual(try (1.0 - a).toArray(Float.self), [0, -1, -2])
    }

    func testOurOwnChecksAreTrainErrorsNotLibtorchs() throws {
        // Checks made in Swift before libtorch sees anything say so: a TrainError, shown without "libtorch:".
        XCTAssertThrowsError(try Tensor([Float(1), 2, 3], shape: [2])) { error in
            XCTAssertEqual(error as? TrainError, TrainError(.shape, "3 values cannot fill shape [2]"))
        }
        XCTAssertThrowsError(try TwoStageLayout(crops: PointCrops(size: [4, 4, 4]), sideShift: 1, conditionCrops: true)) { error in
            XCTAssertEqual(error as? TrainError, TrainError(.configuration, "side crops and condition crops exclude each other"))
        }
        XCTAssertThrowsError(try Conv3d(3, 4, kernel: 3, groups: 2)) { error in
            XCTAssertEqual((error as? TrainError)?.kind, .shape, "\(error)")
            XCTAssertFalse("\(error)".hasPrefix("libtorch:"), "\(error)")
        }
    }

    func testShapeMismatchThrowsLibtorchMessage() throws {
        let a = try Tensor([Float(1), 2, 3]), b = try Tensor([Float(1), 2])
        XCTAssertThrowsError(try a + b) { error in
            let message = (error as? TorchError)?.message ?? ""
            XCTAssertTrue(message.contains("The size of tensor a (3) must match the size of tensor b (2)"), message)
        }
        let conv = try Conv3d(3, 4, kernel: 3)
        XCTAssertThrowsError(try conv(Tensor.zeros([1, 2, 4, 4, 4]))) { error in
            let message = (error as? TorchError)?.message ?? ""
            XCTAssertTrue(message.contains("expected input[1, 2, 4, 4, 4] to have 3 channels"), message)
        }
        // The thread's error was drained: the next op succeeds.
        XCTAssertEqual(try (a + a).toArray(Float.self), [2, 4, 6])
    }

    func testSeedRepeatsSamples() throws {
        Torch.manualSeed(7)
        let first = try Tensor.rand([5]).toArray(Float.self)
        Torch.manualSeed(7)
        XCTAssertEqual(try Tensor.rand([5]).toArray(Float.self), first)
    }

    func testFillsStorageInPlace() throws {
        let t = try Tensor.empty([2, 2], dtype: .float16)
        try t.withUnsafeMutableBytes { raw in
            let p = raw.bindMemory(to: Float16.self)
            for i in 0..<4 { p[i] = Float16(i) * 0.5 }
        }
        XCTAssertEqual(try t.toArray(Float.self), [0, 0.5, 1, 1.5])
    }

    func testBackwardAndNoGrad() throws {
        let x = try Tensor([Double(1), 2, 3])
        x.requiresGrad = true
        try (x * x).sum().backward()
        XCTAssertEqual(try x.grad?.toArray(Double.self), [2, 4, 6])
        let y = try Torch.noGrad { try x * 2 }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(try (x * 2).requiresGrad)
        x.clearGrad()
        XCTAssertNil(x.grad)
    }

    func testThreadCountIsSettable() {
        let before = Torch.threads
        Torch.threads = 1
        XCTAssertEqual(Torch.threads, 1)
        Torch.threads = before
    }

    func testAutocastRunsLinearInBFloat16OnlyInsideTheScope() throws {
        Torch.manualSeed(3)
        let layer = try Linear(4, 2)
        let x = try Tensor.randn([3, 4])
        let reference = try layer(x)
        let cast = try Torch.autocast(.cpu) { try layer(x) }
        XCTAssertEqual(cast.dtype, .bfloat16)
        XCTAssertLessThan(try (cast.to(.float32) - reference).abs().max().item(), 0.05)
        XCTAssertEqual(try layer(x).dtype, .float32)
    }

    func testChannelsLastConvolutionGivesTheSameValues() throws {
        Torch.manualSeed(4)
        let conv = try Conv3d(3, 4, kernel: 3, padding: 1)
        let x = try Tensor.randn([1, 3, 5, 5, 5])
        let reference = try conv(x)
        try conv.useChannelsLast()
        let y = try conv(x.contiguous(channelsLast: true))
        XCTAssertLessThan(try (y - reference).abs().max().item(), 1e-5)
        XCTAssertTrue(conv.weight.requiresGrad)
    }
}
