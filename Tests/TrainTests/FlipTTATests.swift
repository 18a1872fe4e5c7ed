import Foundation
import Shards
import TestSupport
import XCTest
@testable import Train

/// Left-right flip test-time augmentation (`predict(…, flip: true)`, `--flip-tta`): each study is read as it is and
/// mirrored, the mirror image's left and right columns swapped back, the two averaged. So the prediction of a mirrored
/// study is the original's with left and right swapped, exactly, whatever the model; without the flip it is not.
final class FlipTTATests: XCTestCase {
    /// A copy of `folder`'s samples mirrored left-right: the d axis reversed (patient x), labels and keypoints swapped
    /// between the left and right columns, the keypoints' d mirrored, and the source slices' geometry mirrored along
    /// patient x (= d: the cohort's affine is the identity), their values as they are.
    private func mirrored(_ folder: URL) throws -> URL {
        let dataset = try ShardDataset(directory: folder)
        let out = try Fixtures.scratch("mirrored")
        let writer = try ShardWriter(directory: out, options: ShardWriterOptions(samplesPerShard: dataset.count))
        let swap = Augmenter.flipPermutation
        for i in 0..<dataset.count {
            var s = try dataset.read(i)
            let (d, h, w) = (s.shape[0], s.shape[1], s.shape[2])
            var volume = s.volume
            for c in 0..<3 { for z in 0..<d { for y in 0..<h { for x in 0..<w {
                volume[((c * d + z) * h + y) * w + x] = s.volume[((c * d + (d - 1 - z)) * h + y) * w + x]
            } } } }
            s.volume = volume
            s.labels = swap.map { s.labels[$0] }
            s.keypoints = swap.flatMap { k in (0..<3).map { a in a == 0 ? Float(d - 1) - s.keypoints[3 * k] : s.keypoints[3 * k + a] } }
            let (shard, local) = dataset.locate(i)
            let sources = try dataset.reader(shard).readSourcePixels(local)
            s.sources = SourcePixels(slices: sources.slices.map { slice in
                var g = slice.geometry
                for a in [0, 3, 6, 9] { g[a] = -g[a] }
                g[0] += Double(d - 1)
                return SourceSlice(channel: slice.channel, rows: slice.rows, columns: slice.columns, geometry: g)
            }, pixels: sources.pixels)
            try writer.append(s)
        }
        _ = try writer.finish()
        return out
    }

    private func probabilities(_ model: OrdinalClassifier, _ folder: URL, flip: Bool, config: TrainingConfig) throws -> StudyPredictions {
        var options = LoaderOptions(batchSize: 3, shuffle: false, dropLast: false, threads: 1)
        options.sourcePixels = config.readsSourcePixels
        let loader = try ShardLoader(dataset: try ShardDataset(directory: folder), options: options)
        return try predict([model], loader: loader, config: config, flip: flip)
    }

    func testAMirroredStudyGetsTheOriginalsPredictionWithLeftAndRightSwapped() throws {
        let folder = try TrainerCohort.make(studies: 5, keypoints: true)
        let mirror = try mirrored(folder)
        let config = tinyConfig(epochs: 1)
        XCTAssertTrue(config.readsSourcePixels, "the default model crops the cohort's source slices")
        Torch.manualSeed(21)
        let model = try config.modelSpec(gridSize: [16, 16, 16]).make()
        // Weights of some size everywhere: a fresh network's zero-initialised layers give every study and column the same
        // probabilities, which any swap leaves as they are.
        try Torch.noGrad { for (_, t) in model.namedParameters() { try t.uniform_(-0.3, 0.3) } }
        model.eval()
        let swap = Augmenter.flipPermutation
        func worstSwapError(flip: Bool) throws -> Double {
            let a = try probabilities(model, folder, flip: flip, config: config), b = try probabilities(model, mirror, flip: flip, config: config)
            XCTAssertEqual(a.studyIDs, b.studyIDs)
            var worst = 0.0
            for s in 0..<a.count { for k in 0..<25 { for c in 0..<3 {
                worst = max(worst, Swift.abs(a.probability(s, k, c) - b.probability(s, swap[k], c)))
            } } }
            return worst
        }
        XCTAssertLessThan(try worstSwapError(flip: true), 1e-5)
        XCTAssertGreaterThan(try worstSwapError(flip: false), 1e-4, "the model alone is not left-right symmetric")
    }
}
