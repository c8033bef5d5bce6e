import ArgumentParser
import Bench
import Foundation
import LLMuxCore
import Placement
import Scheduling

/// `llmux simulate`: runs a plan against a workload in simulated time with the real scheduler.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate", abstract: "Simulate a plan under a workload with the real scheduler and the cost model.",
        discussion: """
            The workload is `llmux bench mux`'s: Poisson arrivals, log-normal lengths. With --alpha the models' rates \
            follow the power law over --total-rate (default: the plan's total), exactly as the bench generates them \
            for the same seed; without it each model gets its rate from the plan. Reports what `bench mux` reports.
            """)

    @Option(help: "Plan JSON from `llmux plan --out`.") var plan: String
    @Option(help: "Cost table JSON (default: the device's roofline).") var cost: String?
    @Option(help: "Comma-separated policies to simulate, or `plan` for each unit's own.") var policies = "plan"
    @Option(help: "Power-law exponent (as bench mux); default: the plan's rates.") var alpha: Double?
    @Option(help: "Total request rate (with --alpha).") var totalRate: Double?
    @Option(help: "Seconds of arrivals.") var duration = 20.0
    @Option(help: "Mean prompt length.") var promptMean = 160.0
    @Option(help: "Mean output length.") var outputMean = 340.0
    @Option(help: "Longest prompt plus output.") var maxTotalLength = 4096
    @Option(help: "Workload seed.") var seed: UInt64 = 1
    @Option(help: "Token budget of one step (default: the plan's).") var maxTokensPerStep: Int?
    @Option(help: "Sequences per step (default: the plan's).") var maxSequencesPerStep: Int?
    @Option(help: "Stop after this many simulated seconds (default: 4 × duration + 30, as bench mux).") var timeLimit: Double?
    @Option(help: "Write the results as JSON here.") var json: String?
    @Option(help: "Write every simulated step (start, seconds, each model's tokens and predicted seconds) as JSON lines into this folder, one file per policy (sim-POLICY-rRATE.jsonl), to compare with `llmux bench mux --trace`.")
    var trace: String?
    @Option(help: "Instead of simulating, price every step of a `bench mux --trace` file with the cost model and compare with the measured times (--policies names the trace's policy).")
    var replayTrace: String?
    @Option(help: "A `bench mux --json` file whose reference steps (each model's batch-1 decode timed alone before its runs) to compare with the cost table: prints how fast the machine ran during that bench relative to the profile and warns past ±5 %. A check only; the simulation does not use it.")
    var speedCheck: String?

    func run() throws {
        guard let data = FileManager.default.contents(atPath: plan) else { throw CommandFailure("cannot read \(plan)") }
        let placement = try JSONDecoder().decode(PlacementPlan.self, from: data)
        let table = try PlacementInput.costTable(cost, cluster: placement.cluster, models: placement.models)
        let workload = Self.workload(models: placement.models, alpha: alpha, totalRate: totalRate, duration: duration,
                                     promptMean: promptMean, outputMean: outputMean, maxTotalLength: maxTotalLength, seed: seed)
        var limits = SchedulerLimits(maxTokensPerStep: maxTokensPerStep ?? placement.settings.maxTokensPerStep,
                                     maxSequencesPerStep: maxSequencesPerStep ?? placement.settings.maxSequencesPerStep)
        limits.quotaInterval = 2
        var speed: MachineSpeedCheck?
        if let speedCheck {
            speed = try Self.speedCheck(benchJSON: speedCheck, table: table)
            if let speed { report(Self.describe(speed)) }
        }
        if let replayTrace {
            let simulator = try ClusterSimulator(plan: placement, table: table, policy: policies == "plan" ? nil : UnitPolicy(rawValue: policies),
                                                 limits: limits)
            print(try TraceReplay.compare(path: replayTrace, simulator: simulator))
            return
        }
        var results: [SimulationResult] = []
        for name in policies.split(separator: ",").map(String.init) {
            var policy: UnitPolicy?
            if name != "plan" {
                guard let chosen = UnitPolicy(rawValue: name) else { throw ValidationError("unknown policy \(name)") }
                policy = chosen
            }
            do {
                var simulator = try ClusterSimulator(plan: placement, table: table, policy: policy, limits: limits)
                simulator.tracing = trace != nil
                report("simulating \(name): \(workload.count) requests …")
                results.append(try simulator.run(workload, timeLimit: timeLimit ?? duration * 4 + 30))
                if let result = results.last, result.extrapolatedPasses > 0 {
                    report(String(format: "warning: %d of %d passes (%.1f%%) decoded past the cost table's longest profiled context; "
                                  + "their price extends the last grid segment (profile with --contexts up to the workload's longest sequence)",
                                  result.extrapolatedPasses, result.passes, 100 * Double(result.extrapolatedPasses) / Double(max(1, result.passes))))
                }
                if let trace, let steps = results.last?.trace {
                    let rate = totalRate ?? placement.models.reduce(0) { $0 + $1.rate }
                    try StepTraceWriter.write(steps, to: StepTraceWriter.path(directory: trace, prefix: "sim", policy: name, rate: rate))
                }
            } catch let error as PlacementError {
                throw CommandFailure(error.description)
            }
        }
        let output = SimulationReport(
            command: CommandLine.arguments.joined(separator: " "), plan: plan, algorithm: placement.algorithm, device: placement.cluster.device,
            costSource: table.source.rawValue, models: placement.models.map(\.name), duration: duration, alpha: alpha,
            totalRate: totalRate ?? placement.models.reduce(0) { $0 + $1.rate }, promptMean: promptMean, outputMean: outputMean, seed: seed,
            runs: results.map { SimulationReport.Run(policy: $0.policy, seconds: $0.seconds, steps: $0.steps, wallSeconds: $0.wallSeconds,
                                                      overall: $0.overall, perModel: $0.perModel,
                                                      latencyP50: percentile($0.records.compactMap(\.latency), 0.5),
                                                      passes: $0.passes, extrapolatedPasses: $0.extrapolatedPasses) },
            speedCheck: speed)
        if let json { try PlacementInput.writeJSON(output, to: json) }
        print(output.table())
    }

    /// The reference steps of a `bench mux --json` file (`SoloProfile.decodeStep`: 32 decode
    /// steps of one sequence after an 8-token prompt, contexts 9–40) against `table`.
    static func speedCheck(benchJSON path: String, table: CostTable) throws -> MachineSpeedCheck {
        struct Bench: Decodable {
            struct Profile: Decodable { let decodeStep: Double }
            let models: [String]
            let profiles: [Profile]
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw CommandFailure("cannot read \(path)") }
        let bench = try JSONDecoder().decode(Bench.self, from: data)
        let steps = zip(bench.models, bench.profiles).map { (model: $0, seconds: $1.decodeStep) }
        return MachineSpeedCheck(table: table, decodeStepSeconds: steps, context: 24.5)
    }

    /// One line per model and the verdict.
    static func describe(_ check: MachineSpeedCheck) -> String {
        var lines = check.models.map {
            String(format: "speed check: %@ decode step measured %.3f ms, table %.3f ms, ratio %.2f", $0.model, $0.measured * 1000, $0.predicted * 1000, $0.ratio)
        }
        lines.append(String(format: "speed check: median ratio %.2f%@", check.medianRatio,
                            check.holds() ? "" : " — warning: the machine ran at another speed during the bench than during the profile; its latencies are not comparable within 15 %"))
        return lines.joined(separator: "\n")
    }

    /// The bench's workload: power law when `alpha` is set, else each model at its plan rate.
    static func workload(models: [ModelSpec], alpha: Double?, totalRate: Double?, duration: Double, promptMean: Double,
                         outputMean: Double, maxTotalLength: Int, seed: UInt64) -> [WorkloadRequest] {
        if let alpha {
            return WorkloadSpec(modelCount: models.count, totalRate: totalRate ?? models.reduce(0) { $0 + $1.rate }, alpha: alpha,
                                duration: duration, meanPromptLength: promptMean, meanOutputLength: outputMean,
                                maxTotalLength: maxTotalLength, seed: seed).generate()
        }
        var all: [WorkloadRequest] = []
        for (index, model) in models.enumerated() where model.rate > 0 {
            let one = WorkloadSpec(modelCount: 1, totalRate: model.rate, alpha: 0, duration: duration, meanPromptLength: promptMean,
                                   meanOutputLength: outputMean, maxTotalLength: maxTotalLength, seed: seed &+ UInt64(index) &* 7919)
            all += one.generate().map {
                WorkloadRequest(arrival: $0.arrival, modelIndex: index, promptLength: $0.promptLength, outputLength: $0.outputLength)
            }
        }
        return all.sorted { ($0.arrival, $0.modelIndex) < ($1.arrival, $1.modelIndex) }
    }
}

/// `llmux simulate --json`.
struct SimulationReport: Codable {
    struct Run: Codable {
        let policy: String
        let seconds: Double
        let steps: Int
        let wallSeconds: Double
        let overall: LatencySummary
        let perModel: [LatencySummary]
        let latencyP50: Double
        /// Passes (one model's work in one step) simulated, and how many of them decoded past the
        /// cost table's longest profiled context (`SimulationResult.extrapolatedPasses`).
        let passes: Int
        let extrapolatedPasses: Int
    }
    let command: String
    let plan: String
    let algorithm: String
    let device: String
    let costSource: String
    let models: [String]
    let duration: Double
    let alpha: Double?
    let totalRate: Double
    let promptMean: Double
    let outputMean: Double
    let seed: UInt64
    let runs: [Run]
    /// `--speed-check`: the bench's reference steps against the cost table.
    var speedCheck: MachineSpeedCheck?

    func table() -> String {
        var lines = ["simulated \(algorithm) plan on \(device) (cost model \(costSource)); \(models.count) models, \(String(format: "%.2f", totalRate)) req/s"]
        lines.append("policy   | done/all  | req/s  | tok/s    | TTFT p50/p99 s  | TPOT p50/p99 ms | e2e p50 s | SLO@5 | SLO@10 | wall s")
        for run in runs {
            let o = run.overall
            lines.append(String(format: "%-8@ | %4d/%-4d | %6.2f | %8.1f | %6.2f / %6.2f | %6.1f / %6.1f | %9.2f | %4.0f%% | %5.0f%% | %.1f",
                                run.policy, o.completed, o.requests, o.requestsPerSecond, o.tokensPerSecond, o.ttftP50, o.ttftP99,
                                o.tpotP50 * 1000, o.tpotP99 * 1000, run.latencyP50, o.sloAttainment5 * 100, o.sloAttainment10 * 100, run.wallSeconds))
        }
        return lines.joined(separator: "\n")
    }
}
