import Foundation
import TestSupport
import Train
import XCTest

final class ModelTests: XCTestCase {
    static let tinyEfficientNet = ModelSpec(name: "efficientnet3d", inputSize: [16, 16, 16], width: 0.25)
    static let tinyViT = ModelSpec(name: "vit3d", variant: "tiny", inputSize: [32, 32, 32])

    func testNamesFollowPyTorchConventions() throws {
        let model = try ModelTests.tinyEfficientNet.make()
        let names = Set(model.stateDict().keys)
        XCTAssertTrue(names.contains("backbone.blocks.0.dw_bn.running_mean"))
        XCTAssertTrue(names.contains("backbone.blocks.1.expand_conv.weight"))
        XCTAssertTrue(names.contains("backbone.blocks.0.se.reduce.bias"))
        XCTAssertTrue(names.contains("link.cutpoints"))
        XCTAssertFalse(names.contains("backbone.blocks.0.expand_conv.weight"), "B0's first stage has no expansion")
        XCTAssertEqual(model.namedBuffers().count, 3 * 49, "three buffers per BatchNorm3d")
        let seq = Sequential([try Linear(2, 3), ReLU(), try Linear(3, 1)])
        XCTAssertEqual(seq.namedParameters().map(\.0), ["0.weight", "0.bias", "2.weight", "2.bias"])
    }

    func testEfficientNetStageTableScales() throws {
        XCTAssertEqual(try EfficientNet3D(EfficientNetConfig(width: 0.25, depth: 1, dropout: 0)).blocks.count, 16)
        let b3 = EfficientNetConfig(width: 0.25, depth: 1.4, dropout: 0.3)
        // ⌈1.4·(1, 2, 2, 3, 3, 4, 1)⌉ = 2, 3, 3, 5, 5, 6, 2.
        XCTAssertEqual(try EfficientNet3D(b3).blocks.count, 26)
        XCTAssertEqual(EfficientNetConfig.b3.channels(320), 384)
        XCTAssertEqual(EfficientNetConfig.b2.channels(1280), 1408)
        XCTAssertEqual(EfficientNetConfig.b0.channels(32), 32)
    }

    func testParameterCountsAndShapesEqualThePyTorchTwins() throws {
        for spec in [ModelTests.tinyEfficientNet, ModelTests.tinyViT] {
            let model = try spec.make()
            let json = try PyTorchTwin.run("describe", spec)
            let described = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            XCTAssertEqual(described["parameters"] as? Int, model.parameterCount, spec.name)
            let shapes = try XCTUnwrap(described["state"] as? [String: [Int]])
            XCTAssertEqual(Set(shapes.keys), Set(model.stateDict().keys), spec.name)
            for (name, t) in model.stateDict() { XCTAssertEqual(shapes[name], t.shape, name) }
        }
    }

    func testForwardGivesDistributionsPerHead() throws {
        Torch.manualSeed(0)
        let model = try ModelTests.tinyEfficientNet.make()
        model.eval()
        let p = try model(Tensor.randn([2, 3, 16, 16, 16]))
        XCTAssertEqual(p.shape, [2, 25, 3])
        let sums = try p.sum([2]).toArray(Float.self)
        for s in sums { XCTAssertEqual(s, 1, accuracy: 1e-5) }
    }

    func testViTInterpolatesPositionEmbeddingForOtherGrids() throws {
        Torch.manualSeed(0)
        let vit = try ViT3D(ViTConfig(patch: 8, dim: 16, depth: 1, heads: 2, inputSize: [16, 16, 16]))
        XCTAssertEqual(vit.posEmbed.shape, [1, 9, 16])
        XCTAssertEqual(try vit.positionEmbedding(for: [2, 2, 2]).toArray(Float.self), try vit.posEmbed.toArray(Float.self))
        let resized = try vit.positionEmbedding(for: [3, 2, 4])
        XCTAssertEqual(resized.shape, [1, 25, 16])
        // The class token's embedding is never resampled.
        XCTAssertEqual(try resized.select(1, 0).toArray(Float.self), try vit.posEmbed.select(1, 0).toArray(Float.self))
        vit.eval()
        XCTAssertEqual(try vit.features(Tensor.randn([1, 3, 24, 16, 32])).shape, [1, 16])
    }

    func testTrainAndEvalSwitchTheWholeTree() throws {
        let model = try ModelTests.tinyEfficientNet.make()
        model.eval()
        let bn = (model.backbone as! EfficientNet3D).blocks[3].dwBn
        XCTAssertFalse(bn.training)
        model.train()
        XCTAssertTrue(bn.training)
    }

    func testBF16AutocastDefaultsFollowTheMeasurements() {
        XCTAssertFalse(ModelTests.tinyEfficientNet.prefersBF16Autocast(on: .cpu))
        XCTAssertEqual(ModelTests.tinyViT.prefersBF16Autocast(on: .cpu), Torch.cpuHasNativeBF16)
        XCTAssertFalse(ModelTests.tinyViT.prefersBF16Autocast(on: .cuda(0)))
    }

    func testUnknownModelIsAnError() {
        XCTAssertThrowsError(try ModelSpec(name: "resnet3d", inputSize: [16, 16, 16]).make())
        XCTAssertThrowsError(try ModelSpec(name: "efficientnet3d", variant: "b7", inputSize: [16, 16, 16]).make())
    }
}
