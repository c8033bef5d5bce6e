import Foundation
import Yams

/// Everything `llmux gateway` runs with. Read from a YAML (or JSON) file and/or built from
/// `--upstream MODEL=URL` options.
///
/// ```yaml
/// host: 127.0.0.1
/// port: 9000
/// health_interval_ms: 200
/// models:
///   demo:
///     policy: prefix            # round_robin | least_outstanding | power_of_two | prefix
///     upstreams: [http://10.0.0.1:8000, http://10.0.0.2:8000]
/// ```
public struct GatewayConfiguration: Sendable, Equatable {
    /// One model the gateway routes: the name clients give in `model`, its policy and its replicas.
    public struct Model: Sendable, Equatable {
        /// Model name matched against the `model` field of request bodies.
        public var name: String
        /// How the model's requests are spread over its upstreams (`default_policy` when the file names none).
        public var policy: RoutingPolicy
        /// Base URLs (`http://host:port`) of `llmux serve` processes serving the model.
        public var upstreams: [String]

        /// Takes the parts as given; `addUpstream` and `parse` normalize the URLs before building one.
        public init(name: String, policy: RoutingPolicy, upstreams: [String]) {
            self.name = name
            self.policy = policy
            self.upstreams = upstreams
        }
    }

    /// Address the gateway listens on (`host`, default 127.0.0.1).
    public var host = "127.0.0.1"
    /// Port the gateway listens on (`port`, default 9000).
    public var port = 9000
    /// The models routed, in name order when read from a file; `validate` requires at least one.
    public var models: [Model] = []
    /// Policy for models that name none.
    public var defaultPolicy = RoutingPolicy.leastOutstanding
    /// Settings of the prefix policy, shared by every model that uses it (`prefix` in the file).
    public var prefix = PrefixSettings()
    /// Time between active health checks of each upstream.
    public var healthIntervalMs = 200
    /// A check slower than this fails.
    public var healthTimeoutMs = 500
    /// Consecutive good checks to return to rotation / failed checks to leave it.
    public var healthyAfter = 2
    /// Consecutive failed checks that take an upstream out of rotation (`unhealthy_after`, default 2).
    public var unhealthyAfter = 2
    /// Requests in flight to one upstream at most; when every replica of a model is full, 429.
    public var maxConcurrentPerUpstream = 1024
    /// Further attempts on other replicas before the first byte reaches the client.
    public var retries = 2
    /// Backoff before the first retry, doubled each time (with ±50 % jitter).
    public var retryBackoffMs = 10
    /// Connecting to an upstream.
    public var connectTimeoutMs = 1000
    /// Silence from an upstream (no byte) longer than this fails the request.
    public var readTimeoutSeconds = 300
    /// Whole request limit.
    public var requestTimeoutSeconds = 3600
    /// Largest request body.
    public var maxBodyBytes = 32 << 20
    /// Keys the gateway itself accepts (none: any request passes; the Authorization header is
    /// forwarded to the upstreams either way).
    public var apiKeys: [String] = []
    /// Authorization sent to the upstreams instead of the client's (`Bearer KEY`).
    public var upstreamAPIKey: String?
    /// Print the "listening" line on stdout.
    public var announce = true
    /// Event-loop threads serving client and upstream connections; 0 picks `autoEventLoops`.
    public var eventLoops = 0

    /// One per core, as NIO's own default and nginx's `worker_processes auto`. A loop per core
    /// costs a little more CPU per request than fewer loops (more wakeups, fewer events per
    /// `epoll_wait`), but once the cores are full the kernel shares them per thread, and a
    /// gateway with fewer threads than its neighbours gets less than its share: on the 2-core
    /// bench machine at 1,024 streams two loops served 3,263 requests/s against one loop's 3,081
    /// and nginx's 3,182, at the same latency below saturation (docs/BENCHMARKS.md, Gateway r9;
    /// r6 had found one loop better against a load client that itself ran several threads).
    public static var autoEventLoops: Int { max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// The number of event loops to run: `eventLoops`, or `autoEventLoops` when it is 0.
    public var resolvedEventLoops: Int { eventLoops > 0 ? eventLoops : Self.autoEventLoops }

    /// The defaults, with no models: add them with `addUpstream` or read a file with `load` or `parse`.
    public init() {}

    /// Every distinct upstream URL, in first-seen order.
    public var upstreamURLs: [String] {
        var seen = Set<String>()
        return models.flatMap(\.upstreams).filter { seen.insert($0).inserted }
    }

    /// Adds `MODEL=URL` (the URL without a trailing slash).
    public mutating func addUpstream(_ entry: String) throws {
        guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex, entry.index(after: equals) != entry.endIndex else {
            throw GatewayConfigurationError("--upstream takes MODEL=URL, got '\(entry)'")
        }
        let name = String(entry[..<equals])
        let url = try Self.normalize(String(entry[entry.index(after: equals)...]))
        if let index = models.firstIndex(where: { $0.name == name }) {
            if !models[index].upstreams.contains(url) { models[index].upstreams.append(url) }
        } else {
            models.append(Model(name: name, policy: defaultPolicy, upstreams: [url]))
        }
    }

    static func normalize(_ url: String) throws -> String {
        var url = url.trimmingCharacters(in: .whitespaces)
        while url.hasSuffix("/") { url.removeLast() }
        if url.hasSuffix("/v1") { url.removeLast(3) }
        guard url.hasPrefix("http://") || url.hasPrefix("https://"), URL(string: url)?.host != nil else {
            throw GatewayConfigurationError("upstream URL '\(url)' must look like http://host:port")
        }
        return url
    }

    /// Reads a YAML or JSON file.
    public static func load(path: String) throws -> GatewayConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw GatewayConfigurationError("cannot read \(path): \(error.localizedDescription)")
        }
        return try parse(text)
    }

    /// Parses YAML (JSON is YAML too).
    public static func parse(_ text: String) throws -> GatewayConfiguration {
        let file: File
        do {
            file = try YAMLDecoder().decode(File.self, from: text)
        } catch {
            throw GatewayConfigurationError("invalid gateway configuration: \(error)")
        }
        var config = GatewayConfiguration()
        if let v = file.host { config.host = v }
        if let v = file.port { config.port = v }
        if let v = file.default_policy {
            guard let policy = RoutingPolicy(name: v) else { throw GatewayConfigurationError("unknown policy '\(v)'") }
            config.defaultPolicy = policy
        }
        if let v = file.prefix { config.prefix = v }
        if let v = file.health_interval_ms { config.healthIntervalMs = v }
        if let v = file.health_timeout_ms { config.healthTimeoutMs = v }
        if let v = file.healthy_after { config.healthyAfter = v }
        if let v = file.unhealthy_after { config.unhealthyAfter = v }
        if let v = file.max_concurrent_per_upstream { config.maxConcurrentPerUpstream = v }
        if let v = file.retries { config.retries = v }
        if let v = file.retry_backoff_ms { config.retryBackoffMs = v }
        if let v = file.connect_timeout_ms { config.connectTimeoutMs = v }
        if let v = file.read_timeout_s { config.readTimeoutSeconds = v }
        if let v = file.request_timeout_s { config.requestTimeoutSeconds = v }
        if let v = file.max_body_bytes { config.maxBodyBytes = v }
        if let v = file.api_keys { config.apiKeys = v }
        if let v = file.event_loops { config.eventLoops = v }
        config.upstreamAPIKey = file.upstream_api_key
        for name in (file.models ?? [:]).keys.sorted() {
            let entry = file.models![name]!
            var policy = config.defaultPolicy
            if let p = entry.policy {
                guard let parsed = RoutingPolicy(name: p) else { throw GatewayConfigurationError("model \(name): unknown policy '\(p)'") }
                policy = parsed
            }
            guard !entry.upstreams.isEmpty else { throw GatewayConfigurationError("model \(name) has no upstreams") }
            config.models.append(Model(name: name, policy: policy, upstreams: try entry.upstreams.map(normalize)))
        }
        return config
    }

    /// Checks ranges; throws the first problem.
    public func validate() throws {
        guard !models.isEmpty else { throw GatewayConfigurationError("no models: give --upstream MODEL=URL or a --config with models") }
        guard (0...65535).contains(port) else { throw GatewayConfigurationError("port must be in 0...65535") }
        guard healthIntervalMs >= 10, healthTimeoutMs >= 10 else { throw GatewayConfigurationError("health interval and timeout must be at least 10 ms") }
        guard maxConcurrentPerUpstream >= 1 else { throw GatewayConfigurationError("max_concurrent_per_upstream must be at least 1") }
        guard retries >= 0, retryBackoffMs >= 0 else { throw GatewayConfigurationError("retries and retry_backoff_ms must not be negative") }
        guard eventLoops >= 0 else { throw GatewayConfigurationError("event_loops must not be negative (0: automatic)") }
    }

    // swiftlint:disable identifier_name
    struct File: Decodable {
        struct ModelEntry: Decodable {
            var policy: String?
            var upstreams: [String]
        }
        var host: String?
        var port: Int?
        var default_policy: String?
        var prefix: PrefixSettings?
        var health_interval_ms: Int?
        var health_timeout_ms: Int?
        var healthy_after: Int?
        var unhealthy_after: Int?
        var max_concurrent_per_upstream: Int?
        var retries: Int?
        var retry_backoff_ms: Int?
        var connect_timeout_ms: Int?
        var read_timeout_s: Int?
        var request_timeout_s: Int?
        var max_body_bytes: Int?
        var api_keys: [String]?
        var upstream_api_key: String?
        var event_loops: Int?
        var models: [String: ModelEntry]?
    }
}

/// A configuration problem, in words.
public struct GatewayConfigurationError: Error, CustomStringConvertible, Sendable {
    /// The problem, as shown to the user.
    public let description: String
    /// An error carrying the given message.
    public init(_ description: String) { self.description = description }
}
