import ArgumentParser
import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling
import Server
import Tokenization

/// `llmux serve`: the OpenAI-compatible HTTP server over the units of one host.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve models over the OpenAI API (/v1/completions, /v1/chat/completions, /v1/models).",
        discussion: """
            With --model/--demo every model shares one KV pool and one engine loop (one unit); --config \
            llmux.yaml groups models into several units, each with its device, KV pool and policy. \
            /health answers 200 once the models are loaded, /metrics gives Prometheus text. SIGINT or \
            SIGTERM stops accepting connections, lets in-flight requests finish, then exits.
            """)

    @Option(name: .customLong("model"), help: "NAME=PATH of a Hugging Face checkpoint directory (repeatable).")
    var models: [String] = []
    @Flag(help: "Serve the built-in demo models (\"demo\", a small Llama trained on Python code; \"demo-qwen2\" and \"demo-mistral\", random weights) on one unit.")
    var demo = false
    @Option(help: "A llmux.yaml with models, rates and units (see docs/serve-config.md); replaces --model and --demo.")
    var config: String?
    @Option(help: "Address to bind (default 127.0.0.1, or the config's host).")
    var host: String?
    @Option(help: "Port to bind, 0 for any free port (default 8000, or the config's port).")
    var port: Int?
    @Option(help: "Device of the unit: cpu or cuda[:N] (with --config, each unit names its own).")
    var device: DeviceChoice = .cpu
    @Option(help: "KV-cache memory shared by all models of the unit, e.g. 512MiB.")
    var kvCacheMemory = ByteSize(bytes: 1 << 30)
    @Option(help: "Scheduling policy: mux, spatial or temporal.")
    var policy = "mux"
    @Option(help: ArgumentHelp("How --policy mux forms its jobs: split, mixed or hybrid (default: the config's mux_jobs, else split for a unit of several models and mixed for a unit of one).",
                               discussion: """
                                   split: a model's prompt work runs as a prefill job on the larger partition of an SM \
                                   split while the decode jobs of every model share the rest (MuxServe's design). mixed: \
                                   each model's prompt chunks and decode tokens go in one job, and the models' jobs run \
                                   side by side on the whole device; on an H100 it served 5-15 % more tokens/s while \
                                   requests kept arriving and met more SLOs, but a long prompt delays its model's next \
                                   tokens (docs/BENCHMARKS.md, round 10). hybrid: mixed, except that prompts of more than \
                                   256 tokens run as prefill jobs on an SM split. Latency targets steer the split, and \
                                   under mixed and hybrid the prompt tokens each mixed job carries (--slo-tpot-ms). \
                                   A unit of one model forms mixed jobs unless told otherwise: with nothing to \
                                   colocate, a split only takes SMs from its decode jobs (round 11: split served \
                                   15 % fewer tokens/s than mixed at 40 requests/s on one Llama-3-8B).
                                   """))
    var muxJobs: String?
    @Option(name: .customLong("api-key"), help: "Accepted API key (repeatable); without one, no key is needed.")
    var apiKeys: [String] = []
    @Option(help: "Sequences that may wait for their first token; more get 429.")
    var maxQueue = 1024
    @Option(help: "Largest request body, e.g. 8MiB; larger ones get 413.")
    var maxBodySize = ByteSize(bytes: 8 << 20)
    @Option(help: "Most tokens scheduled per engine step (default: 512 on the CPU, 8192 on a GPU).")
    var maxTokensPerStep: Int?
    @Option(help: "Most sequences per engine step.")
    var maxSequencesPerStep = 64
    @Option(help: "CPU threads for the kernels (default: all cores).")
    var threads: Int?
    @Option(help: ArgumentHelp("Time-to-first-token target of every model, in ms (a model's slo_ttft_ms in --config overrides it).",
                               discussion: "Under --policy mux on a GPU, prompts waiting past their target give prefill jobs a larger SM partition; with mixed jobs, a model's per-token target stretches by the factor its most delayed prompt is past this one."))
    var sloTtftMs: Double?
    @Option(help: ArgumentHelp("Time-per-output-token target of every model, in ms (a model's slo_tpot_ms in --config overrides it).",
                               discussion: "Under --policy mux on a GPU, a model whose tokens come slower than its target gives decode jobs a larger SM partition; with mixed jobs (--mux-jobs mixed or hybrid, on any device), each mixed job carries as many prompt tokens as keep its tokens within the target, by a line fitted to the measured times of its recent jobs (at least 32)."))
    var sloTpotMs: Double?

    func validate() throws {
        if config != nil {
            if !models.isEmpty || demo { throw ValidationError("--config replaces --model and --demo; give one or the other") }
        } else if models.isEmpty && !demo {
            throw ValidationError("give at least one --model NAME=PATH, --demo, or --config FILE")
        }
        guard SchedulingPolicy(rawValue: policy) != nil else { throw ValidationError("--policy must be mux, spatial or temporal") }
        var names = Set<String>()
        if demo { names.formUnion(["demo", "demo-qwen2", "demo-mistral"]) }
        for entry in models {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex, entry.index(after: equals) != entry.endIndex else {
                throw ValidationError("--model takes NAME=PATH, got '\(entry)'")
            }
            let name = String(entry[..<equals])
            guard names.insert(name).inserted else { throw ValidationError("model name '\(name)' is given twice") }
        }
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535") }
        if let muxJobs, MuxJobs(rawValue: muxJobs) == nil { throw ValidationError("--mux-jobs must be split, mixed or hybrid, got '\(muxJobs)'") }
        guard maxQueue >= 1 else { throw ValidationError("--max-queue must be at least 1") }
        if let maxTokensPerStep, maxTokensPerStep < 1 { throw ValidationError("--max-tokens-per-step must be at least 1") }
        for (flag, value) in [("--slo-ttft-ms", sloTtftMs), ("--slo-tpot-ms", sloTpotMs)] {
            if let value, !(value > 0) { throw ValidationError("\(flag) must be a positive number of milliseconds") }
        }
    }

    func run() async throws {
        let file = try config.map(ServeConfig.load)
        var configuration = ServerConfiguration()
        configuration.host = host ?? file?.host ?? "127.0.0.1"
        configuration.port = port ?? file?.port ?? 8000
        configuration.apiKeys = Set(apiKeys + (file?.apiKeys ?? []))
        configuration.maxQueue = maxQueue
        configuration.maxBodySize = maxBodySize.bytes
        let units: [ResolvedUnit]
        if let file {
            units = file.resolvedUnits()
        } else {
            var entries = models.map { entry -> ServeConfig.Model in
                let equals = entry.firstIndex(of: "=")!
                return ServeConfig.Model(name: String(entry[..<equals]), path: String(entry[entry.index(after: equals)...]), rate: nil)
            }
            if demo { entries.insert(contentsOf: try demoModels().map { ServeConfig.Model(name: $0.name, path: $0.path, rate: nil) }, at: 0) }
            units = [ResolvedUnit(device: device.description, models: entries, kvCacheBytes: kvCacheMemory.bytes,
                                  policy: SchedulingPolicy(rawValue: policy)!)]
        }
        let (tokensPerStep, sequencesPerStep, threads) = (maxTokensPerStep, maxSequencesPerStep, self.threads)
        let (ttft, tpot) = (sloTtftMs, sloTpotMs)
        let jobs = (muxJobs ?? file?.muxJobs).map { MuxJobs(rawValue: $0)! }
        try await LLMuxServer.run(configuration: configuration) {
            try loadUnits(units, tokensPerStep: tokensPerStep, sequencesPerStep: sequencesPerStep, threads: threads,
                          defaultTargets: (ttft, tpot), muxJobs: jobs)
        }
    }
}

/// Opens every unit's checkpoints and tokenizers and starts one engine loop per unit.
/// `tokensPerStep` nil: each unit's device default (`DeviceChoice.defaultTokensPerStep`).
/// `defaultTargets` (milliseconds) apply to models whose entry sets no latency target of its own;
/// `muxJobs` applies to the `mux` units (nil: `MuxJobs.default(modelCount:)` for each).
private func loadUnits(_ units: [ResolvedUnit], tokensPerStep: Int?, sequencesPerStep: Int, threads: Int?,
                       defaultTargets: (ttft: Double?, tpot: Double?), muxJobs chosen: MuxJobs?) throws -> ServerState.Loaded {
    var engines: [any GenerationBackend] = []
    var served: [ServedModel] = []
    var modelsByUnit: [[ModelID]] = []
    for (index, unit) in units.enumerated() {
        var checkpoints: [(ModelID, Checkpoint)] = []
        var tokenizers: [ModelID: Tokenizer] = [:]
        for model in unit.models {
            report("loading \(model.name) from \(model.path) …")
            do {
                checkpoints.append((ModelID(model.name), try openCheckpoint(model.path)))
                if let tokenizer = try openTokenizer(model.path) {
                    tokenizers[ModelID(model.name)] = tokenizer
                } else {
                    report("warning: \(model.path) has no tokenizer.json; \(model.name) takes token-id prompts only")
                }
            } catch {
                throw CommandFailure("cannot load \(model.name) from \(model.path): \(error)")
            }
        }
        guard let device = DeviceChoice(argument: unit.device) else { throw CommandFailure("unit \(index): unknown device \(unit.device)") }
        let backend = try device.makeBackend(threads: threads)
        noteWeightRounding(checkpoints, backend: backend)
        let runner = try ModelRunner(checkpoints: checkpoints, backend: backend, kvCacheBytes: unit.kvCacheBytes)
        let muxJobs = chosen ?? MuxJobs.default(modelCount: unit.models.count)
        let mixed = unit.policy == .mux && muxJobs != .split
        report("unit \(index) on \(unit.device) (\(unit.policy.rawValue)\(mixed ? ", \(muxJobs.rawValue) jobs" : "")): \(checkpoints.map(\.0.name).joined(separator: ", ")); KV cache \(ByteSize(bytes: unit.kvCacheBytes)) in \(runner.pageCount) pages of \(runner.pageBytes) bytes")
        let rates = Dictionary(uniqueKeysWithValues: unit.models.compactMap { model in model.rate.map { (ModelID(model.name), $0) } })
        // On a GPU the unit runs jobs asynchronously on SM partitions chosen by the policy.
        let executor: any ModelExecutor = PartitionedRunner.wrapping(runner) ?? runner
        let targets = Dictionary(uniqueKeysWithValues: unit.models.compactMap { model in
            model.latencyTargets(defaultTTFTMilliseconds: defaultTargets.ttft, defaultTPOTMilliseconds: defaultTargets.tpot)
                .map { (ModelID(model.name), $0) }
        })
        var limits = SchedulerLimits(maxTokensPerStep: tokensPerStep ?? device.defaultTokensPerStep, maxSequencesPerStep: sequencesPerStep,
                                     latencyTargets: targets)
        muxJobs.apply(to: &limits, policy: unit.policy)
        if !targets.isEmpty {
            let listed = targets.sorted { $0.key.name < $1.key.name }.map { model, target in
                let parts = [target.timeToFirstToken.map { "TTFT \(Int(($0 * 1000).rounded())) ms" },
                             target.timePerOutputToken.map { "TPOT \(Int(($0 * 1000).rounded())) ms" }].compactMap { $0 }
                return "\(model.name) \(parts.joined(separator: ", "))"
            }
            let use: String
            switch (unit.policy, muxJobs) {
            case (.mux, .split): use = "mux weighs them in its SM split on a GPU"
            case (.mux, .mixed): use = "mux sizes each mixed job's prompt chunk by them"
            case (.mux, .hybrid): use = "mux sizes each mixed job's prompt chunk by them and weighs them in its SM split on a GPU"
            default: use = "only --policy mux uses them"
            }
            report("unit \(index) latency targets (\(use)): \(listed.joined(separator: "; "))")
        }
        let core = EngineCore(executor: executor, tokenizers: tokenizers, policy: unit.policy, limits: limits, expectedRates: rates)
        if let problem = core.partitionError {
            report("warning: unit \(index) runs without SM partitions (every job on the whole device): \(problem)")
        } else if !core.partitionings.isEmpty {
            report("unit \(index) SM partitionings: \(core.partitionings.map { "\($0)" }.joined(separator: " "))")
        }
        engines.append(UnitEngine(core: core))
        modelsByUnit.append(checkpoints.map(\.0))
        served += runner.models.map { ServedModel(descriptor: $0, tokenizer: tokenizers[$0.id]) }
    }
    let backend: any GenerationBackend = engines.count == 1 ? engines[0] : UnitGroup(units: engines, modelsByUnit: modelsByUnit)
    return ServerState.Loaded(backend: backend, models: served)
}
