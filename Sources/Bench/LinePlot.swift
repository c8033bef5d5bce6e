/// A small SVG line chart (no plotting package is available to Swift here): one line per series,
/// shared axes, a legend.
public struct LinePlot: Sendable {
    /// One named line.
    public struct Series: Sendable {
        /// Legend label.
        public let name: String
        /// Points (x, y).
        public let points: [(Double, Double)]
        /// A series.
        public init(name: String, points: [(Double, Double)]) {
            self.name = name
            self.points = points
        }
    }

    /// Chart title.
    public let title: String
    /// X-axis label.
    public let xLabel: String
    /// Y-axis label.
    public let yLabel: String
    /// The lines.
    public let series: [Series]

    /// A chart.
    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    /// The chart as an SVG document.
    public func svg(width: Double = 640, height: Double = 400) -> String {
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
        let (left, right, top, bottom) = (70.0, 150.0, 40.0, 50.0)
        let xs = series.flatMap { $0.points.map(\.0) }
        let ys = series.flatMap { $0.points.map(\.1) }
        let xMin = xs.min() ?? 0, xMax = max(xs.max() ?? 1, (xs.min() ?? 0) + 1e-9)
        let yMin = min(0, ys.min() ?? 0), yMax = max(ys.max() ?? 1, yMin + 1e-9)
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        func px(_ x: Double) -> Double { left + (x - xMin) / (xMax - xMin) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - (y - yMin) / (yMax - yMin) * plotHeight }
        func fmt(_ value: Double) -> String { value == value.rounded() && abs(value) < 1e6 ? String(Int(value)) : String(format2(value)) }

        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(width / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>\n"
        out += "<line x1=\"\(left)\" y1=\"\(top + plotHeight)\" x2=\"\(left + plotWidth)\" y2=\"\(top + plotHeight)\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + plotHeight)\" stroke=\"black\"/>\n"
        for tick in 0...4 {
            let x = xMin + (xMax - xMin) * Double(tick) / 4
            let y = yMin + (yMax - yMin) * Double(tick) / 4
            out += "<text x=\"\(px(x))\" y=\"\(top + plotHeight + 16)\" text-anchor=\"middle\">\(fmt(x))</text>\n"
            out += "<text x=\"\(left - 6)\" y=\"\(py(y) + 4)\" text-anchor=\"end\">\(fmt(y))</text>\n"
            out += "<line x1=\"\(left)\" y1=\"\(py(y))\" x2=\"\(left + plotWidth)\" y2=\"\(py(y))\" stroke=\"#ddd\"/>\n"
        }
        out += "<text x=\"\(left + plotWidth / 2)\" y=\"\(height - 12)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        out += "<text x=\"16\" y=\"\(top + plotHeight / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(top + plotHeight / 2))\">\(escape(yLabel))</text>\n"
        for (index, line) in series.enumerated() {
            let color = colors[index % colors.count]
            let points = line.points.sorted { $0.0 < $1.0 }.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
            for point in line.points {
                out += "<circle cx=\"\(px(point.0))\" cy=\"\(py(point.1))\" r=\"3\" fill=\"\(color)\"/>\n"
            }
            let legendY = top + 16 * Double(index)
            out += "<line x1=\"\(width - right + 12)\" y1=\"\(legendY)\" x2=\"\(width - right + 36)\" y2=\"\(legendY)\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            out += "<text x=\"\(width - right + 42)\" y=\"\(legendY + 4)\">\(escape(line.name))</text>\n"
        }
        return out + "</svg>\n"
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    private func format2(_ value: Double) -> String {
        let scaled = (value * 100).rounded() / 100
        return "\(scaled)"
    }
}

private extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Substring(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
