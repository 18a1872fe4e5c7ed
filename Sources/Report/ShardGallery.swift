import Core
import Foundation
import Shards

/// An HTML page a person reads to check an ingest: the shard summary, the label distribution as bars,
/// and a gallery of samples (each the 3 channels × 3 planes picture with its keypoints).
public enum ShardGallery {
    /// Bar colours for normal/mild, moderate, severe and missing.
    static let classColours = ["#4caf50", "#ffb300", "#e53935", "#9e9e9e"]

    /// Writes the page for the shard folder; at most `limit` samples are drawn, read one at a time.
    public static func write(summary: ShardSummary, dataset: ShardDataset, to url: URL, limit: Int = 48) throws {
        var html = """
        <!doctype html><html><head><meta charset="utf-8"><title>fuse3d shards: \(escape(summary.directory))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:24px;background:#fafafa;color:#222}
        table{border-collapse:collapse;margin:8px 0 20px}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}
        .gallery{display:flex;flex-wrap:wrap;gap:14px}.gallery figure{margin:0;background:#fff;padding:6px;border:1px solid #ddd}
        figcaption{font-size:12px;max-width:260px}.missing{color:#c62828;font-weight:600}
        .legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
        </style></head><body>
        <h1>Shards of \(escape(summary.directory))</h1>
        <table>
        <tr><th>samples</th><td>\(summary.samples) in \(summary.shards) shard(s)</td></tr>
        <tr><th>grid</th><td>\(summary.shape.map(String.init).joined(separator: " × ")) (channels: \(Channels.names.joined(separator: ", ")))</td></tr>
        <tr><th>size</th><td>\(String(format: "%.1f MB on disk; volumes %.1f MB → %.1f MB (ratio %.2f, zstd level %d)", Double(summary.fileBytes) / 1e6, Double(summary.volumeBytes) / 1e6, Double(summary.compressedVolumeBytes) / 1e6, summary.compressionRatio, summary.zstdLevel))</td></tr>
        <tr><th>schema</th><td>version \(summary.schemaVersion)</td></tr>
        </table>
        <h2>Channels</h2><table><tr><th>channel</th><th>present</th><th>missing</th><th>studies missing it</th></tr>

        """
        for c in summary.channels {
            html += "<tr><td>\(c.channel)</td><td>\(c.present)</td><td>\(c.missing)</td><td>\(c.missingStudies.prefix(20).map(String.init).joined(separator: ", "))\(c.missingStudies.count > 20 ? ", …" : "")</td></tr>\n"
        }
        html += "</table>\n<h2>Labels</h2>\n" + labelBars(summary.labels)
        let shown = min(limit, dataset.count)
        html += "<h2>Samples (\(shown) of \(dataset.count))</h2>\n<p>Rows: sagittal T1, sagittal T2/STIR, axial T2; columns: sagittal, coronal, axial planes through the spine; crosses: keypoints (canal red, left/right foramen green/blue, left/right subarticular yellow/magenta).</p>\n<div class=\"gallery\">\n"
        for i in 0..<shown {
            let s = try dataset.read(i)
            let png = try SamplePicture.render(s, scale: max(1, 96 / max(s.shape.max() ?? 1, 1))).pngData().base64EncodedString()
            let missing = Channels.names.enumerated().filter { s.present[$0.offset] == 0 }.map(\.element)
            let severe = s.labels.filter { $0 == 2 }.count, moderate = s.labels.filter { $0 == 1 }.count
            html += "<figure><img alt=\"study \(s.studyID)\" src=\"data:image/png;base64,\(png)\"><figcaption>study \(s.studyID): \(moderate) moderate, \(severe) severe"
            if !missing.isEmpty { html += "<br><span class=\"missing\">missing: \(missing.joined(separator: ", "))</span>" }
            html += "</figcaption></figure>\n"
        }
        html += "</div></body></html>\n"
        try AtomicFile.write(Data(html.utf8), to: url)
    }

    /// One horizontal stacked bar per label column (normal/mild, moderate, severe, missing), as inline SVG.
    static func labelBars(_ labels: [ShardSummary.LabelCounts]) -> String {
        let rowHeight = 16, labelWidth = 300, barWidth = 420
        var svg = "<div class=\"legend\">" + zip(["normal/mild", "moderate", "severe", "missing"], classColours)
            .map { "<span style=\"background:\($1)\"></span>\($0)" }.joined() + "</div>\n"
        svg += "<svg width=\"\(labelWidth + barWidth + 60)\" height=\"\(labels.count * rowHeight + 4)\" font-size=\"11\" font-family=\"monospace\">\n"
        for (row, l) in labels.enumerated() {
            let counts = l.counts + [l.missing]
            let total = max(counts.reduce(0, +), 1)
            let y = row * rowHeight + 2
            svg += "<text x=\"0\" y=\"\(y + 11)\">\(l.column)</text>"
            var x = labelWidth
            for (k, n) in counts.enumerated() where n > 0 {
                let w = max(1, barWidth * n / total)
                svg += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(w)\" height=\"\(rowHeight - 3)\" fill=\"\(classColours[k])\"><title>\(n)</title></rect>"
                x += w
            }
            svg += "<text x=\"\(labelWidth + barWidth + 6)\" y=\"\(y + 11)\">\(counts.prefix(3).map(String.init).joined(separator: "/"))</text>\n"
        }
        return svg + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
