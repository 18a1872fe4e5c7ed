import Foundation
import Shards

/// `RUN/report.html`: one self-contained page (inline SVG and CSS, nothing fetched) drawn from the run's
/// own files — `summary.json` and every `fold-I/metrics.csv` — so that it needs no libtorch and can be
/// redrawn at any time: loss, score (with the baseline as a line) and learning rate per epoch for every
/// fold, the per-level table, and confusion matrices per condition.
public enum TrainingReport {
    /// A run file that cannot be read, naming it.
    public struct Error: Swift.Error, CustomStringConvertible {
        /// The file and the problem.
        public var path: String, message: String
        /// "file: message".
        public var description: String { "\(path): \(message)" }
    }

    /// Writes `run/report.html` and returns its URL.
    @discardableResult
    public static func write(run: URL) throws -> URL {
        let summaryURL = run.appendingPathComponent("summary.json")
        guard let data = try? Data(contentsOf: summaryURL),
              let summary = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let folds = summary["folds"] as? [[String: Any]] else {
            throw Error(path: summaryURL.path, message: "missing or not a run summary; train a fold first")
        }
        var metrics: [(fold: Int, rows: [[String: Double]])] = []
        for fold in folds {
            guard let f = fold["fold"] as? Int else { continue }
            let url = run.appendingPathComponent("fold-\(f)/metrics.csv")
            metrics.append((f, try readCSV(url)))
        }
        let mean = summary["mean_val_rsna_score"] as? Double ?? .nan, prior = summary["prior_rsna_score"] as? Double ?? .nan

        var html = """
        <!doctype html><html><head><meta charset="utf-8"><title>fuse3d training report: \(escapeXML(run.lastPathComponent))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:24px;background:#fafafa;color:#222;max-width:1400px}
        table{border-collapse:collapse;margin:8px 0 20px;background:#fff}td,th{padding:3px 9px;border:1px solid #ddd;text-align:right}
        th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}
        .good{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}.cm{display:inline-block;margin-right:18px;vertical-align:top}
        </style></head><body>
        <h1>Training report: \(escapeXML(run.lastPathComponent))</h1>
        """
        let ratio = mean / prior
        html += String(format: "<p>Mean validation RSNA score <b>%.4f</b> against the best constant prediction's %.4f: ratio <span class=\"%@\">%.3f</span> (lower is better; ≤ 0.9 beats the baseline visibly).</p>",
                       mean, prior, (ratio <= 0.9 ? "good" : "bad") as NSString, ratio)
        html += "<table><tr><th>fold</th><th>best score</th><th>baseline</th><th>ratio</th><th>best epoch</th><th>spinal</th><th>foraminal</th><th>subarticular</th><th>any_severe_spinal</th></tr>"
        for fold in folds {
            let v = { (k: String) in fold[k] as? Double ?? .nan }
            html += String(format: "<tr><td>%d</td><td>%.4f</td><td>%.4f</td><td>%.3f</td><td>%d</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%.4f</td></tr>",
                           fold["fold"] as? Int ?? -1, v("val_rsna_score"), v("prior_rsna_score"), v("val_rsna_score") / v("prior_rsna_score"),
                           fold["best_epoch"] as? Int ?? 0, v("spinal"), v("foraminal"), v("subarticular"), v("any_severe_spinal"))
        }
        html += "</table>"

        func series(_ key: String, dashed: Bool = false, suffix: String = "") -> [SVGPlot.Series] {
            metrics.enumerated().map { i, m in
                SVGPlot.Series(name: "fold \(m.fold)\(suffix)", colour: SVGPlot.palette[i % SVGPlot.palette.count],
                               points: m.rows.map { ($0["epoch"] ?? .nan, $0[key] ?? .nan) }, dashed: dashed)
            }
        }
        let epochs = metrics.flatMap { $0.rows.compactMap { $0["epoch"] } }
        let baseline = SVGPlot.Series(name: "baseline", colour: "#555", points: [(epochs.min() ?? 1, prior), (epochs.max() ?? 1, prior)], dashed: true)
        html += "<h2>Per epoch</h2><div class=\"plots\">"
        html += SVGPlot(title: "Loss (solid: train, dashed: validation)", xLabel: "epoch", yLabel: "weighted log loss",
                        series: series("train_loss") + series("val_loss", dashed: true, suffix: " val")).svg
        html += SVGPlot(title: "Validation RSNA score", xLabel: "epoch", yLabel: "score", series: series("val_score") + [baseline]).svg
        html += SVGPlot(title: "Learning rate (last step of the epoch)", xLabel: "epoch", yLabel: "lr", series: series("lr")).svg
        html += "</div>"

        html += "<h2>Per condition-level (best epoch of each fold; weighted log loss, baseline in brackets)</h2>"
        for fold in folds {
            guard let best = fold["best"] as? [String: Any], let base = fold["prior"] as? [String: Any],
                  let losses = best["column_losses"] as? [Any], let baseLosses = base["column_losses"] as? [Any],
                  let confusion = best["confusion"] as? [[[Int]]] else { continue }
            html += "<h3>Fold \(fold["fold"] as? Int ?? -1)</h3><table><tr><th>condition</th>" + RSNA.levels.map { "<th>\($0)</th>" }.joined() + "</tr>"
            for (c, condition) in RSNA.conditions.enumerated() {
                html += "<tr><td>\(condition)</td>"
                for l in 0..<5 {
                    let a = number(losses[c * 5 + l]), b = number(baseLosses[c * 5 + l])
                    html += String(format: "<td class=\"%@\">%.3f (%.3f)</td>", (a < b ? "good" : "") as NSString, a, b)
                }
                html += "</tr>"
            }
            html += "</table><div>"
            for (c, condition) in RSNA.conditions.enumerated() where c < confusion.count {
                html += "<div class=\"cm\"><b>\(condition)</b><table><tr><th>true \\ predicted</th><th>normal/mild</th><th>moderate</th><th>severe</th></tr>"
                for (k, row) in confusion[c].enumerated() {
                    html += "<tr><td>\(["normal/mild", "moderate", "severe"][k])</td>" + row.map { "<td>\($0)</td>" }.joined() + "</tr>"
                }
                html += "</table></div>"
            }
            html += "</div>"
        }
        html += "<p>Files: summary.json, config.yaml, splits.json, fold-I/metrics.csv, fold-I/best.safetensors (PyTorch names), fold-I/last.safetensors (resume state).</p></body></html>\n"
        let url = run.appendingPathComponent("report.html")
        try html.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// A JSON number, or NaN for what JSONEncoder wrote for a non-finite value.
    private static func number(_ v: Any) -> Double { (v as? Double) ?? (v as? String).flatMap(Double.init) ?? .nan }

    /// A CSV with a header into one dictionary per row (numeric cells only).
    static func readCSV(_ url: URL) throws -> [[String: Double]] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { throw Error(path: url.path, message: "cannot be read") }
        let lines = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        guard let header = lines.first else { throw Error(path: url.path, message: "is empty") }
        return lines.dropFirst().map { row in
            Dictionary(uniqueKeysWithValues: zip(header, row).compactMap { k, v in Double(v).map { (k, $0) } })
        }
    }
}
