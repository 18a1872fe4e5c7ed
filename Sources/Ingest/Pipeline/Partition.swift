import Core
import Foundation

/// One part of a deterministic hash partition of an archive's studies: part `index` of `count`
/// holds the studies whose id hashes (FNV-1a 64 of the id's UTF-8) to `index` modulo `count`, so
/// every machine computes the same split from the archive alone, and adding studies never moves
/// another study to a different part.
public struct Partition: Codable, Equatable, Sendable, CustomStringConvertible {
    /// This part, 0..<count.
    public var index: Int
    /// Number of parts.
    public var count: Int
    /// Where it came from: "--partition", "slurm" or "kubernetes".
    public var source: String

    /// A partition; traps unless 0 ≤ index < count.
    public init(index: Int, count: Int, source: String) {
        precondition(count >= 1 && (0..<count).contains(index), "partition \(index)/\(count)")
        self.index = index
        self.count = count
        self.source = source
    }

    /// "I/N".
    public var description: String { "\(index)/\(count)" }

    /// Whether `studyID` belongs to this part.
    public func contains(studyID: String) -> Bool {
        Int(StableHash.fnv1a64(studyID) % UInt64(count)) == index
    }

    /// Parses "I/N" (e.g. "0/4").
    public static func parse(_ text: String) throws -> Partition {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, (0..<n).contains(i) else {
            throw PartitionError("--partition '\(text)': give I/N with 0 ≤ I < N, e.g. 0/4")
        }
        return Partition(index: i, count: n, source: "--partition")
    }

    /// The environment variable that gives the number of parts of a Kubernetes Indexed Job (set it to
    /// the Job's `completions`; Kubernetes itself exports only the index).
    public static let kubernetesCountVariable = "FUSE3D_PARTITION_COUNT"

    /// The partition a scheduler assigned, from its environment: a Slurm job array
    /// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`) or a Kubernetes
    /// Indexed Job (`JOB_COMPLETION_INDEX` of `kubernetesCount`, else of `FUSE3D_PARTITION_COUNT`).
    /// nil when neither is set; an error when one is set but incomplete or out of range.
    public static func fromEnvironment(_ env: [String: String], kubernetesCount: Int? = nil) throws -> Partition? {
        if let id = env["SLURM_ARRAY_TASK_ID"] {
            guard let task = Int(id), let countText = env["SLURM_ARRAY_TASK_COUNT"], let count = Int(countText), count >= 1 else {
                throw PartitionError("SLURM_ARRAY_TASK_ID=\(id) needs a numeric SLURM_ARRAY_TASK_COUNT (an array job, e.g. sbatch --array=0-3)")
            }
            let low = Int(env["SLURM_ARRAY_TASK_MIN"] ?? "0") ?? 0
            guard (0..<count).contains(task - low) else {
                throw PartitionError("SLURM_ARRAY_TASK_ID=\(id) with SLURM_ARRAY_TASK_MIN=\(low) is not within \(count) tasks; use a contiguous array such as --array=0-\(count - 1)")
            }
            return Partition(index: task - low, count: count, source: "slurm")
        }
        if let id = env["JOB_COMPLETION_INDEX"] {
            guard let index = Int(id) else { throw PartitionError("JOB_COMPLETION_INDEX=\(id) is not a number") }
            guard let count = kubernetesCount ?? env[kubernetesCountVariable].flatMap({ Int($0) }), count >= 1 else {
                throw PartitionError("JOB_COMPLETION_INDEX=\(index) needs the number of parts: pass --partitions N or set \(kubernetesCountVariable) to the Job's completions")
            }
            guard (0..<count).contains(index) else {
                throw PartitionError("JOB_COMPLETION_INDEX=\(index) is not below the \(count) parts")
            }
            return Partition(index: index, count: count, source: "kubernetes")
        }
        return nil
    }
}

/// A partition that cannot be used, and what to give instead.
public struct PartitionError: Error, CustomStringConvertible {
    /// What is wrong and what to do.
    public var description: String
    /// An error with this message.
    public init(_ description: String) { self.description = description }
}
