import Core
import Foundation

/// One crop of the grid per lumbar level, each centred on the level's position in `atlas`, all through one shared
/// backbone; the features of the five crops side by side (B, 5 · C). The atlas (voxel centres (d, h, w) in the stored
/// grid, spinal-canal levels L1/L2 … L5/S1) is a buffer: it is saved with the weights, so evaluate and predict cut the
/// same crops. The trainer sets it from the training fold's keypoints (`LevelAtlas`).
///
/// Why: a globally pooled 3-D CNN must learn both what a stenosis looks like and at which level it is; on the phantom
/// cohort it does not within a demo's budget, while one small network shared by the five level crops does
/// (docs/learning-on-the-phantom.md).
public final class LevelCropBackbone: Module, Backbone {
    /// The network every crop goes through.
    public let inner: any Backbone
    /// (levels, 3) float32 voxel centres (d, h, w) of the crops in the stored grid.
    @Buffer public var atlas: Tensor
    /// Crop size (D, H, W) in voxels, and the number of levels.
    public let crop: [Int], levels: Int

    /// Crops of `crop` voxels at `levels` positions (all at the origin until the atlas is set).
    public init(inner: any Backbone, crop: [Int], levels: Int = 5) throws {
        guard crop.count == 3, crop.allSatisfy({ $0 > 0 }) else { throw TrainError(.configuration, "level crops need three positive sizes (D, H, W), not \(crop)") }
        self.inner = inner
        self.crop = crop
        self.levels = levels
        _atlas = Buffer(wrappedValue: try Tensor.zeros([levels, 3]))
    }

    public var featureCount: Int { levels * inner.featureCount }

    /// A `LevelHead` over the crops' features for the 25 RSNA columns; a `Linear` for other head counts.
    public func makeHead(heads: Int) throws -> any UnaryLayer {
        heads == 25 ? try LevelHead(features: inner.featureCount, levels: levels, conditions: heads / levels) : try Linear(featureCount, heads)
    }

    /// The crops sit at the training studies' mean spinal keypoints (`LevelAtlas`, saved with the weights as `atlas`).
    public func prepare(trainingKeypoints: () throws -> [[Float]]) throws {
        let atlas = try LevelAtlas.mean(keypoints: try trainingKeypoints())
        try Torch.noGrad { try self.atlas.copy_(try Tensor(atlas, shape: [5, 3])) }
    }

    /// The first voxel of level `level`'s crop along each axis of a grid of `grid` voxels: the centre rounded half
    /// up, less half the crop, kept inside the grid.
    public func cropStarts(grid: [Int]) throws -> [[Int]] {
        let centres = try atlas.to(.float32, device: .cpu).toArray(Float.self)
        guard centres.allSatisfy(\.isFinite) else { throw TrainError(.configuration, "the level atlas is not set (it holds \(centres))") }
        return (0..<levels).map { l in
            (0..<3).map { a in min(max(0, Int((Double(centres[3 * l + a]) + 0.5).rounded(.down)) - crop[a] / 2), grid[a] - crop[a]) }
        }
    }

    public func features(_ x: Tensor) throws -> Tensor {
        let shape = x.shape, b = shape[0]
        let grid = Array(shape[2...])
        guard zip(crop, grid).allSatisfy({ $0 <= $1 }) else { throw TrainError(.configuration, "level crops \(crop) do not fit in the grid \(grid)") }
        let crops = try cropStarts(grid: grid).map { starts in
            try (0..<3).reduce(x) { t, a in try t.narrow(2 + a, start: starts[a], length: crop[a]) }
        }
        // Level-major (levels · B, C, d, h, w) through the backbone, then (B, levels · C).
        let f = try inner.features(try Tensor.cat(crops, dim: 0))
        return try f.reshape([levels, b, inner.featureCount]).transpose(0, 1).contiguous().reshape([b, levels * inner.featureCount])
    }
}

/// The head over level crops' features: one linear per condition shared by the levels (so each level's crop is an
/// example for every condition there), plus a bias per label column; logits in train.csv's condition-major order.
public final class LevelHead: Module, UnaryLayer {
    /// Per-level features → one logit per condition.
    public let condition: Linear
    /// One bias per label column (condition × level).
    @Param public var bias: Tensor
    /// Levels and conditions.
    public let levels: Int, conditions: Int

    /// A head for `levels` × `features` inputs and `conditions` × `levels` outputs.
    public init(features: Int, levels: Int, conditions: Int) throws {
        condition = try Linear(features, conditions)
        _bias = Param(wrappedValue: try Tensor.zeros([conditions * levels]))
        self.levels = levels
        self.conditions = conditions
    }

    /// (B, levels · C) → (B, conditions · levels).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let b = x.shape[0]
        let z = try condition(try x.reshape([b, levels, x.shape[1] / levels]))  // (B, level, condition)
        return try z.transpose(1, 2).contiguous().reshape([b, conditions * levels]) + bias
    }
}

/// The head over a two-stage model's side or condition crops: one `Linear` reads every crop's features as three logits
/// (canal, foramen, recess), shared by the crops as the network is, plus one bias per label column; output columns in
/// `RSNA.labelColumns` order (spinal, left foraminal, right foraminal, left subarticular, right subarticular; levels
/// within each).
/// - side crops (`TwoStageLayout.sideShift`), features (B, levels · 2 · C), left then right within a level: the
///   foramen and recess columns read their side's crop, a level's spinal logit is the mean of its two sides';
/// - condition crops (`TwoStageLayout.conditionCrops`), features (B, 25 · C) in label-column order: each column keeps
///   its condition's logit.
public final class CropKindHead: Module, UnaryLayer {
    /// Which crops the features come from.
    public enum Crops: Sendable { case sides, conditions }
    /// A crop's features → (canal, foramen, recess) logits.
    public let kind: Linear
    /// One bias per label column (condition × level).
    @Param public var bias: Tensor
    /// Levels, and the crops read.
    public let levels: Int, crops: Crops

    /// A head for `levels` levels of `crops` of `features` features each, 5 × `levels` outputs.
    public init(features: Int, levels: Int, crops: Crops) throws {
        kind = try Linear(features, 3)
        _bias = Param(wrappedValue: try Tensor.zeros([5 * levels]))
        self.levels = levels
        self.crops = crops
    }

    /// (B, levels · 2 · C) or (B, 25 · C) → (B, 5 · levels).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let b = x.shape[0]
        switch crops {
        case .sides:
            let z = try kind(try x.reshape([b, levels, 2, x.shape[1] / (2 * levels)]))  // (B, level, side, 3)
            func pick(_ side: Int, _ kind: Int) throws -> Tensor { try z.select(2, side).select(2, kind) }  // (B, level)
            let spinal = try (pick(0, 0) + pick(1, 0)) * 0.5
            return try Tensor.cat([spinal, pick(0, 1), pick(1, 1), pick(0, 2), pick(1, 2)], dim: 1) + bias
        case .conditions:
            let columns = 5 * levels
            let z = try kind(try x.reshape([b, columns, x.shape[1] / columns]))  // (B, column, 3)
            // Column c reads the logit of its condition's group: canal, foramina, recesses.
            let which: [Float] = (0..<columns).flatMap { c in (0..<3).map { k in Float(k == RSNA.conditionGroups[c / levels] ? 1 : 0) } }
            return try (z * (try Tensor(which, shape: [1, columns, 3], device: z.device))).sum([2]) + bias
        }
    }
}

/// The level atlas of a set of studies: the mean of their spinal-canal keypoints (label columns 0–4, voxels (d, h, w)).
public enum LevelAtlas {
    /// `keypoints` holds 25 × 3 floats per study (NaN where absent); the result is 5 × 3, or an error naming the
    /// levels no study has a keypoint for.
    public static func mean(keypoints: [[Float]]) throws -> [Float] {
        var sum = [Double](repeating: 0, count: 15), count = [Int](repeating: 0, count: 5)
        for k in keypoints {
            for l in 0..<5 where (0..<3).allSatisfy({ k[3 * l + $0].isFinite }) {
                for a in 0..<3 { sum[3 * l + a] += Double(k[3 * l + a]) }
                count[l] += 1
            }
        }
        let missing = (0..<5).filter { count[$0] == 0 }
        guard missing.isEmpty else {
            throw TrainError(.configuration, "level_crops needs spinal keypoints (train_label_coordinates.csv) of the training studies; none for level(s) \(missing.map { RSNA.levelTitles[$0] })")
        }
        return (0..<15).map { Float(sum[$0] / Double(count[$0 / 3])) }
    }
}
