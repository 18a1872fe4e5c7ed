import Foundation

/// A line chart as inline SVG (no scripts, no external files): series of (x, y) points, optional
/// horizontal reference lines, axes with a few ticks and a legend.
public struct SVGPlot {
    /// One polyline: its name in the legend, colour, points and whether it is dashed.
    public struct Series {
        /// Legend name, CSS colour, points (x, y), dashed stroke.
        public var name: String, colour: String, points: [(Double, Double)], dashed: Bool

        /// A series; solid unless `dashed`.
        public init(name: String, colour: String, points: [(Double, Double)], dashed: Bool = false) {
            self.name = name
            self.colour = colour
            self.points = points
            self.dashed = dashed
        }
    }

    /// Title above the plot and the axis labels.
    public var title: String, xLabel: String, yLabel: String
    /// The lines drawn.
    public var series: [Series]
    /// Pixel size.
    public var width = 420.0, height = 260.0

    /// A plot of `series`.
    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    /// Distinct colours for folds and series.
    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

    /// The chart as an `<svg>` element.
    public var svg: String {
        let points = series.flatMap(\.points).filter { $0.0.isFinite && $0.1.isFinite }
        let left = 58.0, right = 12.0, top = 26.0, bottom = 40.0
        var x0 = points.map(\.0).min() ?? 0, x1 = points.map(\.0).max() ?? 1
        var y0 = points.map(\.1).min() ?? 0, y1 = points.map(\.1).max() ?? 1
        if x1 <= x0 { x0 -= 0.5; x1 += 0.5 }
        if y1 <= y0 { y0 -= abs(y0) * 0.1 + 1e-9; y1 += abs(y1) * 0.1 + 1e-9 }
        let pad = (y1 - y0) * 0.05
        y0 -= pad
        y1 += pad
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (width - left - right) }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom) }
        var s = String(format: "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"11\">",
                       width, height, width, height)
        s += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>"
        s += "<text x=\"\(width / 2)\" y=\"16\" text-anchor=\"middle\" font-size=\"13\">\(escapeXML(title))</text>"
        s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>", left, top,
                    width - left - right, height - top - bottom)
        for i in 0...4 {
            let y = y0 + (y1 - y0) * Double(i) / 4
            s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", left, width - right, py(y), py(y))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>", left - 4, py(y) + 4, Self.tick(y) as NSString)
            let x = x0 + (x1 - x0) * Double(i) / 4
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>", px(x), height - bottom + 14, Self.tick(x) as NSString)
        }
        s += "<text x=\"\(left + (width - left - right) / 2)\" y=\"\(height - 6)\" text-anchor=\"middle\">\(escapeXML(xLabel))</text>"
        s += String(format: "<text transform=\"translate(12,%.1f) rotate(-90)\" text-anchor=\"middle\">%@</text>", top + (height - top - bottom) / 2,
                     escapeXML(yLabel) as NSString)
        for (i, line) in series.enumerated() {
            let finite = line.points.filter { $0.0.isFinite && $0.1.isFinite }
            guard !finite.isEmpty else { continue }
            let path = finite.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(line.colour)\" stroke-width=\"1.8\"\(line.dashed ? " stroke-dasharray=\"5,4\"" : "") points=\"\(path)\"/>"
            if finite.count == 1 {
                s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>", px(finite[0].0), py(finite[0].1), line.colour as NSString)
            }
            let ly = top + 12 + Double(i) * 13
            s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"2\"%@/>", width - right - 110, width - right - 92,
                        ly - 4, ly - 4, line.colour as NSString, (line.dashed ? " stroke-dasharray=\"4,3\"" : "") as NSString)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>", width - right - 88, ly, escapeXML(line.name) as NSString)
        }
        return s + "</svg>"
    }

    /// A short tick label (3 significant digits, scientific for very small or large values).
    static func tick(_ v: Double) -> String {
        let a = abs(v)
        if a != 0 && (a < 1e-2 || a >= 1e4) { return String(format: "%.1e", v) }
        return String(format: "%.3g", v)
    }
}

/// `text` with the five XML special characters escaped.
public func escapeXML(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;").replacingOccurrences(of: "'", with: "&#39;")
}
