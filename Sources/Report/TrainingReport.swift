import Core
import Foundation

/// `RUN/report.html`: one self-contained page (inline SVG and CSS, nothing fetched) drawn from a run's
/// records, which the caller reads through Train's `RunFolder` and hands over as plain values (Report imports
/// neither Train nor libtorch, so the page can be redrawn anywhere): loss, score (with the baseline as a line)
/// and learning rate per epoch for every fold, the per-level table, and confusion matrices per condition.
public enum TrainingReport {
    /// What the page shows of a run.
    public struct Run: Sendable {
        /// The run's name (its folder's), the mean of the folds' best scores and of their baselines.
        public var name: String, meanScore: Double, priorScore: Double
        /// Every finished fold, in fold order.
        public var folds: [Fold]

        /// A run named `name` with its folds.
        public init(name: String, meanScore: Double, priorScore: Double, folds: [Fold]) {
            self.name = name
            self.meanScore = meanScore
            self.priorScore = priorScore
            self.folds = folds
        }
    }

    /// One fold: its best epoch's scores, per-level losses and confusion matrices, and its per-epoch curves.
    public struct Fold: Sendable {
        /// The fold, its best score and the baseline's on its validation studies, the best epoch (1-based).
        public var fold: Int, score: Double, priorScore: Double, bestEpoch: Int
        /// The best epoch's four group losses.
        public var spinal: Double, foraminal: Double, subarticular: Double, anySevereSpinal: Double
        /// Weighted log loss per condition-level (5 conditions × 5 levels) of the best epoch and of the baseline.
        public var columnLosses: [Double], priorColumnLosses: [Double]
        /// Confusion matrices of the best epoch per condition (3 × 3: true rows, predicted columns).
        public var confusion: [[[Int]]]
        /// Per epoch, in order.
        public var epochs: [Epoch]
        /// Two-stage models: the picture of the localizer's held-out points (a path relative to the report), or nil.
        public var localizerPicture: String?
        /// The last epoch's score (no choice of epoch flatters it) and, with an EMA, that of the trained weights
        /// themselves at the last epoch; nil where the run did not record them.
        public var lastScore: Double? = nil, lastWithoutEmaScore: Double? = nil

        /// A fold's values, as named.
        public init(fold: Int, score: Double, priorScore: Double, bestEpoch: Int, spinal: Double, foraminal: Double, subarticular: Double,
                    anySevereSpinal: Double, columnLosses: [Double], priorColumnLosses: [Double], confusion: [[[Int]]], epochs: [Epoch],
                    localizerPicture: String? = nil) {
            self.localizerPicture = localizerPicture
            self.fold = fold
            self.score = score
            self.priorScore = priorScore
            self.bestEpoch = bestEpoch
            self.spinal = spinal
            self.foraminal = foraminal
            self.subarticular = subarticular
            self.anySevereSpinal = anySevereSpinal
            self.columnLosses = columnLosses
            self.priorColumnLosses = priorColumnLosses
            self.confusion = confusion
            self.epochs = epochs
        }
    }

    /// One epoch's curve points.
    public struct Epoch: Sendable {
        /// Epoch (1-based), mean training loss, validation loss and score, the learning rate of its last step.
        public var epoch: Int, trainLoss: Double, valLoss: Double, valScore: Double, lr: Double
        /// Two-stage models: the localizer's held-out error (mm), median and 90th percentile, and the median per level.
        public var localizerMedianMm: Double?, localizerP90Mm: Double?, localizerPerLevelMm: [Double]?
        /// Two-stage models: the median and 90th percentile per condition group (canal, foramina, recesses), mm.
        public var localizerGroupMedianMm: [Double]? = nil, localizerGroupP90Mm: [Double]? = nil

        /// An epoch's values, as named.
        public init(epoch: Int, trainLoss: Double, valLoss: Double, valScore: Double, lr: Double, localizerMedianMm: Double? = nil,
                    localizerP90Mm: Double? = nil, localizerPerLevelMm: [Double]? = nil) {
            self.localizerMedianMm = localizerMedianMm
            self.localizerP90Mm = localizerP90Mm
            self.localizerPerLevelMm = localizerPerLevelMm
            self.epoch = epoch
            self.trainLoss = trainLoss
            self.valLoss = valLoss
            self.valScore = valScore
            self.lr = lr
        }
    }

    /// Writes the page for `run` to `url` (complete-or-absent) and returns `url`.
    @discardableResult
    public static func write(_ run: Run, to url: URL) throws -> URL {
        let folds = run.folds, mean = run.meanScore, prior = run.priorScore
        var html = """
        <!doctype html><html><head><meta charset="utf-8"><title>fuse3d training report: \(escapeXML(run.name))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:24px;background:#fafafa;color:#222;max-width:1400px}
        table{border-collapse:collapse;margin:8px 0 20px;background:#fff}td,th{padding:3px 9px;border:1px solid #ddd;text-align:right}
        th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}
        .good{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}.cm{display:inline-block;margin-right:18px;vertical-align:top}
        </style></head><body>
        <h1>Training report: \(escapeXML(run.name))</h1>
        """
        let ratio = mean / prior
        html += String(format: "<p>Mean validation RSNA score <b>%.4f</b> against the best constant prediction's %.4f: ratio <span class=\"%@\">%.3f</span> (lower is better; ≤ 0.9 beats the baseline visibly).</p>",
                       mean, prior, (ratio <= 0.9 ? "good" : "bad") as NSString, ratio)
        html += "<p>The best epoch is chosen on the studies it is scored on, which flatters it: the last epoch's score (and, with an EMA, that of the trained weights without it) shows by how much. <code>fuse3d evaluate</code> on studies no fold saw is the figure to quote.</p>"
        html += "<table><tr><th>fold</th><th>best score</th><th>baseline</th><th>ratio</th><th>best epoch</th><th>spinal</th><th>foraminal</th><th>subarticular</th><th>any_severe_spinal</th><th>last epoch (ratio)</th><th>last, no EMA (ratio)</th></tr>"
        func withRatio(_ score: Double?, _ prior: Double) -> String {
            score.map { String(format: "%.4f (%.3f)", $0, $0 / prior) } ?? "–"
        }
        for f in folds {
            html += String(format: "<tr><td>%d</td><td>%.4f</td><td>%.4f</td><td>%.3f</td><td>%d</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%.4f</td>",
                           f.fold, f.score, f.priorScore, f.score / f.priorScore, f.bestEpoch, f.spinal, f.foraminal, f.subarticular, f.anySevereSpinal)
                + "<td>\(withRatio(f.lastScore, f.priorScore))</td><td>\(withRatio(f.lastWithoutEmaScore, f.priorScore))</td></tr>"
        }
        html += "</table>"

        func series(_ value: (Epoch) -> Double, dashed: Bool = false, suffix: String = "") -> [SVGPlot.Series] {
            folds.enumerated().map { i, f in
                SVGPlot.Series(name: "fold \(f.fold)\(suffix)", colour: SVGPlot.palette[i % SVGPlot.palette.count],
                               points: f.epochs.map { (Double($0.epoch), value($0)) }, dashed: dashed)
            }
        }
        let epochs = folds.flatMap { $0.epochs.map { Double($0.epoch) } }
        let baseline = SVGPlot.Series(name: "baseline", colour: "#555", points: [(epochs.min() ?? 1, prior), (epochs.max() ?? 1, prior)], dashed: true)
        html += "<h2>Per epoch</h2><div class=\"plots\">"
        html += SVGPlot(title: "Loss (solid: train, dashed: validation)", xLabel: "epoch", yLabel: "weighted log loss",
                        series: series(\.trainLoss) + series(\.valLoss, dashed: true, suffix: " val")).svg
        html += SVGPlot(title: "Validation RSNA score", xLabel: "epoch", yLabel: "score", series: series(\.valScore) + [baseline]).svg
        html += SVGPlot(title: "Learning rate (last step of the epoch)", xLabel: "epoch", yLabel: "lr", series: series(\.lr)).svg
        let located = folds.filter { f in f.epochs.contains { $0.localizerMedianMm != nil } }
        if !located.isEmpty {
            html += SVGPlot(title: "Localizer: held-out error (solid: median, dashed: p90)", xLabel: "epoch", yLabel: "mm",
                            series: series { $0.localizerMedianMm ?? .nan } + series({ $0.localizerP90Mm ?? .nan }, dashed: true, suffix: " p90")).svg
        }
        html += "</div>"
        if !located.isEmpty {
            html += "<h2>Localizer (stage one): held-out error in mm at each fold's best epoch, over every labelled point</h2><table><tr><th>fold</th><th>median</th><th>p90</th>"
                + RSNA.levels.map { "<th>\($0)</th>" }.joined()
                + ["canal", "foramina", "recesses"].map { "<th>\($0) median / p90</th>" }.joined() + "</tr>"
            for f in located {
                guard let e = f.epochs.first(where: { $0.epoch == f.bestEpoch }) ?? f.epochs.last else { continue }
                let groups = (0..<3).map { g in
                    String(format: "<td>%.2f / %.2f</td>", e.localizerGroupMedianMm?[g] ?? .nan, e.localizerGroupP90Mm?[g] ?? .nan)
                }
                html += String(format: "<tr><td>%d</td><td>%.2f</td><td>%.2f</td>", f.fold, e.localizerMedianMm ?? .nan, e.localizerP90Mm ?? .nan)
                    + (e.localizerPerLevelMm ?? []).map { String(format: "<td>%.2f</td>", $0) }.joined() + groups.joined() + "</tr>"
            }
            html += "</table>"
            for f in located {
                guard let picture = f.localizerPicture else { continue }
                html += "<h3>Fold \(f.fold): held-out studies, sagittal image through the predicted levels (green rings: labelled "
                    + "spinal-canal points; red crosses: the localizer's)</h3><img src=\"\(escapeXML(picture))\" alt=\"localizer points, fold \(f.fold)\">"
            }
        }

        html += "<h2>Per condition-level (best epoch of each fold; weighted log loss, baseline in brackets)</h2>"
        for f in folds {
            let losses = f.columnLosses, baseLosses = f.priorColumnLosses, confusion = f.confusion
            guard losses.count >= 25, baseLosses.count >= 25 else { continue }
            html += "<h3>Fold \(f.fold)</h3><table><tr><th>condition</th>" + RSNA.levels.map { "<th>\($0)</th>" }.joined() + "</tr>"
            for (c, condition) in RSNA.conditions.enumerated() {
                html += "<tr><td>\(condition)</td>"
                for l in 0..<5 {
                    let a = losses[c * 5 + l], b = baseLosses[c * 5 + l]
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
        try AtomicFile.write(Data(html.utf8), to: url)
        return url
    }
}
