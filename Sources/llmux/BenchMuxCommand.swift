import ArgumentParser
import Bench
import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling

/// `llmux bench mux`: colocated models under each scheduling policy on one unit, offline (no
/// HTTP), with Poisson arrivals and power-law popularity as in MuxServe's evaluation.
struct BenchMuxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mux",
        abstract: "Compare the mux, spatial and temporal policies on colocated models.",
        discussion: """
            Each request's SLO reference is its latency when served alone, predicted from a per-model profile
            measured in the same run (prefill time as a line in prompt length, decode step time at batch 1).
            Without --model, four random-weight models of different sizes and architectures are written to
            the cache folder. Prints a table last; --json and --plot (SVG) write the full results.
            """)

    @Option(name: .customLong("model"), help: "NAME=PATH of a checkpoint (repeat); default: four built-in sizes.")
    var models: [String] = []
    @Option(help: "Comma-separated policies.") var policies = "mux,spatial,temporal"
    @Option(help: "Comma-separated total request rates (requests/s over all models).") var rates = "1,2,4"
    @Option(help: "Power-law exponent of model popularity.") var alpha = 2.1
    @Option(help: "Seconds of arrivals per run.") var duration = 20.0
    @Option(help: "Mean prompt length (ShareGPT: about 160).") var promptMean = 160.0
    @Option(help: "Mean output length (ShareGPT: about 340).") var outputMean = 340.0
    @Option(help: "KV-cache memory of the unit.") var kvCacheMemory = ByteSize(bytes: 256 << 20)
    @Option(help: "Token budget of one step.") var maxTokensPerStep = 512
    @Option(help: "Workload seed.") var seed: UInt64 = 1
    @Option(help: "CPU threads (default: all cores).") var threads: Int?
    @Option(help: "Write all results as JSON here.") var json: String?
    @Option(help: "Write an SVG plot of SLO attainment against rate here.") var plot: String?

    func run() throws {
        let backend = CPUBackend(threads: threads)
        let named = try models.isEmpty ? builtInModels() : models.map(parseModel)
        let checkpoints = try named.map { (ModelID($0.0), try openCheckpoint($0.1)) }
        let runner = try ModelRunner(checkpoints: checkpoints, backend: backend, kvCacheBytes: kvCacheMemory.bytes)
        let ids = checkpoints.map(\.0)
        let maxTotal = checkpoints.map { $0.1.config.maxPositionEmbeddings }.min()!

        report("profiling each model alone …")
        let profiles = try ids.map { try SoloProfile.measure(runner: runner, model: $0, promptMean: Int(promptMean)) }
        let policyList = try policies.split(separator: ",").map { name -> SchedulingPolicy in
            guard let policy = SchedulingPolicy(rawValue: String(name)) else { throw ValidationError("unknown policy \(name)") }
            return policy
        }
        let rateList = rates.split(separator: ",").compactMap { Double($0) }
        guard !rateList.isEmpty else { throw ValidationError("--rates must list numbers") }

        var runs: [MuxRun] = []
        for rate in rateList {
            let spec = WorkloadSpec(modelCount: ids.count, totalRate: rate, alpha: alpha, duration: duration,
                                    meanPromptLength: promptMean, meanOutputLength: outputMean, maxTotalLength: maxTotal, seed: seed)
            let workload = spec.generate()
            for policy in policyList {
                report("policy \(policy.rawValue), rate \(rate)/s: \(workload.count) requests …")
                let expected = Dictionary(uniqueKeysWithValues: zip(ids, spec.rateShares.map { $0 * rate }))
                let engine = EngineCore(executor: runner, tokenizers: [:], policy: policy,
                                        limits: SchedulerLimits(maxTokensPerStep: maxTokensPerStep, maxSequencesPerStep: 256),
                                        expectedRates: expected)
                let (records, elapsed) = try MuxDriver.run(engine: engine, models: ids, workload: workload, profiles: profiles,
                                                           timeLimit: duration * 4 + 30)
                runs.append(MuxRun(policy: policy.rawValue, rate: rate, seconds: elapsed,
                                   overall: LatencySummary(records, duration: elapsed),
                                   perModel: ids.indices.map { index in
                                       LatencySummary(records.filter { $0.modelIndex == index }, duration: elapsed)
                                   }))
            }
        }
        let result = MuxBenchResult(
            command: CommandLine.arguments.joined(separator: " "), gitRevision: gitRevision(), device: backend.deviceName,
            date: ISO8601DateFormatter().string(from: Date()), models: ids.map(\.name),
            parameters: checkpoints.map { $0.1.config.parameterCount }, alpha: alpha, duration: duration,
            promptMean: promptMean, outputMean: outputMean, kvCacheBytes: kvCacheMemory.bytes, profiles: profiles, runs: runs)
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: json))
        }
        if let plot {
            let series = policyList.map { policy in
                LinePlot.Series(name: policy.rawValue, points: runs.filter { $0.policy == policy.rawValue }.map { ($0.rate, $0.overall.sloAttainment5 * 100) })
            }
            let chart = LinePlot(title: "SLO attainment (5x solo latency), alpha \(alpha)", xLabel: "total rate (requests/s)",
                                 yLabel: "SLO attainment (%)", series: series)
            try chart.svg().write(toFile: plot, atomically: true, encoding: .utf8)
        }
        print(result.table())
    }

    private func parseModel(_ text: String) throws -> (String, String) {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--model takes NAME=PATH, got \(text)") }
        return (parts[0], parts[1])
    }

    /// Four models of different sizes and architectures, written once into the cache folder.
    private func builtInModels() throws -> [(String, String)] {
        let shapes: [(String, Architecture, Int, Int, Int, Int)] = [
            // name, architecture, hidden, layers, heads, kv heads
            ("llama-s", .llama, 256, 4, 4, 2), ("qwen2-m", .qwen2, 384, 6, 6, 2),
            ("mistral-l", .mistral, 512, 8, 8, 2), ("llama-xl", .llama, 768, 10, 12, 4),
        ]
        let base = cacheDirectory()
        return try shapes.map { name, architecture, hidden, layers, heads, kvHeads in
            let directory = base.appendingPathComponent("bench-mux-\(name)")
            if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("config.json").path) {
                let config = ModelConfig(
                    architecture: architecture, hiddenSize: hidden, intermediateSize: hidden * 8 / 3 / 64 * 64, layerCount: layers,
                    headCount: heads, kvHeadCount: kvHeads, headDim: hidden / heads, vocabSize: 4096, rmsNormEps: 1e-6,
                    ropeTheta: 10000, ropeScaling: .none, maxPositionEmbeddings: 4096, tieWordEmbeddings: false,
                    attentionBias: architecture == .qwen2, bosTokenID: nil, eosTokenIDs: [], slidingWindow: nil)
                try ModelMaker.write(MakeModelOptions(config: config, dtype: .bf16, seed: 11, weightScale: 0.02), to: directory, progress: nil)
            }
            return (name, directory.path)
        }
    }
}
