import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import OpenAIAPI

/// The gateway's HTTP front, written on SwiftNIO directly: a request's client connection, its
/// upstream connection (AsyncHTTPClient's pool, asked for a connection on the same event loop)
/// and every callback of the exchange run on one event loop thread, as in nginx, so forwarding a
/// chunk is a read and a write on one thread with no task switches.
final class GatewayConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let state: GatewayState
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var tooLarge = false
    private var arrival = NIODeadline.now()
    /// The exchange in flight (one at a time: the pipelining handler holds later requests back).
    private var exchange: ProxyExchange?

    init(state: GatewayState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = nil
            tooLarge = false
            arrival = .now()
        case .body(var part):
            guard !tooLarge else { return }
            if (body?.readableBytes ?? 0) + part.readableBytes > state.configuration.maxBodyBytes {
                tooLarge = true
                body = nil
            } else if body == nil {
                body = part
            } else {
                body!.writeBuffer(&part)
            }
        case .end:
            guard let requestHead = head else { return }
            head = nil
            handle(context: context, head: requestHead, body: body ?? ByteBuffer())
            body = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client left: abort the upstream request so the engine stops generating.
        exchange?.clientGone()
        exchange = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func handle(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        let keepAlive = head.isKeepAlive
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let authorization = head.headers.first(name: "authorization")
        switch (head.method, path) {
        case (.POST, "/v1/completions"), (.POST, "/v1/chat/completions"):
            if tooLarge {
                return respond(context: context, error: .bodyTooLarge(limit: state.configuration.maxBodyBytes), keepAlive: false)
            }
            do {
                try state.authorize(authorization: authorization)
                let (route, hashes) = try state.routeRequest(body)
                let exchange = ProxyExchange(state: state, handler: self, context: context, route: route, path: path, body: body,
                                             hashes: hashes, headers: state.upstreamHeaders(authorization: authorization, accept: head.headers.first(name: "accept")),
                                             keepAlive: keepAlive, arrival: arrival)
                self.exchange = exchange
                exchange.start()
            } catch {
                if error.status >= 500 || error.status == 429 { state.metrics.error(model: nil, upstream: nil) }
                respond(context: context, error: error, keepAlive: keepAlive)
            }
        case (.GET, "/health"):
            let up = state.routes.values.contains { $0.upstreams.contains(where: \.isHealthy) }
            respond(context: context, status: up ? .ok : .serviceUnavailable, contentType: "text/plain",
                    body: ByteBuffer(string: up ? "OK\n" : "no healthy upstream\n"), keepAlive: keepAlive)
        case (.GET, "/metrics"):
            respond(context: context, status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                    body: ByteBuffer(string: state.metrics.render(upstreams: state.upstreams)), keepAlive: keepAlive)
        case (.GET, "/v1/models"):
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            let state = self.state
            Task {
                let (status, bytes) = await state.mergedModels(authorization: authorization)
                loop.execute {
                    let (handler, context) = bound.value
                    handler.respond(context: context, status: HTTPResponseStatus(statusCode: status), contentType: "application/json",
                                    body: bytes, keepAlive: keepAlive)
                }
            }
        case (_, "/v1/completions"), (_, "/v1/chat/completions"), (_, "/v1/models"), (_, "/health"), (_, "/metrics"):
            respond(context: context, error: .methodNotAllowed("\(head.method)", path), keepAlive: keepAlive)
        default:
            respond(context: context, error: .routeNotFound("\(head.method)", path), keepAlive: keepAlive)
        }
    }

    func exchangeEnded(_ ended: ProxyExchange) {
        if exchange === ended { exchange = nil }
    }

    func respond(context: ChannelHandlerContext, error: APIError, keepAlive: Bool) {
        state.metrics.answered(status: error.status)
        respond(context: context, status: HTTPResponseStatus(statusCode: error.status), contentType: "application/json",
                body: ByteBuffer(bytes: error.jsonData()), keepAlive: keepAlive)
    }

    func respond(context: ChannelHandlerContext, status: HTTPResponseStatus, contentType: String, body: ByteBuffer, keepAlive: Bool) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.readableBytes))
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.whenComplete { _ in context.close(promise: nil) } }
    }
}

/// One proxied request: attempts on replicas until one answers, then its answer streamed
/// through. Lives on the client connection's event loop, as does its upstream connection (from
/// `UpstreamPool`), so every callback runs there.
final class ProxyExchange: UpstreamConsumer {
    typealias OutboundOut = HTTPServerResponsePart

    let state: GatewayState
    let handler: GatewayConnectionHandler
    let context: ChannelHandlerContext
    let route: ModelRoute
    let path: String
    let body: ByteBuffer
    let hashes: [UInt64]
    let headers: HTTPHeaders
    let keepAlive: Bool
    let arrival: NIODeadline

    private var attempt = 0
    private var excluded = Set<Int>()
    private var current: (index: Int, upstream: Upstream)?
    private var connection: Channel?
    private var reused = false
    private var sentAt = NIODeadline.now()
    private var waited = TimeAmount.zero
    private var lastError: APIError?
    /// The upstream's head, held until its first body chunk (the point after which no retry).
    private var upstreamHeadValue: HTTPResponseHead?
    private var retryThisAttempt = false
    private var committed = false
    private var isStream = false
    private var finished = false {
        didSet { if finished { deadline?.cancel() } }
    }
    /// The whole-request limit (`request_timeout_s`).
    private var deadline: Scheduled<Void>?

    init(state: GatewayState, handler: GatewayConnectionHandler, context: ChannelHandlerContext, route: ModelRoute, path: String,
         body: ByteBuffer, hashes: [UInt64], headers: HTTPHeaders, keepAlive: Bool, arrival: NIODeadline) {
        self.state = state
        self.handler = handler
        self.context = context
        self.route = route
        self.path = path
        self.body = body
        self.hashes = hashes
        self.headers = headers
        self.keepAlive = keepAlive
        self.arrival = arrival
    }

    func start() {
        guard !finished else { return }
        if deadline == nil {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(deadline: arrival + .seconds(Int64(state.configuration.requestTimeoutSeconds))) {
                bound.value.timedOut()
            }
        }
        switch route.acquire(excluded: excluded, prefixHashes: hashes) {
        case .allBusy:
            fail(lastError ?? APIError(status: 429, message: "Every replica of model `\(route.name)` is at its concurrency limit; retry later.",
                                       type: "rate_limit_error", code: "upstreams_busy"))
        case .noneHealthy:
            fail(lastError ?? APIError.unavailable("No healthy upstream serves model `\(route.name)` now; retry later."))
        case .upstream(let index, let upstream):
            state.metrics.attempt(model: route.name, upstream: upstream.url)
            upstreamHeadValue = nil
            retryThisAttempt = false
            current = (index, upstream)
            sentAt = .now()
            let loop = context.eventLoop
            let bound = NIOLoopBound(self, eventLoop: loop)
            state.pool.acquire(upstream, on: loop).whenComplete { result in
                let exchange = bound.value
                switch result {
                case .success(let (channel, upstreamHandler, reused)):
                    exchange.connected(channel, upstreamHandler, reused: reused)
                case .failure(let error):
                    exchange.attemptFailed(APIError(status: 502, message: "cannot connect to upstream \(upstream.url): \(error)",
                                                    type: "upstream_error", code: "bad_gateway"), eject: true)
                }
            }
        }
    }

    private func connected(_ channel: Channel, _ upstreamHandler: UpstreamHandler, reused: Bool) {
        guard !finished, let (_, upstream) = current else {
            channel.close(promise: nil)
            return
        }
        connection = channel
        self.reused = reused
        upstreamHandler.consumer = self
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)
        head.headers.replaceOrAdd(name: "host", value: upstream.hostHeader)
        head.headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        upstreamHandler.send(context: channel, head: head, body: body)
    }

    /// The request ran past `request_timeout_s`: 504 before the first byte, else as a failed stream.
    private func timedOut() {
        guard !finished else { return }
        let connection = self.connection
        if !committed {
            attempt = state.configuration.retries
            self.connection = nil
            connection?.close(promise: nil)
            fail(APIError(status: 504, message: "The upstream did not answer within \(state.configuration.requestTimeoutSeconds) s.",
                          type: "upstream_error", code: "upstream_timeout"))
        } else {
            upstreamFailed(UpstreamTimedOut())
            connection?.close(promise: nil)
        }
    }

    /// The client closed its connection: close the upstream one (the engine aborts the request).
    func clientGone() {
        guard !finished else { return }
        finished = true
        connection?.close(promise: nil)
        connection = nil
        releaseSlot()
    }

    private func releaseSlot() {
        if let current {
            current.upstream.release()
            self.current = nil
        }
    }

    // MARK: upstream callbacks (on the event loop)

    func upstreamHead(_ head: HTTPResponseHead) {
        if [429, 502, 503, 504].contains(head.status.code) && attempt < state.configuration.retries && !finished {
            retryThisAttempt = true
            lastError = APIError(status: Int(head.status.code), message: "upstream \(current?.upstream.url ?? "?") answered \(head.status.code)",
                                 type: "upstream_error", code: "upstream_status")
        } else {
            upstreamHeadValue = head
            isStream = head.headers.first(name: "content-type")?.hasPrefix("text/event-stream") ?? false
        }
    }

    func upstreamBody(_ buffer: ByteBuffer) {
        guard !retryThisAttempt, !finished else { return }
        if !committed {
            let firstAt = NIODeadline.now()
            commitHead()
            context.write(NIOAny(OutboundOut.body(.byteBuffer(buffer))), promise: nil)
            context.flush()
            let added = (sentAt - arrival) - waited + (NIODeadline.now() - firstAt)
            state.metrics.observe(added: Self.seconds(added), upstreamFirstByte: Self.seconds(firstAt - sentAt))
            return
        }
        context.writeAndFlush(NIOAny(OutboundOut.body(.byteBuffer(buffer))), promise: nil)
    }

    func upstreamEnd(keepAlive upstreamKeepAlive: Bool) {
        if let connection, let (_, upstream) = current, upstreamKeepAlive { state.pool.release(connection, upstream: upstream) }
        connection = nil
        if retryThisAttempt {
            attemptFailed(lastError ?? APIError(status: 502, message: "upstream failed", type: "upstream_error"), eject: false)
            return
        }
        guard !finished else { return }
        if !committed {
            commitHead()
            state.metrics.observe(added: Self.seconds((sentAt - arrival) - waited), upstreamFirstByte: Self.seconds(NIODeadline.now() - sentAt))
        }
        end()
    }

    func upstreamFailed(_ error: any Error) {
        connection = nil
        guard !finished else { return }
        // A kept-alive connection the upstream had closed is not the upstream's fault.
        let eject = !reused && (GatewayState.isConnectFailure(error) || error is UpstreamClosed)
        let url = current?.upstream.url ?? "?"
        if !committed {
            attemptFailed(APIError(status: 502, message: "upstream \(url) failed: \(GatewayState.describe(error))",
                                   type: "upstream_error", code: "bad_gateway"), eject: eject)
            return
        }
        // After the first byte: too late to retry.
        state.metrics.midStreamFailure()
        state.metrics.error(model: route.name, upstream: url)
        if error is UpstreamClosed || GatewayState.isConnectFailure(error) { current?.upstream.eject() }
        if isStream && context.channel.isActive {
            let apiError = APIError(status: 502, message: "The upstream \(url) failed mid-stream: \(GatewayState.describe(error))",
                                    type: "upstream_error", code: "upstream_stream_failed")
            context.write(NIOAny(OutboundOut.body(.byteBuffer(ByteBuffer(bytes: ServerSentEvents.event(apiError.jsonData()))))), promise: nil)
            end()
        } else {
            finished = true
            releaseSlot()
            handler.exchangeEnded(self)
            context.close(promise: nil)
        }
    }

    // MARK: steps

    private func commitHead() {
        committed = true
        let upstream = upstreamHeadValue ?? HTTPResponseHead(version: .http1_1, status: .ok)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: upstream.headers.first(name: "content-type") ?? "application/json")
        if let cache = upstream.headers.first(name: "cache-control") { headers.add(name: "cache-control", value: cache) }
        if !isStream, let length = upstream.headers.first(name: "content-length") {
            headers.add(name: "content-length", value: length)
        } else {
            headers.add(name: "transfer-encoding", value: "chunked")
        }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        state.metrics.answered(status: Int(upstream.status.code))
        context.write(NIOAny(OutboundOut.head(HTTPResponseHead(version: .http1_1, status: upstream.status, headers: headers))), promise: nil)
    }

    private func end() {
        finished = true
        releaseSlot()
        handler.exchangeEnded(self)
        let done = context.writeAndFlush(NIOAny(OutboundOut.end(nil)))
        if !keepAlive {
            let context = self.context
            done.whenComplete { _ in context.close(promise: nil) }
        }
    }

    private func fail(_ error: APIError) {
        finished = true
        releaseSlot()
        handler.exchangeEnded(self)
        if error.status >= 500 || error.status == 429 { state.metrics.error(model: route.name, upstream: nil) }
        handler.respond(context: context, error: error, keepAlive: keepAlive)
    }

    private func attemptFailed(_ error: APIError, eject: Bool) {
        guard let (index, upstream) = current else { return }
        connection?.close(promise: nil)
        connection = nil
        releaseSlot()
        if eject { upstream.eject() }
        state.metrics.error(model: nil, upstream: upstream.url)
        lastError = error
        guard attempt < state.configuration.retries, !finished else { return fail(error) }
        state.metrics.retry(model: route.name, upstream: upstream.url)
        excluded.insert(index)
        if excluded.count >= route.upstreams.count { excluded.removeAll() }
        attempt += 1
        let backoff = GatewayState.backoff(attempt: attempt, baseMs: state.configuration.retryBackoffMs)
        let delay = TimeAmount.nanoseconds(backoff.components.seconds * 1_000_000_000 + backoff.components.attoseconds / 1_000_000_000)
        waited = waited + delay
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: delay) { bound.value.start() }
    }

    static func seconds(_ t: TimeAmount) -> Double { Double(t.nanoseconds) / 1e9 }
}

/// Binds the gateway's listening socket on the shared event loops.
public enum ProxyServer {
    public static func bind(state: GatewayState, group: any EventLoopGroup) async throws -> any Channel {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(GatewayConnectionHandler(state: state))
                }
            }
        return try await bootstrap.bind(host: state.configuration.host, port: state.configuration.port).get()
    }
}
