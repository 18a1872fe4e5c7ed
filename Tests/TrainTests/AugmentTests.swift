import Foundation
import Train
import XCTest

final class AugmentTests: XCTestCase {
    /// A hand-made batch: B samples, C channels on a (D, H, W) grid with distinct voxels, label
    /// column k holding k, keypoint k at (k / 10, k, k + 0.5), keypoint 3 absent.
    private func batch(b: Int = 2, c: Int = 2, grid: [Int] = [5, 4, 3]) throws -> Batch {
        let n = b * c * grid.reduce(1, *)
        let volumes = try Tensor((0..<n).map { Float16(Float($0 % 997) / 1024) }, shape: [b, c] + grid)
        var keypoints: [Float] = []
        for _ in 0..<b { for k in 0..<25 { keypoints += k == 3 ? [.nan, .nan, .nan] : [Float(k) / 10, Float(k), Float(k) + 0.5] } }
        return Batch(indices: Array(0..<b), studyIDs: (0..<b).map(Int64.init), volumes: volumes,
                     labels: try Tensor((0..<b).flatMap { _ in (0..<25).map(Int64.init) }, shape: [b, 25]),
                     present: try Tensor([Float](repeating: 1, count: b * c), shape: [b, c]),
                     keypoints: try Tensor(keypoints, shape: [b, 25, 3]))
    }

    private func only(_ change: (inout AugmentationOptions) -> Void) -> AugmentationOptions {
        var o = AugmentationOptions.none
        change(&o)
        return o
    }

    func testFlipSwapsExactlyTheTwentyLeftRightColumnsAndMirrorsKeypoints() throws {
        XCTAssertEqual(Augmenter.flipPermutation, Array(0..<5) + Array(10..<15) + Array(5..<10) + Array(20..<25) + Array(15..<20))
        let input = try batch()
        let flip = Augmenter(options: only { $0.flip = 1 }, seed: 3)
        let out = try flip(input, step: 0)

        let labels = try out.labels.toArray(Int64.self)
        let moved = (0..<25).filter { labels[$0] != Int64($0) }
        XCTAssertEqual(moved, Array(5..<25))
        XCTAssertEqual(labels[5], 10)
        XCTAssertEqual(labels[22], 17)
        XCTAssertEqual(try out.volumes.bytes(), try input.volumes.flip([2]).bytes())

        // Column 5 (left foraminal L1/L2) takes column 10's keypoint (10 / 10, 10, 10.5), d mirrored: 4 − 1 = 3.
        let k = try out.keypoints.toArray(Float.self)
        XCTAssertEqual(Array(k[15..<18]), [3, 10, 10.5])
        XCTAssertEqual(Array(k[0..<3]), [4, 0, 0.5])
        XCTAssertTrue(k[9].isNaN && k[10].isNaN)

        let twice = try flip(out, step: 0)
        XCTAssertEqual(try twice.volumes.bytes(), try input.volumes.bytes())
        XCTAssertEqual(try twice.labels.bytes(), try input.labels.bytes())
        // D − 1 − (D − 1 − d) is d up to float32 rounding of fractional coordinates.
        for (x, y) in zip(try twice.keypoints.toArray(Float.self), try input.keypoints.toArray(Float.self)) {
            XCTAssertTrue(x.isNaN ? y.isNaN : abs(x - y) <= 1e-6, "\(x) vs \(y)")
        }
        XCTAssertEqual(try input.labels.toArray(Int64.self), (0..<50).map { Int64($0 % 25) }, "the input is not modified")
    }

    func testIdentityAffineReturnsTheBatch() throws {
        let input = try batch()
        let out = try Augmenter(options: only { $0.affine = 1 }, seed: 1)(input, step: 4)
        let a = try input.volumes.toArray(Float.self), b = try out.volumes.toArray(Float.self)
        XCTAssertEqual(zip(a, b).map { abs($0 - $1) }.max()!, 0, accuracy: 1e-3)
        let p = try input.keypoints.toArray(Float.self), q = try out.keypoints.toArray(Float.self)
        for (x, y) in zip(p, q) where !x.isNaN { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }

    func testAffineMovesKeypointsWithTheAnatomy() throws {
        // One bright 3³ blob centred on keypoint 0 of a 21³ grid; rotate, scale and shift it.
        let size = 21, centre = (7, 11, 12)
        var voxels = [Float16](repeating: 0, count: size * size * size)
        for d in -1...1 { for h in -1...1 { for w in -1...1 {
            voxels[((centre.0 + d) * size + centre.1 + h) * size + centre.2 + w] = 1
        } } }
        var keypoints = [Float](repeating: .nan, count: 75)
        keypoints[0..<3] = [Float(centre.0), Float(centre.1), Float(centre.2)]
        let input = Batch(indices: [0], studyIDs: [1], volumes: try Tensor(voxels, shape: [1, 1, size, size, size]),
                          labels: try Tensor([Int64](repeating: 0, count: 25), shape: [1, 25]),
                          present: try Tensor([Float(1)], shape: [1, 1]), keypoints: try Tensor(keypoints, shape: [1, 25, 3]))
        let options = only { $0.affine = 1; $0.rotateDegrees = 25; $0.scale = 0.2; $0.translate = 0.15 }
        for step in 0..<3 {
            let out = try Augmenter(options: options, seed: 9)(input, step: step)
            let v = try out.volumes.toArray(Float.self)
            var mass = 0.0, centroid = [0.0, 0.0, 0.0]
            for (i, x) in v.enumerated() where x > 0 {
                mass += Double(x)
                centroid[0] += Double(x) * Double(i / (size * size))
                centroid[1] += Double(x) * Double(i / size % size)
                centroid[2] += Double(x) * Double(i % size)
            }
            let k = try out.keypoints.toArray(Float.self)
            XCTAssertNotEqual(Double(k[0]), Double(centre.0), accuracy: 0.01, "step \(step) moved the point")
            for a in 0..<3 { XCTAssertEqual(centroid[a] / mass, Double(k[a]), accuracy: 0.35, "step \(step) axis \(a)") }
            XCTAssertTrue(k[3].isNaN)
        }
    }

    func testDrawsAreAFunctionOfSeedAndStep() throws {
        let input = try batch(b: 4, c: 3)
        let options = AugmentationOptions(channelDrop: 0.5)
        let a = try Augmenter(options: options, seed: 5)(input, step: 12)
        let b = try Augmenter(options: options, seed: 5)(input, step: 12)
        let c = try Augmenter(options: options, seed: 5)(input, step: 13)
        let d = try Augmenter(options: options, seed: 6)(input, step: 12)
        XCTAssertEqual(try a.volumes.bytes(), try b.volumes.bytes())
        XCTAssertEqual(try a.keypoints.bytes(), try b.keypoints.bytes())
        XCTAssertNotEqual(try a.volumes.bytes(), try c.volumes.bytes())
        XCTAssertNotEqual(try a.volumes.bytes(), try d.volumes.bytes())
    }

    func testEvaluationLeavesTheBatchUntouched() throws {
        let input = try batch()
        let augmenter = Augmenter(options: AugmentationOptions(flip: 1, affine: 1, intensity: 1, channelDrop: 1), seed: 2)
        XCTAssertNotEqual(try augmenter(input, step: 0).volumes.bytes(), try input.volumes.bytes())
        augmenter.training = false
        let out = try augmenter(input, step: 0)
        XCTAssertEqual(try out.volumes.bytes(), try input.volumes.bytes())
        XCTAssertEqual(try out.labels.bytes(), try input.labels.bytes())
        XCTAssertEqual(try out.present.bytes(), try input.present.bytes())
    }

    func testChannelDropClearsOneChannelAndIntensityKeepsMissingChannelsZero() throws {
        let input = try batch(b: 3, c: 3)
        let dropped = try Augmenter(options: only { $0.channelDrop = 1 }, seed: 4)(input, step: 1)
        let present = try dropped.present.toArray(Float.self)
        let v = try dropped.volumes.toArray(Float.self), original = try input.volumes.toArray(Float.self)
        let per = 5 * 4 * 3
        for s in 0..<3 {
            let flags = Array(present[(3 * s)..<(3 * s + 3)])
            XCTAssertEqual(flags.filter { $0 == 0 }.count, 1, "sample \(s)")
            for c in 0..<3 {
                let channel = (s * 3 + c) * per
                let expected = flags[c] == 0 ? [Float](repeating: 0, count: per) : Array(original[channel..<(channel + per)])
                XCTAssertEqual(Array(v[channel..<(channel + per)]), expected, "sample \(s) channel \(c)")
            }
        }

        // A missing channel (present 0, all zero) stays zero under intensity changes; present ones change, within [0, 1].
        var missing = input
        let mask = try Tensor([Float(1), 0, 1], shape: [1, 3, 1, 1, 1])
        missing.volumes = try (input.volumes * mask.to(.float16))
        missing.present = try Tensor([Float](repeating: 1, count: 9).enumerated().map { $0.offset % 3 == 1 ? 0 : $0.element }, shape: [3, 3])
        let options = only { $0.intensity = 1; $0.intensityScale = 0.3; $0.intensityShift = 0.2; $0.gamma = 0.5 }
        let changed = try Augmenter(options: options, seed: 8)(missing, step: 0).volumes.toArray(Float.self)
        for s in 0..<3 {
            XCTAssertTrue(changed[((s * 3 + 1) * per)..<((s * 3 + 2) * per)].allSatisfy { $0 == 0 }, "sample \(s)")
            XCTAssertNotEqual(Array(changed[((s * 3) * per)..<((s * 3 + 1) * per)]), Array(original[((s * 3) * per)..<((s * 3 + 1) * per)]))
        }
        XCTAssertTrue(changed.allSatisfy { (0...1).contains($0) })
    }
}
