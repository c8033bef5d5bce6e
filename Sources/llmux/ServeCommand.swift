import ArgumentParser
import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling
import Server
import Tokenization

/// `llmux serve`: the OpenAI-compatible HTTP server over one unit holding every model.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve models over the OpenAI API (/v1/completions, /v1/chat/completions, /v1/models).",
        discussion: """
            Every model shares one KV pool and one engine loop (one unit). /health answers 200 once the
            models are loaded, /metrics gives Prometheus text. SIGINT or SIGTERM stops accepting
            connections, lets in-flight requests finish, then exits. `--config FILE` (a multi-unit
            llmux.yaml) is not implemented yet.
            """)

    @Option(name: .customLong("model"), help: "NAME=PATH of a Hugging Face checkpoint directory (repeatable).")
    var models: [String] = []
    @Flag(help: "Serve the built-in demo model as \"demo\".")
    var demo = false
    @Option(help: "Address to bind.")
    var host = "127.0.0.1"
    @Option(help: "Port to bind (0: any free port, printed).")
    var port = 8000
    @Option(help: "KV-cache memory shared by all models, e.g. 512MiB.")
    var kvCacheMemory = ByteSize(bytes: 1 << 30)
    @Option(help: "Scheduling policy: mux, spatial or temporal.")
    var policy = "mux"
    @Option(name: .customLong("api-key"), help: "Accepted API key (repeatable); without one, no key is needed.")
    var apiKeys: [String] = []
    @Option(help: "Sequences that may wait for their first token; more get 429.")
    var maxQueue = 1024
    @Option(help: "Largest request body, e.g. 8MiB; larger ones get 413.")
    var maxBodySize = ByteSize(bytes: 8 << 20)
    @Option(help: "Most tokens scheduled per engine step.")
    var maxTokensPerStep = 512
    @Option(help: "Most sequences per engine step.")
    var maxSequencesPerStep = 64
    @Option(help: "CPU threads for the kernels (default: all cores).")
    var threads: Int?
    @Option(help: "Not implemented yet: the multi-unit configuration file.")
    var config: String?

    func validate() throws {
        if config != nil { throw ValidationError("--config is not implemented yet; use --model NAME=PATH or --demo") }
        if models.isEmpty && !demo { throw ValidationError("give at least one --model NAME=PATH, or --demo") }
        guard SchedulingPolicy(rawValue: policy) != nil else { throw ValidationError("--policy must be mux, spatial or temporal") }
        var names = Set<String>()
        if demo { names.insert("demo") }
        for entry in models {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex, entry.index(after: equals) != entry.endIndex else {
                throw ValidationError("--model takes NAME=PATH, got '\(entry)'")
            }
            let name = String(entry[..<equals])
            guard names.insert(name).inserted else { throw ValidationError("model name '\(name)' is given twice") }
        }
        guard (1...65535).contains(port) || port == 0 else { throw ValidationError("--port must be in 0...65535") }
        guard maxQueue >= 1 else { throw ValidationError("--max-queue must be at least 1") }
    }

    func run() async throws {
        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.apiKeys = Set(apiKeys)
        configuration.maxQueue = maxQueue
        configuration.maxBodySize = maxBodySize.bytes
        let entries = models.map { entry -> (String, String) in
            let equals = entry.firstIndex(of: "=")!
            return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
        }
        let demo = self.demo
        let kvBytes = kvCacheMemory.bytes
        let policy = SchedulingPolicy(rawValue: self.policy)!
        let limits = SchedulerLimits(maxTokensPerStep: maxTokensPerStep, maxSequencesPerStep: maxSequencesPerStep)
        let threads = self.threads
        try await LLMuxServer.run(configuration: configuration) {
            try loadUnit(entries: entries, demo: demo, kvBytes: kvBytes, policy: policy, limits: limits, threads: threads)
        }
    }
}

/// Opens every checkpoint and its tokenizer and starts one unit engine over all of them.
private func loadUnit(entries: [(String, String)], demo: Bool, kvBytes: Int, policy: SchedulingPolicy,
                      limits: SchedulerLimits, threads: Int?) throws -> ServerState.Loaded {
    var all = entries
    if demo { all.insert(("demo", try demoModelPath()), at: 0) }
    var checkpoints: [(ModelID, Checkpoint)] = []
    var tokenizers: [ModelID: Tokenizer] = [:]
    for (name, path) in all {
        report("loading \(name) from \(path) …")
        do {
            checkpoints.append((ModelID(name), try openCheckpoint(path)))
            if let tokenizer = try openTokenizer(path) {
                tokenizers[ModelID(name)] = tokenizer
            } else {
                report("warning: \(path) has no tokenizer.json; \(name) takes token-id prompts only")
            }
        } catch {
            throw ValidationError("cannot load \(name) from \(path): \(error)")
        }
    }
    let runner = try ModelRunner(checkpoints: checkpoints, backend: CPUBackend(threads: threads), kvCacheBytes: kvBytes)
    report("KV cache: \(ByteSize(bytes: kvBytes)) in \(runner.pageCount) pages of \(runner.pageBytes) bytes")
    let core = EngineCore(executor: runner, tokenizers: tokenizers, policy: policy, limits: limits)
    let engine = UnitEngine(core: core)
    let served = runner.models.map { ServedModel(descriptor: $0, tokenizer: tokenizers[$0.id]) }
    return ServerState.Loaded(backend: engine, models: served)
}
