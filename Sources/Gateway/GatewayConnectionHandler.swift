import NIOCore
import NIOHTTP1
import OpenAIAPI

/// The gateway's HTTP front, written on SwiftNIO directly: a request's client connection, its
/// upstream connection (from `UpstreamPool`, on the same event loop) and every callback of the
/// exchange run on one event loop thread, as in nginx, so forwarding a chunk is a read and a
/// write on one thread with no task switches.
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
    /// The response encoder's context: body bytes already framed as the client response needs
    /// are written through it, below the encoder (see `ProxyExchange`).
    private var encoderContext: ChannelHandlerContext?

    init(state: GatewayState) { self.state = state }

    func handlerAdded(context: ChannelHandlerContext) {
        encoderContext = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        encoderContext = nil
    }

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
            do throws(APIError) {
                try state.authorize(authorization: authorization)
                let (route, hashes) = try state.routeRequest(body)
                guard let encoderContext else { throw APIError(status: 500, message: "no HTTP response encoder", type: "server_error") }
                let exchange = ProxyExchange(state: state, handler: self, context: context, raw: encoderContext, route: route, path: path,
                                             body: body, hashes: hashes,
                                             authorization: state.configuration.upstreamAPIKey.map { "Bearer \($0)" } ?? authorization,
                                             accept: head.headers.first(name: "accept"), keepAlive: keepAlive, arrival: arrival)
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
