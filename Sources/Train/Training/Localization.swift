import Core
import Foundation
import Shards

/// How far a localizer's points are from the labels' (patient millimetres), over every labelled point of every label
/// column (the canal, the foramina and the recesses at each level): the median and 90th percentile, the median per level,
/// and the median and 90th percentile per condition group. What `metrics.csv`, `summary.json` and the report show for
/// stage one.
public struct LocalizationError: Codable, Sendable, Equatable {
    /// Median and 90th percentile of the distances (mm) over all known points.
    public var medianMm: Double, p90Mm: Double
    /// Median distance per level (L1/L2 … L5/S1; NaN where no point is known), mm.
    public var perLevelMm: [Double]
    /// Median and 90th percentile per condition group (spinal canal, neural foramina, subarticular recesses; NaN where no
    /// point is known), mm; nil in runs made before they were recorded.
    public var perGroupMedianMm: [Double]?, perGroupP90Mm: [Double]?
    /// Points measured.
    public var points: Int

    /// From per-study distances (mm; NaN where the label has no point), one per label column (`RSNA.labelColumns` order,
    /// 25) or one per level (5: the canal's only).
    public init(distances: [[Double]]) {
        let levels = RSNA.levels.count
        let all = distances.flatMap { $0 }.filter(\.isFinite)
        medianMm = Self.quantile(all, 0.5)
        p90Mm = Self.quantile(all, 0.9)
        perLevelMm = (0..<levels).map { l in Self.quantile(distances.flatMap { d in stride(from: l, to: d.count, by: levels).map { d[$0] } }.filter(\.isFinite), 0.5) }
        let group: [[Double]] = (0..<3).map { g in
            distances.flatMap { d in d.indices.filter { RSNA.conditionGroups[$0 / levels] == g }.map { d[$0] } }.filter(\.isFinite)
        }
        perGroupMedianMm = group.map { Self.quantile($0, 0.5) }
        perGroupP90Mm = group.map { Self.quantile($0, 0.9) }
        points = all.count
    }

    /// From metrics.csv's columns (`EpochRecord.localizationColumns`): median, p90, the median per level, then the median
    /// and p90 per group where the file has them (the count is not kept there).
    init(columns: [Double], groups: [Double]?) {
        medianMm = columns[0]
        p90Mm = columns[1]
        perLevelMm = Array(columns[2...])
        perGroupMedianMm = groups.map { g in (0..<3).map { g[2 * $0] } }
        perGroupP90Mm = groups.map { g in (0..<3).map { g[2 * $0 + 1] } }
        points = 0
    }

    /// The q-quantile with linear interpolation between order statistics (numpy's default); NaN for no values.
    static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let s = values.sorted(), x = q * Double(s.count - 1)
        let i = Int(x.rounded(.down)), f = x - Double(i)
        return i + 1 < s.count ? s[i] + f * (s[i + 1] - s[i]) : s[i]
    }

    /// Distances (mm) of `points` from `truth` (both voxels (d, h, w) of the grid of `affine`, `count` × 3 each; the truth
    /// NaN where absent), measured in patient space through the affine.
    public static func distances(points: [Float], truth: [Float], affine: [Double], count: Int = RSNA.labelColumns.count) -> [Double] {
        (0..<count).map { l in
            let d = (0..<3).map { Double(points[3 * l + $0]) - Double(truth[3 * l + $0]) }
            guard d.allSatisfy(\.isFinite) else { return .nan }
            let mm = (0..<3).map { r in (0..<3).map { c in affine[4 * r + c] * d[c] }.reduce(0, +) }
            return mm.map { $0 * $0 }.reduce(0, +).squareRoot()
        }
    }
}

/// Files a batch's located points (`sum` over `models` models, 25 × 3 per sample) by study, their mean beside the
/// samples' keypoint values (`RSNA.keypointValuesPerStudy`): what `predictLocating` returns.
func recordLocated(_ sum: [Float], models: Int, batch: Batch, into out: inout [Int64: (points: [Float], keypoints: [Float])]) throws {
    let mean = sum.map { $0 / Float(models) }
    let keypoints = try batch.keypoints.to(.float32, device: .cpu).toArray(Float.self)
    let per = mean.count / batch.count, values = RSNA.keypointValuesPerStudy
    for (i, id) in batch.studyIDs.enumerated() {
        out[id] = (Array(mean[(per * i)..<(per * i + per)]), Array(keypoints[(values * i)..<(values * i + values)]))
    }
}

/// The affine (16 values) of every study of `dataset`.
public func studyAffines(_ dataset: ShardDataset) throws -> [Int64: [Double]] {
    var out: [Int64: [Double]] = [:]
    for k in dataset.manifest.shards.indices {
        let reader = try dataset.reader(k)
        for (i, study) in reader.studyIDs.enumerated() { out[study] = Array(reader.affine(i)) }
    }
    return out
}

/// The error of located points (every label column's) against the studies' keypoints.
public func localizationError(_ located: [Int64: (points: [Float], keypoints: [Float])], affines: [Int64: [Double]]) -> LocalizationError {
    LocalizationError(distances: located.sorted { $0.key < $1.key }.compactMap { id, v in
        affines[id].map { LocalizationError.distances(points: v.points, truth: v.keypoints, affine: $0, count: v.points.count / 3) }
    })
}

/// Each label column's mean offset (voxels) from its level's spinal-canal keypoint over `keypoints` (25 × 3 per study,
/// NaN where absent): what a two-stage model without condition points holds as `offsets`, so the localizer's level points
/// give every condition's point.
public func conditionOffsets(keypoints: [[Float]]) -> [Float] {
    let columns = RSNA.labelColumns.count, levels = RSNA.levels.count
    var sum = [Double](repeating: 0, count: 3 * columns), count = [Int](repeating: 0, count: columns)
    for k in keypoints {
        for column in 0..<columns {
            let level = column % levels
            let d = (0..<3).map { Double(k[3 * column + $0]) - Double(k[3 * level + $0]) }
            guard d.allSatisfy(\.isFinite) else { continue }
            for a in 0..<3 { sum[3 * column + a] += d[a] }
            count[column] += 1
        }
    }
    return (0..<(3 * columns)).map { count[$0 / 3] > 0 ? Float(sum[$0] / Double(count[$0 / 3])) : 0 }
}

/// Located points (`predictLocating`'s: 25 × 3 voxels (d, h, w) per study) mapped through each study's affine in
/// `dataset` to patient LPS mm: study id → 25 × (x, y, z).
public func patientPoints(_ located: [Int64: (points: [Float], keypoints: [Float])], dataset: ShardDataset) throws -> [Int64: [Double]] {
    let affines = try studyAffines(dataset)
    var out: [Int64: [Double]] = [:]
    for (id, v) in located {
        guard let a = affines[id] else { continue }
        var mm: [Double] = []
        for column in 0..<RSNA.labelColumns.count {
            let voxel: [Double] = (0..<3).map { Double(v.points[3 * column + $0]) }
            for r in 0..<3 { mm.append(a[4 * r] * voxel[0] + a[4 * r + 1] * voxel[1] + a[4 * r + 2] * voxel[2] + a[4 * r + 3]) }
        }
        out[id] = mm
    }
    return out
}
