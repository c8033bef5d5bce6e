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
            Each request's SLO reference is its latency when served alone, predicted from a per-model profile \
            measured in the same run (prefill time as a line in prompt length, decode step time at batch 1). \
            Without --model, four random-weight models are written to the cache folder: small ones of \
            different architectures on the CPU; on CUDA the shapes of Llama-3-8B, Llama-3.2-3B, Llama-3.2-1B \
            and Qwen2.5-0.5B (about 26 GB of bf16 weights). On CUDA every policy runs on SM partitions (green \
            contexts): mux gives prefill jobs a large partition and decode jobs the rest, spatial gives each \
            model a fixed partition, temporal runs one job at a time on the whole GPU. --check first verifies \
            that each model's greedy outputs under every policy equal its outputs when served alone. \
            Prints a table last; --json and --plot (SVG) write the full results.
            """)

    @Option(name: .customLong("model"), help: "NAME=PATH of a checkpoint (repeat); default: four built-in sizes.")
    var models: [String] = []
    @Option(help: "Comma-separated policies: mux, spatial, temporal, temporal-split (temporal with prompt and decode work in separate jobs, as MuxServe's evaluation ran its temporal baseline), mux-slo (mux given each model's latency targets at --target-scale: that many times its solo first-token time for a mean prompt and its solo decode step, which its SM split then weighs), mux-mixed (each model's prompt and decode work in one job, the models' jobs side by side on the whole device, no SM split), mux-mixed-slo (mux-mixed given the same targets, which size each mixed job's prompt chunk), or mux-hybrid (mux-mixed, except that prompts of more than 256 tokens go to a prefill job on an SM split).")
    var policies = "mux,spatial,temporal"
    @Option(help: "Comma-separated total request rates (requests/s over all models).") var rates = "1,2,4"
    @Option(help: "Comma-separated power-law exponents of model popularity (one sweep of rates each).") var alpha = "2.1"
    @Option(help: "Seconds of arrivals per run.") var duration = 20.0
    @Option(help: "The latency targets of the *-slo policies, as a multiple of each model's solo latencies (the table's SLO@5 and SLO@10 stay at 5 and 10).")
    var targetScale = 5.0
    @Option(help: "Mean prompt length (ShareGPT: about 160).") var promptMean = 160.0
    @Option(help: "Mean output length (ShareGPT: about 340).") var outputMean = 340.0
    @Option(help: "Longest prompt plus output of a request, in tokens (default: the smallest context of the models; MuxServe's evaluation kept ShareGPT requests of at most 2048).")
    var maxTotalTokens: Int?
    @Option(help: "cpu or cuda[:N].") var device: DeviceChoice = .cpu
    @Option(help: "KV-cache memory of the unit (default 256MiB on the CPU, 16GiB on CUDA).") var kvCacheMemory: ByteSize?
    @Option(help: "Token budget of one step (default 512 on the CPU, 2048 on CUDA).") var maxTokensPerStep: Int?
    @Option(help: ArgumentHelp("CPU only: pretend to have this many SMs, so the policies run through the asynchronous executor with SM partitions (tests).", visibility: .hidden))
    var emulateMultiprocessors = 0
    @Flag(help: "Check first that outputs under each policy equal each model's outputs alone (fails the run if not).")
    var check = false
    @Option(help: "Workload seed.") var seed: UInt64 = 1
    @Option(help: "CPU threads (default: all cores).") var threads: Int?
    @Option(help: "Write all results as JSON here.") var json: String?
    @Option(help: "Write an SVG plot of SLO attainment against rate here.") var plot: String?
    @Option(help: "Comma-separated JSON results of earlier runs (--json): run nothing, draw their SLO attainment against rate into --plot (for a rate sweep spread over several runs).")
    var plotFrom: String?
    @Option(help: "Write every engine step (start, seconds, the executor's seconds, each model's tokens) as JSON lines into this folder, one file per policy and rate (bench-POLICY-rRATE.jsonl), to compare with `llmux simulate --trace`. CPU only.")
    var trace: String?

    /// Parsed `--policies`, `--rates` and `--alpha`, checked before any model is loaded.
    private func parsedLists(limits: SchedulerLimits) throws -> (policies: [BenchPolicy], rates: [Double], alphas: [Double]) {
        func numbers(_ text: String, option: String, zeroAllowed: Bool = false) throws -> [Double] {
            let values = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0.map { $0 > 0 || (zeroAllowed && $0 == 0) } ?? false }) else {
                throw ValidationError("\(option) takes \(zeroAllowed ? "non-negative" : "positive") numbers separated by commas, got \(text)")
            }
            return values.compactMap { $0 }
        }
        let policyList = try policies.split(separator: ",").map { try BenchPolicy(String($0).trimmingCharacters(in: .whitespaces), limits: limits) }
        guard !policyList.isEmpty else { throw ValidationError("--policies must name at least one policy") }
        return (policyList, try numbers(rates, option: "--rates"), try numbers(alpha, option: "--alpha", zeroAllowed: true))
    }

    func validate() throws {
        if plotFrom != nil && plot == nil { throw ValidationError("--plot-from needs --plot (the SVG to write)") }
        _ = try parsedLists(limits: SchedulerLimits(maxTokensPerStep: 1))
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        guard targetScale > 0 else { throw ValidationError("--target-scale must be positive") }
    }

    func run() throws {
        if let plotFrom, let plot {
            let results = try plotFrom.split(separator: ",").map { path in
                do {
                    return try JSONDecoder().decode(MuxBenchResult.self, from: Data(contentsOf: URL(fileURLWithPath: String(path))))
                } catch {
                    throw CommandFailure("cannot read \(path) as a bench mux result: \(error)")
                }
            }
            let runs = results.flatMap(\.runs)
            let alphas = results.flatMap(\.alphas).reduce(into: [Double]()) { if !$0.contains($1) { $0.append($1) } }
            let names = runs.map(\.policy).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            try Self.sloPlot(runs: runs, alphas: alphas, policies: names).svg().write(toFile: plot, atomically: true, encoding: .utf8)
            print("\(runs.count) runs of \(results.count) files: \(plot)")
            return
        }
        let backend = emulateMultiprocessors > 0 && !device.isCUDA
            ? CPUBackend(threads: threads, emulatedMultiprocessors: emulateMultiprocessors) : try device.makeBackend(threads: threads)
        let kvBytes = kvCacheMemory?.bytes ?? (device.isCUDA ? 16 << 30 : 256 << 20)
        let stepTokens = maxTokensPerStep ?? (device.isCUDA ? 2048 : 512)
        let named = try models.isEmpty ? (device.isCUDA ? gpuModels() : builtInModels()) : models.map(parseModel)
        let checkpoints = try named.map { (ModelID($0.0), try openCheckpoint($0.1)) }
        noteWeightRounding(checkpoints, backend: backend)
        report("loading \(checkpoints.count) models onto \(backend.deviceName) …")
        let runner = try ModelRunner(checkpoints: checkpoints, backend: backend, kvCacheBytes: kvBytes)
        // On a device with SM partitions the policies run asynchronously, each job on its partition.
        let partitioned = PartitionedRunner.wrapping(runner)
        // The tracer times plans only where they run within the step (no SM partitions).
        var tracer: TracingExecutor?
        if trace != nil {
            if partitioned == nil { tracer = TracingExecutor(runner) } else { report("--trace is ignored on a device with SM partitions") }
        }
        let executor: any ModelExecutor
        if let partitioned { executor = partitioned } else if let tracer { executor = tracer } else { executor = runner }
        let limits = SchedulerLimits(maxTokensPerStep: stepTokens, maxSequencesPerStep: 256)
        let ids = checkpoints.map(\.0)
        let contextLimit = checkpoints.map { $0.1.config.maxPositionEmbeddings }.min()!
        if let maxTotalTokens, maxTotalTokens < 2 || maxTotalTokens > contextLimit {
            throw ValidationError("--max-total-tokens must be between 2 and the smallest context of the models (\(contextLimit))")
        }
        let maxTotal = maxTotalTokens ?? contextLimit

        let (policyList, rateList, alphaList) = try parsedLists(limits: limits)
        var checks: [MuxCheck.Outcome] = []
        let checker = MuxCheck()
        if check { report("checking outputs under each policy against each model alone …") }
        let references = check ? try checker.references(executor: runner, limits: limits) : []
        /// Compares `policy`'s outputs with the references, under the limits it runs with.
        func runCheck(_ policy: BenchPolicy, limits: SchedulerLimits) throws {
            let outcome = try checker.compare(executor: executor, policy: policy.policy, name: policy.name,
                                              limits: limits, references: references)
            checks.append(outcome)
            // On standard error at once (standard output to a pipe is buffered); the table repeats it.
            report(outcome.summary)
            for error in outcome.errors.prefix(8) { report("  \(error)") }
        }
        if check {
            for policy in policyList where !policy.followsLatencyTargets { try runCheck(policy, limits: policy.limits) }
        }
        // The SLO references are profiled after the check (which warms every shape up), as in
        // every recorded run; policies that follow latency targets are checked after it, with them.
        report("profiling each model alone …")
        let profiles = try ids.map { try SoloProfile.measure(runner: runner, model: $0, promptMean: Int(promptMean)) }
        /// The scheduler limits of `policy`, with its latency targets where it follows them.
        func schedulerLimits(_ policy: BenchPolicy) -> SchedulerLimits {
            var limits = policy.limits
            if policy.followsLatencyTargets {
                limits.latencyTargets = Dictionary(uniqueKeysWithValues: zip(ids, profiles.map {
                    $0.latencyTargets(scale: targetScale, promptLength: Int(promptMean))
                }))
            }
            return limits
        }
        if check {
            for policy in policyList where policy.followsLatencyTargets { try runCheck(policy, limits: schedulerLimits(policy)) }
        }
        /// Writes the JSON and the plot of the runs so far; returns the result.
        func save(_ runs: [MuxRun]) throws -> MuxBenchResult {
            let result = MuxBenchResult(
                command: CommandLine.arguments.joined(separator: " "), gitRevision: gitRevision(), device: backend.deviceName,
                date: ISO8601DateFormatter().string(from: Date()), models: ids.map(\.name),
                parameters: checkpoints.map { $0.1.config.parameterCount }, alphas: alphaList, duration: duration,
                promptMean: promptMean, outputMean: outputMean, kvCacheBytes: kvBytes, profiles: profiles, runs: runs, checks: checks)
            if let json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(result).write(to: URL(fileURLWithPath: json))
            }
            if let plot {
                try Self.sloPlot(runs: runs, alphas: alphaList, policies: policyList.map(\.name))
                    .svg().write(toFile: plot, atomically: true, encoding: .utf8)
            }
            return result
        }
        var runs: [MuxRun] = []
        for alpha in alphaList {
        for rate in rateList {
            let spec = WorkloadSpec(modelCount: ids.count, totalRate: rate, alpha: alpha, duration: duration,
                                    meanPromptLength: promptMean, meanOutputLength: outputMean, maxTotalLength: maxTotal, seed: seed)
            let workload = spec.generate()
            for policy in policyList {
                report("alpha \(alpha), policy \(policy.name), rate \(rate)/s: \(workload.count) requests …")
                let expected = Dictionary(uniqueKeysWithValues: zip(ids, spec.rateShares.map { $0 * rate }))
                let engine = EngineCore(executor: executor, tokenizers: [:], policy: policy.policy, limits: schedulerLimits(policy),
                                        expectedRates: expected)
                if let problem = engine.partitionError { report("no SM partitions: \(problem)") }
                if !engine.partitionings.isEmpty { report("SM partitionings: \(engine.partitionings)") }
                let outcome = try MuxDriver.run(engine: engine, models: ids, workload: workload, profiles: profiles,
                                                timeLimit: duration * 4 + 30, window: duration, tracer: tracer)
                let (records, elapsed, steps) = (outcome.records, outcome.seconds, outcome.trace)
                if let trace, tracer != nil {
                    try StepTraceWriter.write(steps, to: StepTraceWriter.path(directory: trace, prefix: "bench", policy: policy.name, rate: rate))
                }
                runs.append(MuxRun(policy: policy.name, alpha: alpha, rate: rate, seconds: elapsed,
                                   overall: LatencySummary(records, duration: elapsed),
                                   perModel: ids.indices.map { index in
                                       LatencySummary(records.filter { $0.modelIndex == index }, duration: elapsed)
                                   }, preemptions: engine.schedulerState.preemptionTotal,
                                   preemptedTokens: engine.schedulerState.preemptedTokenTotal,
                                   pageWaits: engine.schedulerState.pageWaitTotal,
                                   windowTokensPerSecond: Double(outcome.windowTokens) / duration,
                                   muxServeRequestsPerSecond: muxServeThroughput(records, rateShares: spec.rateShares),
                                   soloMakespan: workload.map {
                                       $0.arrival + profiles[$0.modelIndex].latency(prompt: $0.promptLength, output: $0.outputLength)
                                   }.max()))
                report(MuxBenchResult.row(runs.last!))
                _ = try save(runs)   // kept current, so a run cut short still leaves its results
            }
        }
        }
        let result = try save(runs)
        print(result.table())
        if checks.contains(where: { !$0.passed }) { throw CommandFailure("outputs under some policy differ from the models' outputs alone") }
    }

    /// SLO attainment at scale 5 against the total rate: a line per policy (and alpha), points in
    /// rate order.
    static func sloPlot(runs: [MuxRun], alphas: [Double], policies: [String]) -> LinePlot {
        let series = alphas.flatMap { alpha in
            policies.map { policy in
                LinePlot.Series(name: alphas.count == 1 ? policy : "\(policy) α=\(alpha)",
                                points: runs.filter { $0.policy == policy && $0.alpha == alpha }.sorted { $0.rate < $1.rate }
                                    .map { ($0.rate, $0.overall.sloAttainment5 * 100) })
            }
        }
        let alphaText = alphas.map { String($0) }.joined(separator: ", ")
        return LinePlot(title: "SLO attainment (5x solo latency), alpha \(alphaText)", xLabel: "total rate (requests/s)",
                        yLabel: "SLO attainment (%)", series: series)
    }

    /// A policy as `--policies` names it: a scheduling policy and the limits it runs under.
    struct BenchPolicy {
        /// The name in `--policies`, the table and the JSON.
        let name: String
        /// The scheduling policy.
        let policy: SchedulingPolicy
        /// The scheduler's limits under it.
        let limits: SchedulerLimits
        /// The scheduler gets each model's latency targets (at `--target-scale`, from the solo profiles).
        var followsLatencyTargets = false
        /// Every name `--policies` takes, for its error message.
        static let names = SchedulingPolicy.allCases.map(\.rawValue) + ["temporal-split", "mux-slo", "mux-mixed", "mux-mixed-slo", "mux-hybrid"]

        /// `name` is a policy's raw value, `temporal-split`, `mux-slo`, `mux-mixed`, `mux-mixed-slo` or `mux-hybrid`.
        init(_ name: String, limits: SchedulerLimits) throws {
            var limits = limits
            if name == "temporal-split" {
                policy = .temporal
                limits.separatesTemporalPhases = true
            } else if name == "mux-mixed" || name == "mux-mixed-slo" || name == "mux-hybrid" {
                policy = .mux
                (name == "mux-hybrid" ? MuxJobs.hybrid : .mixed).apply(to: &limits, policy: .mux)
                followsLatencyTargets = name == "mux-mixed-slo"
            } else if name == "mux-slo" {
                policy = .mux
                followsLatencyTargets = true
            } else if let known = SchedulingPolicy(rawValue: name) {
                policy = known
            } else {
                throw ValidationError("unknown policy \(name) (\(Self.names.joined(separator: ", ")))")
            }
            self.name = name
            self.limits = limits
        }
    }

    /// The four shapes of the issue (MuxServe-style colocation of big and small models), written
    /// once into the cache folder with random bf16 weights.
    private func gpuModels() throws -> [(String, String)] {
        let base = cacheDirectory()
        return try ["llama3-8b", "llama3.2-3b", "llama3.2-1b", "qwen2.5-0.5b"].map { name in
            let directory = base.appendingPathComponent("bench-mux-\(name)")
            if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("config.json").path) {
                report("writing random-weight \(name) to \(directory.path) …")
                try ModelMaker.write(MakeModelOptions(config: ModelPreset.all[name]!.config, dtype: .bf16, seed: 11),
                                     to: directory, progress: nil)
            }
            return (name, directory.path)
        }
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
