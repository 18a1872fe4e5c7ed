import Config
import Foundation
import Shards

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
///   source_pixels: true       # keep each study's source slices in the shards (schema 2)
/// shards:
///   samples_per_shard: 16     # optional; default: fill shards to target_shard_bytes
///   target_shard_bytes: 1000000000
///   zstd_level: 1
/// ```
///
/// Files are read strictly (`ConfigSection`): an unknown key, a key given twice, a value of the wrong type or out of
/// range is an error naming the file, the line, the key and what is allowed (`p.yaml:3: fusion.size: expected …`).
/// The JSON coding uses the same keys and values, so the ingest report records the pipeline as the user would write it.
public struct PipelineConfig: Codable, Sendable, Equatable {
    /// The pipeline's name (stored in the shards' parameters).
    public var name: String
    /// The fusion parameters (grid size and box, normalization, gap bridging, anti-aliasing).
    public var fusion: FusionParameters
    /// Samples per shard; nil: as many as fit in `targetShardBytes` of compressed data.
    public var samplesPerShard: Int?
    /// A shard is closed once its compressed volumes reach this many bytes (default 1 GB).
    public var targetShardBytes: Int
    /// Zstandard level of the volumes, 1…22 (default `ShardSchema.defaultZstdLevel`, 1).
    public var zstdLevel: Int

    /// Defaults: name "default", default fusion, shards filled to about 1 GB, zstd level 1.
    public init(name: String = "default", fusion: FusionParameters = FusionParameters(), samplesPerShard: Int? = nil,
                targetShardBytes: Int = 1_000_000_000, zstdLevel: Int = ShardSchema.defaultZstdLevel) {
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
            "fusion.source_pixels": String(fusion.sourcePixels),
            "shards.zstd_level": String(zstdLevel),
        ]
    }

    private enum CodingKeys: String, CodingKey { case name, fusion, shards }
    private enum ShardKeys: String, CodingKey {
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

    /// Reads a pipeline YAML file strictly; errors name the file, the line, the key and what is allowed.
    public static func load(_ path: String) throws -> PipelineConfig {
        try parse(try ConfigSection.text(ofFile: path), path: path)
    }

    /// Parses pipeline YAML (`path` names it in errors); unset keys keep their defaults, `name`
    /// defaults to the file's name.
    public static func parse(_ text: String, path: String) throws -> PipelineConfig {
        var c = PipelineConfig(name: (path as NSString).lastPathComponent)
        guard let root = try ConfigSection.root(text, path: path) else { return c }
        try keys.read(root, into: &c)
        do { try c.fusion.validate() } catch { throw PipelineError(path: path, message: "\(error)") }
        return c
    }

    /// The pipeline as YAML that `parse` reads back to an equal value (every key, defaults included).
    public var yaml: String {
        (["# fuse3d pipeline (resolved)"] + Self.keys.yaml(self)).joined(separator: "\n") + "\n"
    }

    /// Every key a pipeline file may hold, one line each ("fusion.size: …"), for --help.
    public static var keyHelp: [String] { keys.help() }

    /// The pipeline file's keys in its documented order: the one place that says how each is read, checked, written
    /// back and described (the JSON coding above uses the same names; a test holds them together).
    static let keys: [ConfigEntry<PipelineConfig>] = [
        .key(.string("name", \.name, "the pipeline's name, stored in the shards (default: the file's name)")),
        .section("fusion", help: "how each study becomes one grid", [
            .int("size", \.fusion.size, in: FusionParameters.sizeRange, "voxels per axis"),
            ConfigKey(name: "box", help: "the grid's box in patient space [\(GridBoxPolicy.yamlForms)]",
                      read: { (f: ConfigSection, c: inout PipelineConfig) in
                          guard let text = try f.string("box") else { return }
                          guard let box = GridBoxPolicy(yamlValue: text) else { throw f.error("box", "expected \(GridBoxPolicy.yamlForms), got \"\(text)\"") }
                          c.fusion.box = box
                      },
                      write: { (c: PipelineConfig) in ["box: \(yamlString(c.fusion.box.yamlValue))"] }),
            ConfigKey(name: "percentiles", help: "the robust normalization range over covered voxels [low, high with 0 ≤ low < high ≤ 100]",
                      read: { (f: ConfigSection, c: inout PipelineConfig) in
                          guard let p = try f.doubles("percentiles", count: 2) else { return }
                          guard p[0] >= 0, p[1] <= 100, p[0] < p[1] else {
                              throw f.error("percentiles", "expected [low, high] with 0 ≤ low < high ≤ 100, got [\(p[0]), \(p[1])]")
                          }
                          c.fusion.lowPercentile = p[0]
                          c.fusion.highPercentile = p[1]
                      },
                      write: { (c: PipelineConfig) in ["percentiles: [\(yamlNumber(c.fusion.lowPercentile)), \(yamlNumber(c.fusion.highPercentile))]"] }),
            .bool("isotropic", \.fusion.isotropic, "cubic voxels (the box's longest edge sets the spacing)"),
            .double("gap_factor", \.fusion.gapFactor, min: 1, "neighbouring slices further apart than this × spacing are not bridged"),
            .bool("antialias", \.fusion.antialias, "box-filter slices to the voxel size before sampling"),
            .bool("source_pixels", \.fusion.sourcePixels, "keep each study's source slices (the series' own pixels) in the shards"),
        ]),
        .section("shards", help: "how the samples are stored", [
            .int("samples_per_shard", \.samplesPerShard, in: 1...1_000_000, "samples per shard (default: fill shards to target_shard_bytes)"),
            .int("target_shard_bytes", \.targetShardBytes, min: 1, "a shard is closed once its compressed volumes reach this many bytes"),
            .int("zstd_level", \.zstdLevel, in: 1...22, "Zstandard level of the volumes"),
        ]),
    ]
}

/// A pipeline file that cannot be used: the file, the line, the key and what is wrong (the configuration reader's error).
public typealias PipelineError = ConfigError
