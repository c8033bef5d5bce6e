import ArgumentParser
import Bench
import Foundation
import Placement

/// `llmux bench placement`: MuxServe's synthetic setup in simulation: plans of each algorithm for
/// each popularity skew, each simulated under the same workload.
struct BenchPlacementCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "placement", abstract: "Compare placement algorithms on MuxServe's synthetic setup, in simulation.",
        discussion: """
            19 models (12 × 7B, 4 × 13B, 2 × 30B, 1 × 65B LLaMA shapes, in that order) on hosts × GPUs; model i gets \
            max-rate × (i + 1)^-alpha requests/s. Every algorithm plans from the same cost model (the device's roofline \
            unless --cost), and every plan is simulated under the same Poisson workload with the real scheduler.
            """)

    @Option(help: "Comma-separated algorithms.") var algorithms = "llmux,muxserve,spatial"
    @Option(help: "Comma-separated popularity exponents.") var alphas = "0.7,0.9,1.3,1.7,2.1"
    @Option(help: "Rate of the most popular model, requests/s.") var maxRate = 40.0
    @Option(help: "Models (the 12:4:2:1 mix of 7B, 13B, 30B, 65B repeats past 19).") var modelCount = 19
    @Flag(help: "Only plan (for planning-time measurements at scale).") var planOnly = false
    @Option(help: "Hosts.") var hosts = 4
    @Option(help: "GPUs per host.") var gpusPerHost = 8
    @Option(help: "GPU kind (h100, h200).") var device = "h100"
    @Option(help: "Memory per GPU.") var gpuMemory = ByteSize(bytes: 80_000_000_000)
    @Option(help: "Cost table JSON (default: the roofline).") var cost: String?
    @Option(help: "Seconds of arrivals per simulation.") var duration = 30.0
    @Option(help: "SLO scale for planning (reports give 5 and 10).") var sloScale = 5.0
    @Option(help: "Workload seed.") var seed: UInt64 = 1
    @Option(help: "Weight of latency against SLO goodput in LLMux's objective (0: off).") var latencyWeight = 0.0
    @Option(help: "Write all results as JSON here.") var json: String?
    @Option(help: "Write an SVG plot of SLO attainment against alpha here.") var plot: String?
    @Option(help: "Write an SVG plot of throughput against alpha here.") var throughputPlot: String?

    struct Row: Codable {
        let algorithm: String
        let alpha: Double
        let offered: Double
        let units: Int
        let gpusUsed: Int
        let planningSeconds: Double
        let estimatedSLOAttainment: Double
        let simulated: LatencySummary
        let simulatedSeconds: Double
        let latencyP50: Double
        let wallSeconds: Double
        let layout: String
    }

    func run() throws {
        let algorithmList = try algorithms.split(separator: ",").map { name -> PlacementAlgorithm in
            guard let a = PlacementAlgorithm(rawValue: String(name)) else { throw ValidationError("unknown algorithm \(name)") }
            return a
        }
        let alphaList = alphas.split(separator: ",").compactMap { Double($0) }
        let mix = Array(repeating: "llama-7b", count: 12) + Array(repeating: "llama-13b", count: 4)
            + Array(repeating: "llama-30b", count: 2) + ["llama-65b"]
        let shapes = (0..<modelCount).map { mix[$0 % mix.count] }
        let cluster = ClusterSpec(hosts: hosts, gpusPerHost: gpusPerHost, memoryPerGPU: Double(gpuMemory.bytes), device: device)
        var rows: [Row] = []
        for alpha in alphaList {
            let models = shapes.enumerated().map { index, shape in
                ModelSpec(name: "llm-\(index)", shape: ModelShape.builtIn[shape]!, rate: maxRate * pow(Double(index + 1), -alpha),
                          promptMean: 161, outputMean: 338)
            }
            let table = try PlacementInput.costTable(cost, cluster: cluster, models: models)
            let workload = planOnly ? [] : SimulateCommand.workload(models: models, alpha: alpha, totalRate: models.reduce(0) { $0 + $1.rate },
                                                    duration: duration, promptMean: 161, outputMean: 338, maxTotalLength: 2048, seed: seed)
            for algorithm in algorithmList {
                let settings = PlanSettings(sloScale: sloScale, latencyWeight: latencyWeight)
                let plan: PlacementPlan
                do {
                    plan = try PlacementOptimizer(cluster: cluster, models: models, table: table, settings: settings).plan(algorithm)
                } catch let error as PlacementError {
                    throw CommandFailure(error.description)
                }
                report(String(format: "alpha %.1f %@: %d models on %d GPUs planned in %.2f s (%d units, %d mesh mixes)", alpha,
                              algorithm.rawValue, models.count, cluster.gpuCount, plan.planningSeconds, plan.units.count,
                              plan.candidatesEvaluated))
                if planOnly { continue }
                report("simulating \(workload.count) requests …")
                let result = try ClusterSimulator(plan: plan, table: table).run(workload, timeLimit: duration * 2)
                let layout = plan.units.map { unit in "\(unit.meshSize):" + unit.models.map { $0.name.replacingOccurrences(of: "llm-", with: "") }.joined(separator: "+") }
                    .joined(separator: " ")
                rows.append(Row(algorithm: algorithm.rawValue, alpha: alpha, offered: plan.estimate.offered, units: plan.units.count,
                                gpusUsed: plan.estimate.gpusUsed, planningSeconds: plan.planningSeconds,
                                estimatedSLOAttainment: plan.estimate.sloAttainment, simulated: result.overall,
                                simulatedSeconds: result.seconds, latencyP50: percentile(result.records.compactMap(\.latency), 0.5),
                                wallSeconds: result.wallSeconds, layout: layout))
                print(line(rows.last!))
            }
        }
        if let json { try PlacementInput.writeJSON(rows, to: json) }
        func chart(_ title: String, _ label: String, _ value: (Row) -> Double) -> String {
            LinePlot(title: title, xLabel: "popularity exponent alpha", yLabel: label, series: algorithmList.map { algorithm in
                LinePlot.Series(name: algorithm.rawValue, points: rows.filter { $0.algorithm == algorithm.rawValue }.map { ($0.alpha, value($0)) })
            }).svg()
        }
        if let plot {
            try chart("SLO attainment (5x solo latency), \(hosts)x\(gpusPerHost) \(device), simulated", "SLO attainment (%)") {
                $0.simulated.sloAttainment5 * 100
            }.write(toFile: plot, atomically: true, encoding: .utf8)
        }
        if let throughputPlot {
            try chart("Throughput, \(hosts)x\(gpusPerHost) \(device), simulated", "requests/s") { $0.simulated.requestsPerSecond }
                .write(toFile: throughputPlot, atomically: true, encoding: .utf8)
        }
        print("alpha | algorithm | offered | req/s  | tok/s   | TTFT p50 s | TPOT p50 ms | e2e p50 s | SLO@5 | SLO@10 | units | plan s")
        for row in rows { print(line(row)) }
    }

    func line(_ row: Row) -> String {
        let o = row.simulated
        return String(format: "%5.1f | %-9@ | %7.1f | %6.2f | %7.0f | %10.2f | %11.1f | %9.2f | %4.1f%% | %5.1f%% | %5d | %.2f",
                      row.alpha, row.algorithm, row.offered, o.requestsPerSecond, o.tokensPerSecond, o.ttftP50, o.tpotP50 * 1000,
                      row.latencyP50, o.sloAttainment5 * 100, o.sloAttainment10 * 100, row.units, row.planningSeconds)
    }
}
