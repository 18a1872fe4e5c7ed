import Train
import XCTest

final class OptimizerTests: XCTestCase {
    func scalarParameter(_ value: Double) throws -> Tensor {
        let p = try Tensor([value])
        p.requiresGrad = true
        return p
    }

    func testAdamWFirstStepByHand() throws {
        let p = try scalarParameter(1)
        let opt = try AdamW([("p", p)], learningRate: 0.1, weightDecay: 0.01)
        try (p * 0.5).sum().backward()
        try opt.step()
        // Decay: 1·(1 − 0.1·0.01) = 0.999; m̂ = 0.5, √v̂ = 0.5 → step 0.1·1 = 0.1 (less 2e-9 from ε).
        XCTAssertEqual(try p.item(), 0.899, accuracy: 1e-8)
    }

    func testSGDNesterovTwoStepsByHand() throws {
        let p = try scalarParameter(1)
        let opt = try SGD([("p", p)], learningRate: 0.1, momentum: 0.9, nesterov: true)
        for _ in 0..<2 {
            opt.zeroGrad()
            try p.sum().backward()
            try opt.step()
        }
        // Step 1: buf = 1, d = 1 + 0.9 = 1.9 → 0.81; step 2: buf = 1.9, d = 1 + 1.71 = 2.71 → 0.539.
        XCTAssertEqual(try p.item(), 0.539, accuracy: 1e-9)
    }

    func testSGDWeightDecayAddsToTheGradient() throws {
        let p = try scalarParameter(2)
        let opt = try SGD([("p", p)], learningRate: 0.5, weightDecay: 0.1)
        try p.sum().backward()
        try opt.step()
        XCTAssertEqual(try p.item(), 2 - 0.5 * (1 + 0.2), accuracy: 1e-9)
        XCTAssertThrowsError(try SGD([("p", p)], learningRate: 0.1, nesterov: true))
    }

    func testClipGradNormScalesJointly() throws {
        let a = try scalarParameter(0), b = try scalarParameter(0)
        try (a * 3 + b * 4).sum().backward()
        let norm = try clipGradNorm([a, b], maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-9)
        XCTAssertEqual(try a.grad!.item(), 0.6, accuracy: 1e-6)
        XCTAssertEqual(try b.grad!.item(), 0.8, accuracy: 1e-6)
    }

    func testSchedulesMatchTheirDefinitions() {
        let cosine = WarmupCosine(peak: 1, warmup: 10, total: 110)
        XCTAssertEqual(cosine.learningRate(at: 4), 0.5, accuracy: 1e-12)
        XCTAssertEqual(cosine.learningRate(at: 10), 1, accuracy: 1e-12)
        XCTAssertEqual(cosine.learningRate(at: 60), 0.5, accuracy: 1e-12)
        XCTAssertEqual(cosine.learningRate(at: 110), 0, accuracy: 1e-12)
        // torch.optim.lr_scheduler.OneCycleLR(max_lr=1, total_steps=100): 0.04 → 1 at step 29 → 4e-6.
        let cycle = OneCycle(peak: 1, total: 100)
        XCTAssertEqual(cycle.learningRate(at: 0), 0.04, accuracy: 1e-12)
        XCTAssertEqual(cycle.learningRate(at: 29), 1, accuracy: 1e-12)
        XCTAssertEqual(cycle.learningRate(at: 99), 4e-6, accuracy: 1e-12)
        XCTAssertEqual(StepDecay(base: 1, every: 10, gamma: 0.5).learningRate(at: 25), 0.25, accuracy: 1e-12)
    }
}
