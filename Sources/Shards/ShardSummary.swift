import Core
import Foundation

/// What a shard folder holds: sizes, compression, label distribution, per-channel voxel
/// statistics and missing series. `text` for people, `Codable` JSON for programs.
public struct ShardSummary: Codable, Equatable, Sendable {
    /// Class counts of one label column.
    public struct LabelCounts: Codable, Equatable, Sendable {
        /// Column name (`spinal_canal_stenosis_l1_l2`, ...).
        public var column: String
        /// Counts of classes 0 (Normal/Mild), 1 (Moderate), 2 (Severe).
        public var counts: [Int]
        /// Samples without this label (−1).
        public var missing: Int

        /// Counts for `column`.
        public init(column: String, counts: [Int], missing: Int) {
            self.column = column
            self.counts = counts
            self.missing = missing
        }
    }

    /// Minimum, maximum, mean and standard deviation of a channel's voxels.
    public struct VoxelStatistics: Codable, Equatable, Sendable {
        /// Smallest and largest voxel value.
        public var min: Double, max: Double
        /// Mean and (population) standard deviation of the voxel values.
        public var mean: Double, std: Double
    }

    /// Presence and voxel statistics of one channel (voxels of the samples where it is present).
    public struct ChannelStatistics: Codable, Equatable, Sendable {
        /// Channel name.
        public var channel: String
        /// Samples where the series was present.
        public var present: Int
        /// Samples where it was missing (a zero channel).
        public var missing: Int
        /// Study ids of the samples where it was missing.
        public var missingStudies: [Int64]
        /// Statistics of the present voxels; nil when not computed or the channel is never present.
        public var voxels: VoxelStatistics?
    }

    /// The folder summarised.
    public var directory: String
    /// The shard format version.
    public var schemaVersion: Int64
    /// Number of shard files.
    public var shards: Int
    /// Number of samples.
    public var samples: Int
    /// Grid shape (D, H, W).
    public var shape: [Int]
    /// Zstandard level of the volumes.
    public var zstdLevel: Int
    /// Size of the shard files on disk.
    public var fileBytes: Int
    /// Bytes the volumes would take uncompressed (samples × 3 × D × H × W × 2).
    public var volumeBytes: Int
    /// Bytes the compressed volume chunks take.
    public var compressedVolumeBytes: Int
    /// volumeBytes / compressedVolumeBytes.
    public var compressionRatio: Double
    /// Source slices over all samples (schema 2; 0 in a schema-1 folder or one ingested without them).
    public var sourceSlices: Int
    /// Bytes the compressed `source_pixels` chunks take.
    public var compressedSourceBytes: Int
    /// Per label column, the class counts.
    public var labels: [LabelCounts]
    /// Per channel, presence and voxel statistics.
    public var channels: [ChannelStatistics]
    /// Pipeline parameters recorded with the data.
    public var parameters: [String: String]

    /// Summarises the folder `directory`. With `voxelStatistics` it decodes every volume once, one
    /// sample at a time; without, it reads only the shards' small per-sample arrays.
    public static func compute(directory: URL, voxelStatistics: Bool = true) throws -> ShardSummary {
        let manifest = try Manifest.load(from: directory)
        var labelCounts = [[Int]](repeating: [0, 0, 0, 0], count: RSNA.labelColumns.count)
        var moments = [(n: Int, sum: Double, squares: Double, min: Double, max: Double)](
            repeating: (0, 0, 0, .infinity, -.infinity), count: 3)
        var present = [0, 0, 0], missing = [[Int64]](repeating: [], count: 3)
        var fileBytes = 0, compressed = 0, sourceSlices = 0, compressedSource = 0
        for shard in manifest.shards {
            let reader = try ShardReader(url: directory.appendingPathComponent(shard.file))
            fileBytes += shard.bytes
            compressed += try reader.volumeLayout().storedBytes
            compressedSource += try reader.sourceLayout()?.storedBytes ?? 0
            for (column, label) in reader.labels.enumerated() { labelCounts[column % 25][label < 0 ? 3 : Int(label)] += 1 }
            for index in 0..<reader.sampleCount {
                for channel in 0..<3 {
                    if reader.present[3 * index + channel] != 0 {
                        present[channel] += 1
                    } else {
                        missing[channel].append(reader.studyIDs[index])
                    }
                }
                sourceSlices += reader.sourceSlices(index).count
                guard voxelStatistics else { continue }
                let sample = try reader.read(index)
                let voxels = sample.volume.count / 3
                for channel in 0..<3 where sample.present[channel] != 0 {
                    var m = moments[channel]
                    for v in sample.volume[(channel * voxels)..<((channel + 1) * voxels)] {
                        let x = Double(v)
                        m.sum += x
                        m.squares += x * x
                        m.min = Swift.min(m.min, x)
                        m.max = Swift.max(m.max, x)
                    }
                    m.n += voxels
                    moments[channel] = m
                }
            }
        }
        let volumeBytes = manifest.samples * 3 * manifest.shape.reduce(1, *) * 2
        let channels = (0..<3).map { c -> ChannelStatistics in
            let m = moments[c]
            let mean = m.n > 0 ? m.sum / Double(m.n) : 0
            let variance = m.n > 0 ? Swift.max(0, m.squares / Double(m.n) - mean * mean) : 0
            let voxels = m.n > 0 ? VoxelStatistics(min: m.min, max: m.max, mean: mean, std: variance.squareRoot()) : nil
            return ChannelStatistics(channel: manifest.channels[c], present: present[c], missing: missing[c].count,
                                     missingStudies: missing[c], voxels: voxels)
        }
        return ShardSummary(
            directory: directory.path, schemaVersion: manifest.schemaVersion, shards: manifest.shards.count,
            samples: manifest.samples, shape: manifest.shape, zstdLevel: manifest.zstdLevel, fileBytes: fileBytes,
            volumeBytes: volumeBytes, compressedVolumeBytes: compressed,
            compressionRatio: compressed > 0 ? Double(volumeBytes) / Double(compressed) : 0,
            sourceSlices: sourceSlices, compressedSourceBytes: compressedSource,
            labels: zip(manifest.labelColumns, labelCounts).map { LabelCounts(column: $0, counts: Array($1.prefix(3)), missing: $1[3]) },
            channels: channels, parameters: manifest.parameters)
    }

    /// The summary as pretty JSON with sorted keys.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// The summary as a few aligned lines of text.
    public var text: String {
        func mb(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
        var lines = [
            "\(directory): \(samples) samples in \(shards) shard(s), grid \(shape.map(String.init).joined(separator: "×")), schema_version \(schemaVersion)",
            "size: \(mb(fileBytes)) on disk; volumes \(mb(volumeBytes)) → \(mb(compressedVolumeBytes)) (ratio \(String(format: "%.2f", compressionRatio)), zstd level \(zstdLevel))",
        ]
        if sourceSlices > 0 {
            let perSample = samples > 0 ? compressedSourceBytes / samples : 0
            lines.append("source pixels: \(sourceSlices) slices, \(mb(compressedSourceBytes)) compressed (\(perSample) bytes a sample)")
        }
        lines.append("channels:")
        for c in channels {
            let stats = c.voxels.map { String(format: "; min %.3f max %.3f mean %.3f std %.3f", $0.min, $0.max, $0.mean, $0.std) } ?? ""
            let some = c.missingStudies.prefix(5).map(String.init).joined(separator: ", ")
            let studies = c.missing == 0 ? "" : " (\(some)\(c.missing > 5 ? ", …" : ""))"
            lines.append("  \(c.channel.padding(toLength: 18, withPad: " ", startingAt: 0)) present \(c.present), missing \(c.missing)\(studies)" + stats)
        }
        lines.append("labels (normal/mild, moderate, severe, missing):")
        for l in labels {
            lines.append("  \(l.column.padding(toLength: 40, withPad: " ", startingAt: 0)) \(l.counts.map(String.init).joined(separator: " ")) \(l.missing)")
        }
        return lines.joined(separator: "\n")
    }
}
