import Foundation
import Shards
import Yams

/// A pipeline definition (`pipelines/*.yaml`): the fusion and shard parameters of an ingest.
///
/// ```yaml
/// name: demo
/// fusion:
///   size: 64                  # voxels per axis
///   box: sagittal-fov         # sagittal-fov | union | reference:<series_id> | fixed:<mm>
///   percentiles: [0.5, 99.5]  # robust normalization range over covered voxels
///   isotropic: true
///   gap_factor: 1.5           # neighbouring slices further apart than this × spacing are not bridged
/// shards:
///   samples_per_shard: 16     # optional; default: fill shards to target_shard_bytes
///   target_shard_bytes: 1000000000
///   zstd_level: 3
/// ```
public struct PipelineConfig: Codable, Sendable, Equatable {
    /// The pipeline's name (stored in the shards' parameters).
    public var name: String
    /// The fusion parameters (grid size and box, normalization, gap bridging).
    public var fusion: FusionParameters
    /// Samples per shard; nil: as many as fit in `targetShardBytes` of compressed data.
    public var samplesPerShard: Int?
    /// A shard is closed once its compressed volumes reach this many bytes (default 1 GB).
    public var targetShardBytes: Int
    /// Zstandard level of the volumes, 1…22 (default 3).
    public var zstdLevel: Int

    /// Defaults: name "default", default fusion, shards filled to about 1 GB, zstd level 3.
    public init(name: String = "default", fusion: FusionParameters = FusionParameters(), samplesPerShard: Int? = nil,
                targetShardBytes: Int = 1_000_000_000, zstdLevel: Int = 3) {
        self.name = name
        self.fusion = fusion
        self.samplesPerShard = samplesPerShard
        self.targetShardBytes = targetShardBytes
        self.zstdLevel = zstdLevel
    }

    /// The shard writer's options, with every parameter recorded as a shard attribute.
    public func shardWriterOptions() -> ShardWriterOptions {
        ShardWriterOptions(samplesPerShard: samplesPerShard, targetShardBytes: targetShardBytes, zstdLevel: zstdLevel,
                           parameters: attributes)
    }

    /// The parameters as text, as the shards store them.
    public var attributes: [String: String] {
        [
            "pipeline": name,
            "fusion.size": String(fusion.size),
            "fusion.box": YAMLForm.box(fusion.box),
            "fusion.percentiles": "\(fusion.lowPercentile),\(fusion.highPercentile)",
            "fusion.isotropic": String(fusion.isotropic),
            "fusion.gap_factor": String(fusion.gapFactor),
            "shards.zstd_level": String(zstdLevel),
        ]
    }

    /// Reads a pipeline YAML file; errors name the file and the field.
    public static func load(_ path: String) throws -> PipelineConfig {
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
            throw PipelineError(path: path, message: "cannot read the pipeline file")
        }
        let y: YAMLForm
        do {
            y = try YAMLDecoder().decode(YAMLForm.self, from: text)
        } catch {
            throw PipelineError(path: path, message: "not a valid pipeline: \(error)")
        }
        var c = PipelineConfig(name: y.name ?? (path as NSString).lastPathComponent)
        if let f = y.fusion {
            if let s = f.size { c.fusion.size = s }
            if let b = f.box { c.fusion.box = try YAMLForm.parseBox(b, path: path) }
            if let p = f.percentiles {
                guard p.count == 2 else { throw PipelineError(path: path, message: "fusion.percentiles needs two numbers") }
                c.fusion.lowPercentile = p[0]; c.fusion.highPercentile = p[1]
            }
            if let i = f.isotropic { c.fusion.isotropic = i }
            if let g = f.gap_factor { c.fusion.gapFactor = g }
        }
        if let s = y.shards {
            c.samplesPerShard = s.samples_per_shard ?? c.samplesPerShard
            if let t = s.target_shard_bytes { c.targetShardBytes = t }
            if let z = s.zstd_level { c.zstdLevel = z }
        }
        do { try c.fusion.validate() } catch { throw PipelineError(path: path, message: "\(error)") }
        guard (1...22).contains(c.zstdLevel) else { throw PipelineError(path: path, message: "shards.zstd_level must be 1…22") }
        return c
    }
}

/// A pipeline file that cannot be used, and why.
public struct PipelineError: Error, CustomStringConvertible {
    /// The pipeline file concerned.
    public var path: String
    /// What is wrong with it (unreadable, invalid YAML, a bad field).
    public var message: String
    /// "path: message".
    public var description: String { "\(path): \(message)" }
}

/// The YAML spelling of a pipeline (snake_case keys, every field optional).
private struct YAMLForm: Decodable {
    struct Fusion: Decodable {
        var size: Int?
        var box: String?
        var percentiles: [Double]?
        var isotropic: Bool?
        var gap_factor: Double?
    }
    struct ShardsForm: Decodable {
        var samples_per_shard: Int?
        var target_shard_bytes: Int?
        var zstd_level: Int?
    }
    var name: String?
    var fusion: Fusion?
    var shards: ShardsForm?

    static func parseBox(_ s: String, path: String) throws -> GridBoxPolicy {
        switch s {
        case "sagittal-fov": return .sagittalFieldOfView
        case "union": return .union
        default:
            if s.hasPrefix("reference:") { return .referenceSeries(String(s.dropFirst("reference:".count))) }
            if s.hasPrefix("fixed:"), let mm = Double(s.dropFirst("fixed:".count)), mm > 0 { return .fixed(millimetres: mm) }
            throw PipelineError(path: path, message: "fusion.box '\(s)': use sagittal-fov, union, reference:<series_id> or fixed:<mm>")
        }
    }

    static func box(_ b: GridBoxPolicy) -> String {
        switch b {
        case .sagittalFieldOfView: return "sagittal-fov"
        case .union: return "union"
        case .referenceSeries(let s): return "reference:\(s)"
        case .fixed(let mm): return "fixed:\(mm)"
        }
    }
}
