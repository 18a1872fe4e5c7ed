import Core
import Foundation
import Shards

/// A K-fold split by study, stratified on the worst spinal canal grade (none, normal/mild, moderate,
/// severe): each stratum is shuffled with the seed and dealt round-robin, continuing the deal across
/// strata, so every fold gets its share of every stratum and the fold sizes differ by at most one.
/// Written to `RUN/splits.json` and reused by every later command on the run.
public struct FoldSplit: Codable, Equatable, Sendable {
    /// Number of folds.
    public var k: Int
    /// The seed of the shuffles.
    public var seed: UInt64
    /// What the folds are stratified on.
    public var stratifiedOn: String
    /// Study ids held out by each fold, sorted.
    public var folds: [[Int64]]

    /// Splits `labels` (study id → 25 labels, −1 missing) into `k` folds.
    public init(labels: [Int64: [Int8]], k: Int, seed: UInt64) throws {
        guard k >= 2 else { throw TrainError(.runFolder, "a K-fold split needs k ≥ 2, got \(k)") }
        guard labels.count >= k else { throw TrainError(.runFolder, "\(labels.count) studies cannot be split into \(k) folds") }
        var strata: [Int: [Int64]] = [:]
        for (study, row) in labels { strata[Self.worstSpinalGrade(row), default: []].append(study) }
        var rng = SplitMix64(seed: seed ^ 0x5EED_F01D)
        var folds = [[Int64]](repeating: [], count: k)
        var dealt = 0
        for stratum in strata.keys.sorted() {
            var studies = strata[stratum]!.sorted()
            for i in stride(from: studies.count - 1, to: 0, by: -1) {
                studies.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
            for study in studies {
                folds[dealt % k].append(study)
                dealt += 1
            }
        }
        self.k = k
        self.seed = seed
        stratifiedOn = "worst_spinal_grade"
        self.folds = folds.map { $0.sorted() }
    }

    /// The worst labelled spinal canal grade of a study (0, 1, 2), or −1 when none is labelled.
    public static func worstSpinalGrade(_ labels: [Int8]) -> Int { Int(labels.prefix(5).max() ?? -1) }

    /// Studies fold `fold` trains on (every other fold's).
    public func training(_ fold: Int) -> Set<Int64> { Set(folds.enumerated().filter { $0.offset != fold }.flatMap(\.element)) }

    /// Studies fold `fold` validates on.
    public func validation(_ fold: Int) -> Set<Int64> { Set(folds[fold]) }
}

/// Study id → its 25 labels for every sample of the dataset, read from the shards' label arrays alone.
public func studyLabels(_ dataset: ShardDataset) throws -> [Int64: [Int8]] {
    var out: [Int64: [Int8]] = [:]
    for k in dataset.manifest.shards.indices {
        let reader = try dataset.reader(k)
        for (i, study) in reader.studyIDs.enumerated() { out[study] = Array(reader.labels[(25 * i)..<(25 * i + 25)]) }
    }
    return out
}

/// The keypoints (25 × 3 voxel coordinates, NaN where absent) of the given studies in `dataset`, in shard order.
public func studyKeypoints(_ dataset: ShardDataset, studies: Set<Int64>) throws -> [[Float]] {
    var out: [[Float]] = []
    for k in dataset.manifest.shards.indices {
        let reader = try dataset.reader(k)
        for (i, study) in reader.studyIDs.enumerated() where studies.contains(study) { out.append(Array(reader.keypoints(i))) }
    }
    return out
}

extension JSONEncoder {
    /// Pretty, sorted, snake_case keys, slashes unescaped: how every run file is written.
    static var pretty: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.keyEncodingStrategy = .convertToSnakeCase
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }
}

extension JSONDecoder {
    /// Reads what `JSONEncoder.pretty` wrote.
    static var snakeCase: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }
}
