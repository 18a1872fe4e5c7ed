import Foundation
import Shards
import Yams

/// A pipeline definition (`pipelines/*.yaml`): the fusion and shard parameters of an ingest.
///
/// ```yaml
/// name: demo
/// fusion:
///   size: 64                  # voxels per axis, 8…512
///   box: sagittal-fov         # sagittal-fov | union | reference:<series_id> | fixed:<mm>
///   percentiles: [0.5, 99.5]  # robust normalization range over covered voxels
///   isotropic: true
///   gap_factor: 1.5           # neighbouring slices further apart than this × spacing are not bridged
///   antialias: true           # box-filter slices to the voxel size before sampling
/// shards:
///   samples_per_shard: 16     # optional; default: fill shards to target_shard_bytes
///   target_shard_bytes: 1000000000
///   zstd_level: 3
/// ```
///
/// Files are read strictly: an unknown key, a value of the wrong type or out of range is an error
/// naming the file, the key, its line and what is allowed. The JSON coding uses the same keys and
/// values, so the ingest report records the pipeline as the user would write it.
public struct PipelineConfig: Codable, Sendable, Equatable {
    /// The pipeline's name (stored in the shards' parameters).
    public var name: String
    /// The fusion parameters (grid size and box, normalization, gap bridging, anti-aliasing).
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

    /// The parameters as text, as the shards and the manifest store them (keys as in the pipeline file).
    public var attributes: [String: String] {
        [
            "pipeline": name,
            "fusion.size": String(fusion.size),
            "fusion.box": fusion.box.yamlValue,
            "fusion.percentiles": "\(fusion.lowPercentile),\(fusion.highPercentile)",
            "fusion.isotropic": String(fusion.isotropic),
            "fusion.gap_factor": String(fusion.gapFactor),
            "fusion.antialias": String(fusion.antialias),
            "shards.zstd_level": String(zstdLevel),
        ]
    }

    private enum CodingKeys: String, CodingKey, CaseIterable { case name, fusion, shards }
    private enum ShardKeys: String, CodingKey, CaseIterable {
        case samplesPerShard = "samples_per_shard", targetShardBytes = "target_shard_bytes", zstdLevel = "zstd_level"
    }

    /// Decodes the pipeline file's form (every key but `shards.samples_per_shard` present).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let s = try c.nestedContainer(keyedBy: ShardKeys.self, forKey: .shards)
        self.init(name: try c.decode(String.self, forKey: .name), fusion: try c.decode(FusionParameters.self, forKey: .fusion),
                  samplesPerShard: try s.decodeIfPresent(Int.self, forKey: .samplesPerShard),
                  targetShardBytes: try s.decode(Int.self, forKey: .targetShardBytes), zstdLevel: try s.decode(Int.self, forKey: .zstdLevel))
    }

    /// Encodes the pipeline file's form: name, fusion: {…}, shards: {…}.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(fusion, forKey: .fusion)
        var s = c.nestedContainer(keyedBy: ShardKeys.self, forKey: .shards)
        try s.encodeIfPresent(samplesPerShard, forKey: .samplesPerShard)
        try s.encode(targetShardBytes, forKey: .targetShardBytes)
        try s.encode(zstdLevel, forKey: .zstdLevel)
    }

    /// Reads a pipeline YAML file strictly; errors name the file, the key, its line and what is allowed.
    public static func load(_ path: String) throws -> PipelineConfig {
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
            throw PipelineError(path: path, message: "cannot read the pipeline file")
        }
        return try parse(text, path: path)
    }

    /// Parses pipeline YAML (`path` names it in errors); unset keys keep their defaults, `name`
    /// defaults to the file's name.
    public static func parse(_ text: String, path: String) throws -> PipelineConfig {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw PipelineError(path: path, message: "not valid YAML: \(error)")
        }
        var c = PipelineConfig(name: (path as NSString).lastPathComponent)
        guard let root else { return c }
        let r = StrictYAML(path: path)
        for (key, value) in try r.mapping(root, at: nil, keys: CodingKeys.allCases.map(\.rawValue)) {
            switch key {
            case "name": c.name = try r.string(value, at: key)
            case "fusion":
                for (k, v) in try r.mapping(value, at: key, keys: FusionParameters.CodingKeys.allCases.map(\.rawValue)) {
                    let at = "fusion.\(k)"
                    switch FusionParameters.CodingKeys(rawValue: k)! {
                    case .size: c.fusion.size = try r.int(v, at: at, in: FusionParameters.sizeRange)
                    case .box:
                        let text = try r.string(v, at: at)
                        guard let box = GridBoxPolicy(yamlValue: text) else {
                            throw r.error(at, v, "'\(text)' is not a box; allowed: \(GridBoxPolicy.yamlForms)")
                        }
                        c.fusion.box = box
                    case .percentiles:
                        let p = try r.numbers(v, at: at, count: 2)
                        guard p[0] >= 0, p[1] <= 100, p[0] < p[1] else {
                            throw r.error(at, v, "[\(p[0]), \(p[1])] is out of range; allowed: [low, high] with 0 ≤ low < high ≤ 100")
                        }
                        c.fusion.lowPercentile = p[0]; c.fusion.highPercentile = p[1]
                    case .isotropic: c.fusion.isotropic = try r.bool(v, at: at)
                    case .gapFactor:
                        let g = try r.number(v, at: at)
                        guard g >= 1, g.isFinite else { throw r.error(at, v, "\(g) is out of range; allowed: a number ≥ 1") }
                        c.fusion.gapFactor = g
                    case .antialias: c.fusion.antialias = try r.bool(v, at: at)
                    }
                }
            default:
                for (k, v) in try r.mapping(value, at: key, keys: ShardKeys.allCases.map(\.rawValue)) {
                    let at = "shards.\(k)"
                    switch ShardKeys(rawValue: k)! {
                    case .samplesPerShard: c.samplesPerShard = try r.int(v, at: at, in: 1...1_000_000)
                    case .targetShardBytes: c.targetShardBytes = try r.int(v, at: at, in: 1...Int.max)
                    case .zstdLevel: c.zstdLevel = try r.int(v, at: at, in: 1...22)
                    }
                }
            }
        }
        do { try c.fusion.validate() } catch { throw PipelineError(path: path, message: "\(error)") }
        return c
    }
}

/// A pipeline file that cannot be used, and why.
public struct PipelineError: Error, CustomStringConvertible {
    /// The pipeline file concerned.
    public var path: String
    /// What is wrong with it (unreadable, invalid YAML, a bad key or value), naming the key and line.
    public var message: String
    /// "path: message".
    public var description: String { "\(path): \(message)" }
}

/// Reads the pieces of a YAML node tree strictly, each error naming the file, the dotted key and its line.
private struct StrictYAML {
    let path: String

    func error(_ key: String?, _ node: Node, _ what: String) -> PipelineError {
        let line = node.mark.map { "line \($0.line): " } ?? ""
        return PipelineError(path: path, message: "\(line)\(key.map { "\($0): " } ?? "")\(what)")
    }

    /// The mapping's entries in file order; a key outside `keys` or given twice is an error. A null
    /// section (`fusion:` with nothing under it) is an empty mapping.
    func mapping(_ node: Node, at key: String?, keys: [String]) throws -> [(String, Node)] {
        if node.null != nil { return [] }
        guard let m = node.mapping else {
            throw error(key, node, "expected a mapping with the keys \(keys.joined(separator: ", "))")
        }
        var seen = Set<String>()
        return try m.map { k, v in
            let name = k.string ?? ""
            let dotted = key.map { "\($0).\(name)" } ?? name
            guard keys.contains(name) else {
                throw error(dotted, k, "unknown key; allowed keys\(key.map { " under \($0)" } ?? ""): \(keys.joined(separator: ", "))")
            }
            guard seen.insert(name).inserted else { throw error(dotted, k, "given twice") }
            return (name, v)
        }
    }

    func string(_ node: Node, at key: String) throws -> String {
        guard case .scalar(let s) = node, node.null == nil else { throw error(key, node, "expected text") }
        return s.string
    }

    func bool(_ node: Node, at key: String) throws -> Bool {
        guard let b = node.bool else { throw error(key, node, "'\(node.string ?? "(not a value)")' is not a boolean; allowed: true or false") }
        return b
    }

    func int(_ node: Node, at key: String, in range: ClosedRange<Int>) throws -> Int {
        guard let i = node.int else { throw error(key, node, "'\(node.string ?? "(not a value)")' is not a whole number") }
        guard range.contains(i) else {
            throw error(key, node, "\(i) is out of range; allowed: \(range.lowerBound)…\(range.upperBound == Int.max ? "" : String(range.upperBound))")
        }
        return i
    }

    func number(_ node: Node, at key: String) throws -> Double {
        guard let d = node.float, d.isFinite else { throw error(key, node, "'\(node.string ?? "(not a value)")' is not a number") }
        return d
    }

    func numbers(_ node: Node, at key: String, count: Int) throws -> [Double] {
        guard let seq = node.sequence, seq.count == count else { throw error(key, node, "expected a list of \(count) numbers") }
        return try seq.map { try number($0, at: key) }
    }
}
