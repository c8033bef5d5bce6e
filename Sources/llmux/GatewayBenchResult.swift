import Foundation

/// One run of one target at one concurrency in `llmux bench gateway`.
struct GatewayBenchRow: Codable {
    let target: String
    let concurrency: Int
    /// Which of `--repeats` runs (from 1).
    let repetition: Int
    let firstByteP50Ms: Double
    let firstByteP99Ms: Double
    let totalP50Ms: Double
    let totalP99Ms: Double
    let requestsPerSecond: Double
    let requests: Int
    let errors: Int
    let firstError: String?
    /// CPU time of the proxy's processes per request (user + system).
    let proxyCPUMsPerRequest: Double?
}

/// Everything one `llmux bench gateway` call measured, with its setting; `table()` is what it prints.
struct GatewayBenchResult: Codable {
    let command: String
    let gitRevision: String
    let date: String
    let machine: String
    let loadAverageBefore: String
    let loadAverageAfter: String
    let tokens: Int
    let intervalMs: Double
    let durationSeconds: Double
    let warmupSeconds: Double
    let repeats: Int
    let clientThreads: Int
    let notes: [String]
    let rows: [GatewayBenchRow]

    /// The median of `values` (the mean of the middle two for an even count); nil when empty.
    static func median(_ values: [Double]) -> Double? {
        let sorted = values.filter { !$0.isNaN }.sorted()
        guard !sorted.isEmpty else { return nil }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// The direct run of the same concurrency and repetition as `row`.
    func direct(for row: GatewayBenchRow) -> GatewayBenchRow? { sibling(of: row, target: "direct") }

    /// `target`'s run in the same repetition and at the same concurrency as `row`.
    func sibling(of row: GatewayBenchRow, target: String) -> GatewayBenchRow? {
        rows.first { $0.concurrency == row.concurrency && $0.repetition == row.repetition && $0.target == target }
    }

    /// Each (concurrency, target) measured, in the order first run.
    func groups() -> [(concurrency: Int, target: String)] {
        var groups: [(concurrency: Int, target: String)] = []
        for row in rows where !groups.contains(where: { $0 == (row.concurrency, row.target) }) { groups.append((row.concurrency, row.target)) }
        return groups
    }

    /// What each proxy adds beyond the relay floor (its figure minus the floor's in the same
    /// repetition, median over repetitions): the proxy's own cost, with the machine's cost of
    /// one more hop each way taken out. Empty when the floor did not run.
    func beyondFloorLines() -> [String] {
        guard rows.contains(where: { $0.target == "floor" }) else { return [] }
        var lines = ["", "beyond the floor (the proxy's figure minus the relay floor's in the same repetition; median):",
                     "| streams | target | TTFB p50 ms | TTFB p99 ms | total p50 ms | req/s ratio to floor | CPU ms/req ratio to floor |",
                     "|---:|---|---:|---:|---:|---:|---:|"]
        for (level, target) in groups() where !["direct", "floor"].contains(target) {
            let pairs = rows.filter { $0.concurrency == level && $0.target == target }.compactMap { row in
                sibling(of: row, target: "floor").map { (row, $0) }
            }
            func median(_ value: (GatewayBenchRow, GatewayBenchRow) -> Double?) -> String {
                Self.median(pairs.compactMap(value)).map { String(format: "%+.3f", $0) } ?? "–"
            }
            func ratio(_ value: (GatewayBenchRow, GatewayBenchRow) -> Double?) -> String {
                Self.median(pairs.compactMap(value)).map { String(format: "%.2f", $0) } ?? "–"
            }
            lines.append("| \(level) | \(target) | \(median { $0.firstByteP50Ms - $1.firstByteP50Ms }) | \(median { $0.firstByteP99Ms - $1.firstByteP99Ms }) | "
                         + "\(median { $0.totalP50Ms - $1.totalP50Ms }) | \(ratio { $0.requestsPerSecond / max($1.requestsPerSecond, 1e-9) }) | "
                         + "\(ratio { a, b in a.proxyCPUMsPerRequest.flatMap { x in b.proxyCPUMsPerRequest.map { x / max($0, 1e-9) } } }) |")
        }
        return lines
    }

    func table() -> String {
        var lines = [
            "machine: \(machine); load average before \(loadAverageBefore), after \(loadAverageAfter)",
            "stub: \(tokens) tokens, \(intervalMs) ms apart; \(durationSeconds) s measured after \(warmupSeconds) s warm-up per run; load client on \(clientThreads) event loop(s)",
            "added = the target's percentile minus direct's at the same concurrency (first byte | whole request)"
                + (repeats > 1 ? "; every figure is the median of \(repeats) runs (added: of each run's difference to direct in the same repetition)" : ""),
            "| streams | target | TTFB p50 ms | TTFB p99 ms | added TTFB p50/p99 ms | total p50 ms | total p99 ms | added total p50/p99 ms | req/s | vs direct | proxy CPU ms/req | errors |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        func format(_ value: Double?, _ pattern: String) -> String { value.map { String(format: pattern, $0) } ?? "–" }
        let groups = groups()
        for (level, target) in groups {
            let runs = rows.filter { $0.concurrency == level && $0.target == target }
            func median(_ value: (GatewayBenchRow) -> Double?) -> Double? { Self.median(runs.compactMap(value)) }
            func added(_ value: @escaping (GatewayBenchRow) -> Double) -> String {
                format(median { row in direct(for: row).map { value(row) - value($0) } }, "%+.2f")
            }
            lines.append(String(
                format: "| %d | %@ | %@ | %@ | %@ / %@ | %@ | %@ | %@ / %@ | %@ | %@ | %@ | %d |",
                level, target, format(median(\.firstByteP50Ms), "%.2f"), format(median(\.firstByteP99Ms), "%.2f"),
                added(\.firstByteP50Ms), added(\.firstByteP99Ms),
                format(median(\.totalP50Ms), "%.2f"), format(median(\.totalP99Ms), "%.2f"), added(\.totalP50Ms), added(\.totalP99Ms),
                format(median(\.requestsPerSecond), "%.0f"),
                format(median { row in direct(for: row).map { row.requestsPerSecond / max($0.requestsPerSecond, 1e-9) } }, "%.2f"),
                format(median(\.proxyCPUMsPerRequest), "%.3f"), runs.map(\.errors).reduce(0, +)))
        }
        if repeats > 1 {
            lines += ["", "each run (added TTFB p50 / p99 ms, req/s):", "| streams | target | " + (1...repeats).map { "run \($0)" }.joined(separator: " | ") + " |",
                      "|---:|---|" + String(repeating: "---|", count: repeats)]
            for (level, target) in groups where target != "direct" {
                let cells = (1...repeats).map { repetition -> String in
                    guard let row = rows.first(where: { $0.concurrency == level && $0.target == target && $0.repetition == repetition }),
                          let direct = direct(for: row) else { return "–" }
                    return String(format: "%+.2f / %+.2f, %.0f", row.firstByteP50Ms - direct.firstByteP50Ms,
                                  row.firstByteP99Ms - direct.firstByteP99Ms, row.requestsPerSecond)
                }
                lines.append("| \(level) | \(target) | " + cells.joined(separator: " | ") + " |")
            }
        }
        lines += beyondFloorLines()
        for row in rows where row.errors > 0 {
            lines.append("\(row.target) @\(row.concurrency) run \(row.repetition): first error: \(row.firstError ?? "?")")
        }
        lines += notes.map { "note: \($0)" }
        return lines.joined(separator: "\n")
    }
}
