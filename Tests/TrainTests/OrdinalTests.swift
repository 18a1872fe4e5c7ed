import Foundation
import Train
import XCTest

final class OrdinalTests: XCTestCase {
    func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }

    func testProbabilitiesMatchHandComputedValues() throws {
        let link = try LogisticCumulativeLink(heads: 2, classes: 3)
        XCTAssertEqual(try link.cutpoints.toArray(Float.self), [-1, 0, -1, 0])
        let p = try link(Tensor([Float(0.5), -1], shape: [1, 2])).toArray(Float.self)
        // z = 0.5: σ(−1.5) = 0.18242552, σ(−0.5) − σ(−1.5) = 0.19511515, 1 − σ(−0.5) = 0.62245933.
        XCTAssertEqual(p[0], 0.18242552, accuracy: 1e-6)
        XCTAssertEqual(p[1], 0.19511515, accuracy: 1e-6)
        XCTAssertEqual(p[2], 0.62245933, accuracy: 1e-6)
        // z = −1: σ(0) = 0.5, σ(1) − σ(0) = 0.23105858, 1 − σ(1) = 0.26894142.
        XCTAssertEqual(p[3], 0.5, accuracy: 1e-6)
        XCTAssertEqual(p[4], 0.23105858, accuracy: 1e-6)
        XCTAssertEqual(p[5], 0.26894142, accuracy: 1e-6)
    }

    func testLossWeightsClassesAndMasksMissingLabels() throws {
        let link = try LogisticCumulativeLink(heads: 2, classes: 3)
        let z: [Double] = [0.5, -1, 0, 2]
        let probs = try link(Tensor(z.map(Float.init), shape: [2, 2]))
        let labels = try Tensor([Int64(2), -1, 0, 1], shape: [2, 2])
        let loss = try CumulativeLinkLoss()(probs, labels).item()
        // P(y=2 | z=0.5) = 1 − σ(−0.5); P(y=0 | z=0) = σ(−1); P(y=1 | z=2) = σ(−2) − σ(−3); weights 4, 1, 2.
        let expected = (4 * -Foundation.log(1 - sigmoid(-0.5)) + 1 * -Foundation.log(sigmoid(-1))
            + 2 * -Foundation.log(sigmoid(-2) - sigmoid(-3))) / 7
        XCTAssertEqual(loss, expected, accuracy: 1e-5)
        XCTAssertEqual(expected, 1.21114, accuracy: 1e-4)
    }

    func testLossRejectsMismatchedLabels() throws {
        let probs = try Tensor.full([2, 25, 3], 1.0 / 3)
        XCTAssertThrowsError(try CumulativeLinkLoss()(probs, Tensor.zeros([2, 24], dtype: .int64)))
    }

    func testAscensionRestoresOrderAfterABreakingStep() throws {
        let link = try LogisticCumulativeLink(heads: 1, classes: 3)
        // Pushes c₀ up and c₁ down: after one SGD step with lr 5 they cross (c₀ = 4, c₁ = −5).
        let c = link.cutpoints
        try (c.narrow(1, start: 1, length: 1) - c.narrow(1, start: 0, length: 1)).sum().backward()
        let sgd = try SGD(link.namedParameters(), learningRate: 5)
        try sgd.step()
        XCTAssertEqual(try c.toArray(Float.self), [4, -5])
        try link.ascend(margin: 0.1)
        let after = try c.toArray(Float.self)
        XCTAssertEqual(after[0], -5.1, accuracy: 1e-6)
        XCTAssertEqual(after[1], -5, accuracy: 1e-6)
    }

    func testTrainingStepKeepsCutpointsOrderedAndLowersLoss() throws {
        Torch.manualSeed(5)
        let model = try ModelSpec(name: "efficientnet3d", inputSize: [16, 16, 16], width: 0.25, heads: 4).make()
        let step = TrainingStep(model: model, optimizer: try AdamW(model.namedParameters(), learningRate: 3e-3),
                                cutpointMargin: 0.05)
        let x = try Tensor.randn([2, 3, 16, 16, 16])
        let labels = try Tensor([Int64(0), 1, 2, -1, 2, 2, 0, 1], shape: [2, 4])
        // The shards' float16 batches go straight in.
        XCTAssertGreaterThan(try step(x.to(.float16), labels: labels), 0)
        step.step = 0
        model.eval()
        let before = try CumulativeLinkLoss()(model(x), labels).item()
        model.train()
        for _ in 0..<4 { try step(x, labels: labels) }
        model.eval()
        let after = try CumulativeLinkLoss()(model(x), labels).item()
        XCTAssertLessThan(after, before)
        let c = try model.link.cutpoints.toArray(Float.self)
        for h in 0..<4 { XCTAssertLessThanOrEqual(c[2 * h], c[2 * h + 1] - 0.05 + 1e-6) }
        XCTAssertEqual(step.step, 4)
    }
}
