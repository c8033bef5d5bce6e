import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import OpenAIAPI

/// The gateway's shared state: routes by model, upstreams, the pooled HTTP client, metrics.
public final class GatewayState: Sendable {
    /// The configuration the gateway was started with.
    public let configuration: GatewayConfiguration
    /// Each configured model's route, by model name.
    public let routes: [String: ModelRoute]
    /// Every distinct upstream once, in first-seen order; models sharing a URL share its `Upstream`.
    public let upstreams: [Upstream]
    /// Counters and histograms served at `/metrics`.
    public let metrics = GatewayMetrics()
    /// For health checks and model lists.
    let client: HTTPClient
    /// For proxied requests: connections on the client connection's loop.
    let pool: UpstreamPool

    /// Builds the upstreams (resolving their hosts), the routes (one chooser per model) and the
    /// HTTP client for health checks and model lists on `eventLoopGroup`; starts no check.
    public init(configuration: GatewayConfiguration, eventLoopGroup: any EventLoopGroup) {
        self.configuration = configuration
        var byURL: [String: Upstream] = [:]
        var ordered: [Upstream] = []
        for url in configuration.upstreamURLs {
            let upstream = Upstream(url: url, maxConcurrent: configuration.maxConcurrentPerUpstream,
                                    health: HealthTracker(rise: configuration.healthyAfter, fall: configuration.unhealthyAfter))
            byURL[url] = upstream
            ordered.append(upstream)
        }
        upstreams = ordered
        // Resolved now so that a loop's first connect does not wait on the resolver; a host that
        // does not resolve yet is tried again at each connect.
        for upstream in ordered { _ = try? upstream.addresses() }
        var routes: [String: ModelRoute] = [:]
        for (i, model) in configuration.models.enumerated() {
            routes[model.name] = ModelRoute(name: model.name, upstreams: model.upstreams.map { byURL[$0]! },
                                            chooser: ReplicaChooser(policy: model.policy, prefix: configuration.prefix, seed: UInt64(i + 1)))
        }
        self.routes = routes
        pool = UpstreamPool(connectTimeout: .milliseconds(Int64(configuration.connectTimeoutMs)),
                            readTimeout: .seconds(Int64(configuration.readTimeoutSeconds)))
        var http = HTTPClient.Configuration(
            timeout: .init(connect: .milliseconds(Int64(configuration.connectTimeoutMs)), read: .seconds(Int64(configuration.readTimeoutSeconds))),
            connectionPool: .init(idleTimeout: .seconds(120),
                                  concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.maxConcurrentPerUpstream + 16))
        http.connectionPool.retryConnectionEstablishment = false
        http.tracing.tracer = nil
        client = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: http)
    }

    /// Closes the pooled connections.
    public func shutdown() async {
        try? await client.shutdown()
    }

    func authorize(authorization header: String?) throws(APIError) {
        guard !configuration.apiKeys.isEmpty else { return }
        guard let header, header.hasPrefix("Bearer "),
              configuration.apiKeys.contains(String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)) else {
            throw APIError.unauthorized()
        }
    }

    /// Headers sent upstream: the body's type, the caller's (or the configured) key.
    func upstreamHeaders(authorization: String?, accept: String?) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        if let key = configuration.upstreamAPIKey {
            headers.add(name: "authorization", value: "Bearer \(key)")
        } else if let authorization {
            headers.add(name: "authorization", value: authorization)
        }
        if let accept { headers.add(name: "accept", value: accept) }
        return headers
    }
}

extension GatewayState {
    /// The route and prompt-prefix hashes of a request body, found by scanning its bytes.
    func routeRequest(_ body: ByteBuffer) throws(APIError) -> (ModelRoute, [UInt64]) {
        let scanned: ScannedBody
        do {
            scanned = try body.withUnsafeReadableBytes { bytes in
                try Result { () throws(BodyScanError) in try BodyScanner.scan(bytes) }.get()
            }
        } catch {
            throw APIError.invalidRequest("We could not parse the JSON body of your request: \(error)")
        }
        guard let name = scanned.model else {
            throw APIError.invalidRequest("you must provide a model parameter", param: "model")
        }
        guard let route = routes[name] else { throw APIError.modelNotFound(name) }
        var hashes: [UInt64] = []
        if route.chooser.policy == .prefix, let range = scanned.prompt {
            hashes = body.withUnsafeReadableBytes { bytes in
                PrefixHasher.blockHashes(UnsafeRawBufferPointer(rebasing: bytes[range]),
                                         blockSize: configuration.prefix.blockBytes, maxBlocks: configuration.prefix.maxBlocks)
            }
        }
        return (route, hashes)
    }

    static func backoff(attempt: Int, baseMs: Int) -> Duration {
        let base = Double(baseMs) * pow(2, Double(attempt - 1))
        return .microseconds(Int64(base * Double.random(in: 0.5...1.5) * 1000))
    }

    static func isConnectFailure(_ error: any Error) -> Bool {
        if error is NIOConnectionError || error is UpstreamConnectTimeout || error is AddressError { return true }
        if let io = error as? IOError, [ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ENETUNREACH, EPIPE].contains(io.errnoCode) { return true }
        if let client = error as? HTTPClientError, client == .connectTimeout || client == .remoteConnectionClosed { return true }
        let text = "\(error)"
        return text.contains("connectionRefused") || text.contains("Connection refused") || text.contains("connectTimeout")
    }

    static func describe(_ error: any Error) -> String {
        if let client = error as? HTTPClientError { return client.description }
        return "\(error)"
    }
}
