import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix
import OpenAIAPI
import Synchronization

/// The gateway's shared state: routes by model, upstreams, the pooled HTTP client, metrics.
public final class GatewayState: Sendable {
    public let configuration: GatewayConfiguration
    public let routes: [String: ModelRoute]
    public let upstreams: [Upstream]
    public let metrics = GatewayMetrics()
    let client: HTTPClient

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
        var routes: [String: ModelRoute] = [:]
        for (i, model) in configuration.models.enumerated() {
            routes[model.name] = ModelRoute(name: model.name, upstreams: model.upstreams.map { byURL[$0]! },
                                            chooser: ReplicaChooser(policy: model.policy, prefix: configuration.prefix, seed: UInt64(i + 1)))
        }
        self.routes = routes
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

    func authorize(_ request: Request) throws(APIError) {
        guard !configuration.apiKeys.isEmpty else { return }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
              configuration.apiKeys.contains(String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)) else {
            throw APIError.unauthorized()
        }
    }

    /// Headers sent upstream: the body's type, the caller's (or the configured) key.
    func upstreamHeaders(_ request: Request) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        if let key = configuration.upstreamAPIKey {
            headers.add(name: "authorization", value: "Bearer \(key)")
        } else if let auth = request.headers[.authorization] {
            headers.add(name: "authorization", value: auth)
        }
        if let accept = request.headers[.accept] { headers.add(name: "accept", value: accept) }
        return headers
    }
}

/// Releases an upstream slot exactly once, at the latest when the response is dropped.
final class Lease: Sendable {
    let upstream: Upstream
    private let released = Atomic(false)
    init(_ upstream: Upstream) { self.upstream = upstream }
    func release() {
        if !released.exchange(true, ordering: .acquiringAndReleasing) { upstream.release() }
    }
    deinit { release() }
}

/// Holds the upstream body's iterator for the response writer (used by one task at a time).
final class BodyCursor: @unchecked Sendable {
    var iterator: HTTPClientResponse.Body.AsyncIterator
    init(_ iterator: HTTPClientResponse.Body.AsyncIterator) { self.iterator = iterator }
}

private let retryableStatuses: Set<UInt> = [429, 502, 503, 504]

extension GatewayState {
    /// Proxies one generation request: reads the body, scans it for the model (and prompt),
    /// picks a replica, and streams the upstream's answer through. Attempts that fail before the
    /// first body byte are retried on other replicas with backoff.
    func proxy(_ request: Request, path: String) async -> Response {
        let arrival = ContinuousClock.now
        var request = request
        var model: String?
        do {
            try authorize(request)
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: configuration.maxBodyBytes)
            } catch {
                throw APIError.bodyTooLarge(limit: configuration.maxBodyBytes)
            }
            let scanned: ScannedBody
            do {
                scanned = try body.withUnsafeReadableBytes { bytes throws(BodyScanError) in try BodyScanner.scan(bytes) }
            } catch {
                throw APIError.invalidRequest("We could not parse the JSON body of your request: \(error)")
            }
            guard let name = scanned.model else {
                throw APIError.invalidRequest("you must provide a model parameter", param: "model")
            }
            model = name
            guard let route = routes[name] else { throw APIError.modelNotFound(name) }
            var hashes: [UInt64] = []
            if route.chooser.policy == .prefix, let range = scanned.prompt {
                hashes = body.withUnsafeReadableBytes { bytes in
                    PrefixHasher.blockHashes(UnsafeRawBufferPointer(rebasing: bytes[range]),
                                             blockSize: configuration.prefix.blockBytes, maxBlocks: configuration.prefix.maxBlocks)
                }
            }
            return try await forward(body: body, route: route, path: path, hashes: hashes, headers: upstreamHeaders(request),
                                     arrival: arrival)
        } catch {
            let apiError = (error as? APIError) ?? APIError.internalError("\(error)")
            if apiError.status >= 500 || apiError.status == 429 { metrics.error(model: model, upstream: nil) }
            metrics.answered(status: apiError.status)
            return Self.errorResponse(apiError)
        }
    }

    static func errorResponse(_ error: APIError) -> Response {
        Response(status: .init(code: error.status), headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(bytes: error.jsonData())))
    }

    private func forward(body: ByteBuffer, route: ModelRoute, path: String, hashes: [UInt64], headers: HTTPHeaders,
                         arrival: ContinuousClock.Instant) async throws(APIError) -> Response {
        var excluded = Set<Int>()
        var lastError: APIError?
        var attempt = 0
        var waited = Duration.zero
        while true {
            let pick = route.acquire(excluded: excluded, prefixHashes: hashes)
            let index: Int, upstream: Upstream
            switch pick {
            case .upstream(let i, let u):
                (index, upstream) = (i, u)
            case .allBusy:
                throw lastError ?? APIError(status: 429, message: "Every replica of model `\(route.name)` is at its concurrency limit; retry later.",
                                            type: "rate_limit_error", code: "upstreams_busy")
            case .noneHealthy:
                throw lastError ?? APIError.unavailable("No healthy upstream serves model `\(route.name)` now; retry later.")
            }
            let lease = Lease(upstream)
            metrics.attempt(model: route.name, upstream: upstream.url)
            var upstreamRequest = HTTPClientRequest(url: upstream.url + path)
            upstreamRequest.method = .POST
            upstreamRequest.headers = headers
            upstreamRequest.body = .bytes(body)
            let sent = ContinuousClock.now
            let failure: APIError
            var eject = false
            do {
                let response = try await client.execute(upstreamRequest, deadline: .now() + .seconds(Int64(configuration.requestTimeoutSeconds)))
                if retryableStatuses.contains(response.status.code) && attempt < configuration.retries {
                    // Drain a small error body so the connection can be reused.
                    _ = try? await response.body.collect(upTo: 1 << 16)
                    failure = APIError(status: Int(response.status.code), message: "upstream \(upstream.url) answered \(response.status.code)",
                                       type: "upstream_error", code: "upstream_status")
                } else {
                    var iterator = response.body.makeAsyncIterator()
                    // The first chunk is the point of no return: until it arrives, a failure retries.
                    let first = try await iterator.next()
                    let firstByte = ContinuousClock.now
                    return commit(response: response, first: first, cursor: BodyCursor(iterator), lease: lease, route: route,
                                  added: (sent - arrival) - waited, firstByteAt: firstByte, upstreamFirstByte: firstByte - sent)
                }
            } catch {
                failure = APIError(status: 502, message: "upstream \(upstream.url) failed: \(Self.describe(error))",
                                   type: "upstream_error", code: "bad_gateway")
                eject = Self.isConnectFailure(error)
            }
            lease.release()
            if eject { upstream.eject() }
            metrics.error(model: nil, upstream: upstream.url)
            lastError = failure
            guard attempt < configuration.retries else { throw failure }
            metrics.retry(model: route.name, upstream: upstream.url)
            excluded.insert(index)
            if excluded.count >= route.upstreams.count { excluded.removeAll() }
            attempt += 1
            let backoff = Self.backoff(attempt: attempt, baseMs: configuration.retryBackoffMs)
            let before = ContinuousClock.now
            try? await Task.sleep(for: backoff)
            waited += ContinuousClock.now - before
        }
    }

    static func backoff(attempt: Int, baseMs: Int) -> Duration {
        let base = Double(baseMs) * pow(2, Double(attempt - 1))
        return .microseconds(Int64(base * Double.random(in: 0.5...1.5) * 1000))
    }

    static func isConnectFailure(_ error: any Error) -> Bool {
        if error is NIOConnectionError { return true }
        if let io = error as? IOError, [ECONNREFUSED, ECONNRESET, EHOSTUNREACH, ENETUNREACH].contains(io.errnoCode) { return true }
        if let client = error as? HTTPClientError, client == .connectTimeout || client == .remoteConnectionClosed { return true }
        let text = "\(error)"
        return text.contains("connectionRefused") || text.contains("Connection refused") || text.contains("connectTimeout")
    }

    static func describe(_ error: any Error) -> String {
        if let client = error as? HTTPClientError { return client.description }
        return "\(error)"
    }

    /// Sends the upstream's status and first chunk to the client, then the rest as it comes.
    private func commit(response: HTTPClientResponse, first: ByteBuffer?, cursor: BodyCursor, lease: Lease, route: ModelRoute,
                        added: Duration, firstByteAt: ContinuousClock.Instant, upstreamFirstByte: Duration) -> Response {
        var headers = HTTPFields()
        let contentType = response.headers.first(name: "content-type") ?? "application/json"
        headers[.contentType] = contentType
        if let cache = response.headers.first(name: "cache-control") { headers[.cacheControl] = cache }
        let isStream = contentType.hasPrefix("text/event-stream")
        let length = isStream ? nil : response.headers.first(name: "content-length").flatMap { Int($0) }
        let status = Int(response.status.code)
        let metrics = self.metrics
        let upstreamURL = lease.upstream.url
        metrics.answered(status: status)
        return Response(status: .init(code: status), headers: headers, body: ResponseBody(contentLength: length) { writer in
            defer { lease.release() }
            if let first {
                try await writer.write(first)
                let forwarded = ContinuousClock.now - firstByteAt
                metrics.observe(added: Self.seconds(added + forwarded), upstreamFirstByte: Self.seconds(upstreamFirstByte))
            } else {
                metrics.observe(added: Self.seconds(added), upstreamFirstByte: Self.seconds(upstreamFirstByte))
            }
            while true {
                let chunk: ByteBuffer?
                do {
                    chunk = try await cursor.iterator.next()
                } catch {
                    // The upstream died or stalled after the first byte: too late to retry.
                    metrics.midStreamFailure()
                    metrics.error(model: route.name, upstream: upstreamURL)
                    if Self.isConnectFailure(error) { lease.upstream.eject() }
                    guard isStream else { throw error }
                    let apiError = APIError(status: 502, message: "The upstream \(upstreamURL) failed mid-stream: \(Self.describe(error))",
                                            type: "upstream_error", code: "upstream_stream_failed")
                    try await writer.write(ByteBuffer(bytes: ServerSentEvents.event(apiError.jsonData())))
                    try await writer.finish(nil)
                    return
                }
                guard let chunk else { break }
                try await writer.write(chunk)
            }
            try await writer.finish(nil)
        })
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
