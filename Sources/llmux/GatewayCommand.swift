import ArgumentParser
import Foundation
import Gateway

/// `llmux gateway`: routes OpenAI requests by `model` to `llmux serve` processes.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Route OpenAI requests by model to llmux serve processes (replicas, health checks, retries).",
        discussion: """
            Serves /v1/completions, /v1/chat/completions and /v1/models (merged from the upstreams), /health \
            and /metrics. Bodies are forwarded untouched (the gateway only scans them for `model` and the prompt) \
            and answers are streamed through chunk by chunk. Policies: round_robin, least_outstanding, \
            power_of_two (load from the upstreams' /load), prefix (same prompt prefix, same replica unless it is \
            overloaded). Options given here override the --config file.
            """)

    @Option(help: "Gateway configuration (YAML or JSON).")
    var config: String?
    @Option(name: .customLong("upstream"), help: "MODEL=URL of an llmux serve process serving MODEL (repeatable; repeat a model for replicas).")
    var upstreams: [String] = []
    @Option(help: "Routing policy for models given with --upstream: round_robin, least_outstanding, power_of_two or prefix.")
    var policy: String?
    @Option(help: "Address to bind.")
    var host: String?
    @Option(help: "Port to bind (0: any free port, printed).")
    var port: Int?
    @Option(help: "Milliseconds between health checks of each upstream.")
    var healthIntervalMs: Int?
    @Option(help: "Requests in flight to one upstream at most (429 when every replica is full).")
    var maxConcurrentPerUpstream: Int?
    @Option(help: "Retries on other replicas before the first byte.")
    var retries: Int?
    @Option(help: "Seconds of upstream silence before a request fails.")
    var readTimeout: Int?
    @Option(help: "Event-loop threads (0: one per core).")
    var eventLoops: Int?
    @Option(name: .customLong("api-key"), help: "Key the gateway accepts (repeatable); without one, requests pass with their Authorization forwarded.")
    var apiKeys: [String] = []

    func makeConfiguration() throws -> GatewayConfiguration {
        var configuration = try config.map { try GatewayConfiguration.load(path: $0) } ?? GatewayConfiguration()
        if let policy {
            guard let parsed = RoutingPolicy(name: policy) else {
                throw ValidationError("--policy must be round_robin, least_outstanding, power_of_two or prefix")
            }
            configuration.defaultPolicy = parsed
        }
        for entry in upstreams { try configuration.addUpstream(entry) }
        if let host { configuration.host = host }
        if let port { configuration.port = port }
        if let healthIntervalMs { configuration.healthIntervalMs = healthIntervalMs }
        if let maxConcurrentPerUpstream { configuration.maxConcurrentPerUpstream = maxConcurrentPerUpstream }
        if let retries { configuration.retries = retries }
        if let readTimeout { configuration.readTimeoutSeconds = readTimeout }
        if let eventLoops { configuration.eventLoops = eventLoops }
        if !apiKeys.isEmpty { configuration.apiKeys = apiKeys }
        try configuration.validate()
        return configuration
    }

    func validate() throws {
        do {
            _ = try makeConfiguration()
        } catch let error as GatewayConfigurationError {
            throw ValidationError(error.description)
        }
    }

    func run() async throws {
        let configuration = try makeConfiguration()
        LLMuxGateway.prepareProcess()
        try await LLMuxGateway.run(configuration: configuration)
    }
}

