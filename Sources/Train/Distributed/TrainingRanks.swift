import Core
import Foundation

/// The ranks of a training run as the trainer sees them: one process (no group), or one rank of a c10d group.
/// It says who writes (rank 0 alone), splits the global batch and the validation studies, and gathers what the
/// ranks computed apart, so that every rank holds what one process would.
public struct TrainingRanks {
    /// The group, or nil for a single process.
    public let group: ProcessGroup?

    /// A single process.
    public static var single: TrainingRanks { TrainingRanks(group: nil) }

    /// The ranks of `group` (nil: a single process).
    public init(group: ProcessGroup?) { self.group = group }

    /// This rank and the rank count.
    public var rank: Int { group?.rank ?? 0 }
    /// How many ranks train together.
    public var count: Int { group?.worldSize ?? 1 }
    /// Whether this rank writes the run's files (checkpoints, metrics, results, report): rank 0 only.
    public var writes: Bool { rank == 0 }
    /// This rank's part of every global batch.
    public var share: RankShare { RankShare(rank: rank, ranks: count) }

    /// The batch each rank reads for a global batch of `globalBatch` samples; throws unless it splits evenly.
    public func localBatch(_ globalBatch: Int) throws -> Int {
        guard globalBatch % count == 0 else {
            throw DistributedError("batch_size \(globalBatch) (the global batch) does not split evenly across \(count) ranks; "
                                   + "make it a multiple of \(count)")
        }
        return globalBatch / count
    }

    /// The studies this rank validates: every `count`-th of `ordered` (the single process's validation order).
    public func validationShare(_ ordered: [Int64]) -> Set<Int64> {
        Set(ordered.enumerated().filter { $0.offset % count == rank }.map(\.element))
    }

    /// Every rank's predictions put together in the order `ordered` (the single process's order). Each rank
    /// contributes the rows of its own studies; one sum across the ranks fills the rest.
    public func gather(_ mine: StudyPredictions, ordered: [Int64]) throws -> StudyPredictions {
        guard let group else { return mine }
        let row = Dictionary(uniqueKeysWithValues: ordered.enumerated().map { ($0.element, $0.offset) })
        let perStudy = RSNA.probabilitiesPerStudy, columns = RSNA.labelColumns.count
        var probabilities = [Double](repeating: 0, count: ordered.count * perStudy)
        var labels = [Double](repeating: 0, count: ordered.count * columns)
        for (i, id) in mine.studyIDs.enumerated() {
            guard let r = row[id] else { throw DistributedError("rank \(rank) validated study \(id), which is not in the validation set") }
            for k in 0..<perStudy { probabilities[r * perStudy + k] = mine.probabilities[i * perStudy + k] }
            for k in 0..<columns { labels[r * columns + k] = Double(mine.labels[i * columns + k]) }
        }
        let sums = try group.allReduce(probabilities + labels)
        return StudyPredictions(studyIDs: ordered, probabilities: Array(sums[..<probabilities.count]),
                                labels: sums[probabilities.count...].map { Int8($0) })
    }

    /// Every rank's located points (two-stage validation) put together for the studies of `ordered`, so the
    /// localizer's error is measured on every held-out study, as in one process. NaN keypoints (absent labels) stay NaN:
    /// only their own rank's row holds them, the others add zeros.
    /// Each study has `count` points (every label column's, `Located.columns`).
    public func gather(located mine: [Int64: (points: [Float], keypoints: [Float])], ordered: [Int64], count: Int = RSNA.labelColumns.count)
        throws -> [Int64: (points: [Float], keypoints: [Float])] {
        guard let group else { return mine }
        let width = 3 * count + RSNA.keypointValuesPerStudy
        var rows = [Double](repeating: 0, count: ordered.count * width)
        let row = Dictionary(uniqueKeysWithValues: ordered.enumerated().map { ($0.element, $0.offset) })
        for (id, v) in mine {
            guard let r = row[id] else { throw DistributedError("rank \(rank) located study \(id), which is not in the validation set") }
            for (k, x) in (v.points + v.keypoints).enumerated() { rows[r * width + k] = Double(x) }
        }
        let sums = try group.allReduce(rows)
        var out: [Int64: (points: [Float], keypoints: [Float])] = [:]
        for (r, id) in ordered.enumerated() {
            let values = sums[(r * width)..<(r * width + width)].map(Float.init)
            out[id] = (Array(values[..<(3 * count)]), Array(values[(3 * count)...]))
        }
        return out
    }

    /// Waits for every rank (after rank 0 wrote files the others read).
    public func barrier() throws { try group?.barrier() }
}
