import NIOCore
import NIOHTTP1
import OpenAIAPI

/// The gateway's HTTP front, written on SwiftNIO directly: a request's client connection, its
/// upstream connection (from `UpstreamPool`, on the same event loop) and every callback of the
/// exchange run on one event loop thread, as in nginx, so forwarding a chunk is a read and a
/// write on one thread with no task switches.
///
/// The client pipeline is only this handler, which reads raw bytes (`ClientRequestReader`) and
/// writes its answers as bytes (`ClientResponse`): NIO's request decoder would turn every request
/// into three pipeline events and a header dictionary, and its response encoder, header
/// validator, pipelining and protocol-error handlers would each add handler hops to every write
/// (the pipelining handler also stops and restarts reading around every response: two
/// `epoll_ctl` calls a request). Their jobs are done here: answers go out in request order (a
/// pipelined request waits in `waiting`, and reading pauses only while one does), a malformed
/// request gets a 400 (a head over the limit a 431) after the answers before it, and the
/// connection is closed, a HEAD request gets no body.
final class GatewayConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A request read in full, or one refused, waiting for its turn.
    enum Request {
        case request(ClientRequest)
        case refused(ClientRequestError)
    }

    let state: GatewayState
    private var reader: ClientRequestReader
    /// Requests that arrived while an answer was in progress (pipelining), in order.
    private var waiting = CircularBuffer<Request>()
    /// An answer is in progress (from a request's end to its answer's last byte).
    private var responding = false
    /// The answer in progress is to a HEAD request (so it carries no body).
    private var respondingToHead = false
    /// An answer with `connection: close` was sent: later requests are not answered.
    private var closing = false
    /// A `read` held back while requests wait; issued once they are all answered.
    private var readWithheld = false
    private var draining = false
    /// The exchange in flight.
    private var exchange: ProxyExchange?
    /// Watches the deadline of the exchange in flight. One timer per connection, re-armed
    /// lazily: starting an exchange arms it only when it is not armed already (an armed one is
    /// due no later than the new deadline, as requests arrive in order), and when it fires it
    /// times the exchange out, sleeps until the current exchange's deadline, or lapses when
    /// none is in flight. So a keep-alive connection's requests schedule no timer of their own.
    private var deadlineTimer: Scheduled<Void>?

    init(state: GatewayState) {
        self.state = state
        reader = ClientRequestReader(maxBodyBytes: state.configuration.maxBodyBytes)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reader.append(unwrapInboundIn(data))
        do {
            while !closing, let request = try reader.next() {
                enqueue(context: context, .request(request))
            }
        } catch {
            enqueue(context: context, .refused(error))
        }
    }

    private func enqueue(context: ChannelHandlerContext, _ request: Request) {
        if responding || !waiting.isEmpty {
            waiting.append(request)
        } else {
            handle(context: context, request)
        }
    }

    /// Reads pause only while pipelined requests wait, so their number stays bounded.
    func read(context: ChannelHandlerContext) {
        if waiting.isEmpty {
            context.read()
        } else {
            readWithheld = true
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadlineTimer?.cancel()
        deadlineTimer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadlineTimer?.cancel()
        deadlineTimer = nil
        // The client left: abort the upstream request so the engine stops generating.
        exchange?.clientGone()
        exchange = nil
        waiting.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func handle(context: ChannelHandlerContext, _ next: Request) {
        guard !closing else { return }
        responding = true
        let request: ClientRequest
        switch next {
        case .request(let read):
            request = read
        case .refused(let error):
            respondingToHead = false
            state.metrics.answered(status: Int(error.status.code))
            return respond(context: context, status: error.status, contentType: "text/plain",
                           body: ByteBuffer(string: "\(error.reason)\n"), keepAlive: false)
        }
        let head = request.head
        respondingToHead = head.method == .HEAD
        let keepAlive = head.keepAlive
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let authorization = head.authorization
        switch (head.method, path) {
        case (.POST, "/v1/completions"), (.POST, "/v1/chat/completions"):
            if request.tooLarge {
                return respond(context: context, error: .bodyTooLarge(limit: state.configuration.maxBodyBytes), keepAlive: false)
            }
            do throws(APIError) {
                try state.authorize(authorization: authorization)
                let (route, hashes) = try state.routeRequest(request.body)
                let exchange = ProxyExchange(state: state, handler: self, context: context, route: route, path: path,
                                             body: request.body, hashes: hashes,
                                             authorization: state.configuration.upstreamAPIKey.map { "Bearer \($0)" } ?? authorization,
                                             accept: head.accept, keepAlive: keepAlive, arrival: request.arrival)
                self.exchange = exchange
                if deadlineTimer == nil { armDeadlineTimer(context: context, at: exchange.deadline) }
                exchange.start()
            } catch {
                if error.status >= 500 || error.status == 429 { state.metrics.error(model: nil, upstream: nil) }
                respond(context: context, error: error, keepAlive: keepAlive)
            }
        case (.GET, "/health"), (.HEAD, "/health"):
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

    private func armDeadlineTimer(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadlineTimer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = bound.value
            handler.deadlineTimer = nil
            guard let exchange = handler.exchange else { return }
            if NIODeadline.now() >= exchange.deadline {
                exchange.timedOut()
            } else {
                handler.armDeadlineTimer(context: context, at: exchange.deadline)
            }
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
        let answer = ClientResponse.whole(status: status, contentType: contentType, body: body, close: !keepAlive,
                                          headRequest: respondingToHead, allocator: context.channel.allocator)
        finishResponse(context: context, last: answer, close: !keepAlive)
    }

    /// Writes the answer's last bytes (if any) and flushes; then closes the connection, or
    /// starts on the next waiting request.
    func finishResponse(context: ChannelHandlerContext, last: ByteBuffer?, close: Bool) {
        responding = false
        if close {
            closing = true
            let done = context.writeAndFlush(wrapOutboundOut(last ?? ByteBuffer()))
            waiting.removeAll()
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        if let last { context.write(wrapOutboundOut(last), promise: nil) }
        context.flush()
        startWaiting(context: context)
    }

    /// Answers waiting requests in order; a loop rather than recursion, since an answer can be
    /// finished (an error, say) within `handle`.
    private func startWaiting(context: ChannelHandlerContext) {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        while !responding, context.channel.isActive, let next = waiting.popFirst() {
            handle(context: context, next)
        }
        if waiting.isEmpty && readWithheld {
            readWithheld = false
            context.read()
        }
    }
}
