import Train
import XCTest

/// Analytic gradients (libtorch autograd through our layers) against central finite differences in float64.
final class GradCheckTests: XCTestCase {
    /// Checks ∂(Σ r·f(x))/∂θ for up to `samples` entries of every parameter, and of the input.
    func check(_ module: Module, input: Tensor, _ forward: (Tensor) throws -> Tensor,
               samples: Int = 4, file: StaticString = #filePath, line: UInt = #line) throws {
        try module.move(to: .cpu, dtype: .float64)
        let x = try input.to(.float64)
        x.requiresGrad = true
        Torch.manualSeed(11)
        let r = try Tensor.randn(try forward(x).shape, dtype: .float64)
        func objective() throws -> Double { try (forward(x) * r).sum().item() }
        try (forward(x) * r).sum().backward()
        let h = 1e-6
        for (name, p) in module.namedParameters() + [("input", x)] {
            let analytic = try XCTUnwrap(p.grad, name, file: file, line: line).toArray(Double.self)
            let flat = try p.detach().reshape([-1])
            for i in stride(from: 0, to: p.count, by: max(1, p.count / samples)) {
                let entry = try flat.narrow(0, start: i, length: 1)
                try entry.add_(h)
                let plus = try objective()
                try entry.add_(-2 * h)
                let minus = try objective()
                try entry.add_(h)
                let numeric = (plus - minus) / (2 * h)
                XCTAssertEqual(analytic[i], numeric, accuracy: 1e-5 * max(1, abs(numeric)), "\(name)[\(i)]", file: file, line: line)
            }
        }
    }

    func testLinear() throws {
        Torch.manualSeed(1)
        let layer = try Linear(4, 3)
        try check(layer, input: Tensor.randn([2, 4])) { try layer($0) }
    }

    func testDepthwiseConvolutionAndBatchNorm() throws {
        Torch.manualSeed(2)
        let conv = try Conv3d(4, 4, kernel: 3, stride: 2, padding: 1, groups: 4, bias: false)
        let bn = try BatchNorm3d(4)
        let both = Sequential([conv, bn])
        try check(both, input: Tensor.randn([2, 4, 4, 4, 4])) { try both($0).silu() }
    }

    func testLayerNormAndAttention() throws {
        Torch.manualSeed(3)
        let block = try TransformerBlock(dim: 8, heads: 2, mlpRatio: 2)
        try check(block, input: Tensor.randn([2, 5, 8])) { try block($0) }
    }

    func testCumulativeLink() throws {
        Torch.manualSeed(4)
        let link = try LogisticCumulativeLink(heads: 3, classes: 4)
        try check(link, input: Tensor.randn([2, 3])) { try link($0) }
    }

    func testSqueezeExcitation() throws {
        Torch.manualSeed(5)
        let se = try SqueezeExcitation(channels: 4, squeezed: 2)
        try check(se, input: Tensor.randn([1, 4, 3, 3, 3])) { try se($0) }
    }
}
