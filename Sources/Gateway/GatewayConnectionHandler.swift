import NIOCore
import NIOHTTP1
import OpenAIAPI

/// The gateway's HTTP front for one client connection: a request's client connection, its
/// upstream connection (from `UpstreamPool`, on the same loop) and every callback of the
/// exchange run on one `GatewayLoop` thread, as in nginx, so forwarding a chunk is a read and a
/// write on one thread with no task switches.
///
/// It reads raw bytes (`ClientRequestReader`) and writes its answers as bytes
/// (`ClientResponse`). Answers go out in request order (a pipelined request waits in `waiting`,
/// and reading pauses only while one does), a malformed request gets a 400 (a head over the
/// limit a 431) after the answers before it, and the connection is closed, a HEAD request gets
/// no body.
final class GatewayConnectionHandler: LoopSocketDelegate, Drainable {

    /// A request read in full, or one refused, waiting for its turn.
    enum Request {
        case request(ClientRequest)
        case refused(ClientRequestError)
    }

    let state: GatewayState
    /// The client's connection.
    let socket: LoopSocket
    private var reader: ClientRequestReader
    /// Requests that arrived while an answer was in progress (pipelining), in order.
    private var waiting = CircularBuffer<Request>()
    /// An answer is in progress (from a request's end to its answer's last byte).
    private var responding = false
    /// The answer in progress is to a HEAD request (so it carries no body).
    private var respondingToHead = false
    /// An answer with `connection: close` was sent: later requests are not answered.
    private var closing = false
    private var draining = false
    /// The exchange in flight.
    private var exchange: ProxyExchange?
    /// Watches the deadline of the exchange in flight. One timer per connection, re-armed
    /// lazily: starting an exchange arms it only when it is not armed already (an armed one is
    /// due no later than the new deadline, as requests arrive in order), and when it fires it
    /// times the exchange out, sleeps until the current exchange's deadline, or lapses when
    /// none is in flight. So a keep-alive connection's requests schedule no timer of their own.
    private var deadlineTimer: LoopTimer?

    init(state: GatewayState, socket: LoopSocket) {
        self.state = state
        self.socket = socket
        reader = ClientRequestReader(maxBodyBytes: state.configuration.maxBodyBytes)
        socket.loop.drainables[ObjectIdentifier(self)] = self
        if socket.loop.draining { drain() }
    }

    func drain() {
        guard !responding, waiting.isEmpty, socket.isActive else { return }
        closing = true
        socket.close(error: nil)
    }

    func socketRead(_ bytes: ByteBuffer) {
        reader.append(bytes)
        do {
            while !closing, let request = try reader.next() {
                enqueue(.request(request))
            }
        } catch {
            enqueue(.refused(error))
        }
        // Reads pause only while pipelined requests wait, so their number stays bounded.
        if !waiting.isEmpty { socket.pauseReading() }
    }

    func socketReadComplete() {}

    private func enqueue(_ request: Request) {
        if responding || !waiting.isEmpty {
            waiting.append(request)
        } else {
            handle(request)
        }
    }

    func socketClosed(error: (any Error)?) {
        socket.loop.drainables[ObjectIdentifier(self)] = nil
        deadlineTimer?.cancel()
        deadlineTimer = nil
        // The client left: abort the upstream request so the engine stops generating.
        exchange?.clientGone()
        exchange = nil
        waiting.removeAll()
    }

    private func handle(_ next: Request) {
        guard !closing else { return }
        responding = true
        let request: ClientRequest
        switch next {
        case .request(let read):
            request = read
        case .refused(let error):
            respondingToHead = false
            state.metrics.answered(status: Int(error.status.code))
            return respond(status: error.status, contentType: "text/plain",
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
                return respond(error: .bodyTooLarge(limit: state.configuration.maxBodyBytes), keepAlive: false)
            }
            do throws(APIError) {
                try state.authorize(authorization: authorization)
                let (route, hashes) = try state.routeRequest(request.body)
                let exchange = ProxyExchange(state: state, handler: self, client: socket, route: route, path: path,
                                             body: request.body, hashes: hashes,
                                             authorization: state.configuration.upstreamAPIKey.map { "Bearer \($0)" } ?? authorization,
                                             accept: head.accept, keepAlive: keepAlive, arrival: request.arrival)
                self.exchange = exchange
                if deadlineTimer == nil { armDeadlineTimer(at: exchange.deadline) }
                exchange.start()
            } catch {
                if error.status >= 500 || error.status == 429 { state.metrics.error(model: nil, upstream: nil) }
                respond(error: error, keepAlive: keepAlive)
            }
        case (.GET, "/health"), (.HEAD, "/health"):
            let up = state.routes.values.contains { $0.upstreams.contains(where: \.isHealthy) }
            respond(status: up ? .ok : .serviceUnavailable, contentType: "text/plain",
                    body: ByteBuffer(string: up ? "OK\n" : "no healthy upstream\n"), keepAlive: keepAlive)
        case (.GET, "/metrics"):
            respond(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                    body: ByteBuffer(string: state.metrics.render(upstreams: state.upstreams)), keepAlive: keepAlive)
        case (.GET, "/v1/models"):
            let loop = socket.loop
            // Only `loop` touches the handler: the task hands it back there.
            let bound = LoopBound(value: self)
            let state = self.state
            Task {
                let (status, bytes) = await state.mergedModels(authorization: authorization)
                loop.execute {
                    bound.value.respond(status: HTTPResponseStatus(statusCode: status), contentType: "application/json",
                                        body: bytes, keepAlive: keepAlive)
                }
            }
        case (_, "/v1/completions"), (_, "/v1/chat/completions"), (_, "/v1/models"), (_, "/health"), (_, "/metrics"):
            respond(error: .methodNotAllowed("\(head.method)", path), keepAlive: keepAlive)
        default:
            respond(error: .routeNotFound("\(head.method)", path), keepAlive: keepAlive)
        }
    }

    private func armDeadlineTimer(at deadline: NIODeadline) {
        deadlineTimer = socket.loop.schedule(at: deadline) { [self] in
            deadlineTimer = nil
            guard let exchange else { return }
            if NIODeadline.now() >= exchange.deadline {
                exchange.timedOut()
            } else {
                armDeadlineTimer(at: exchange.deadline)
            }
        }
    }

    func exchangeEnded(_ ended: ProxyExchange) {
        if exchange === ended { exchange = nil }
    }

    func respond(error: APIError, keepAlive: Bool) {
        state.metrics.answered(status: error.status)
        respond(status: HTTPResponseStatus(statusCode: error.status), contentType: "application/json",
                body: ByteBuffer(bytes: error.jsonData()), keepAlive: keepAlive)
    }

    func respond(status: HTTPResponseStatus, contentType: String, body: ByteBuffer, keepAlive: Bool) {
        guard socket.isActive else { return }
        let keepAlive = keepAlive && !socket.loop.draining
        let answer = ClientResponse.whole(status: status, contentType: contentType, body: body, close: !keepAlive,
                                          headRequest: respondingToHead, allocator: GatewayLoop.allocator)
        finishResponse(last: answer, close: !keepAlive)
    }

    /// Writes the answer's last bytes (if any) and flushes; then closes the connection, or
    /// starts on the next waiting request.
    func finishResponse(last: ByteBuffer?, close: Bool) {
        responding = false
        if close || socket.loop.draining {
            closing = true
            if let last { socket.write(last) }
            waiting.removeAll()
            socket.closeAfterFlush()
            return
        }
        if let last { socket.write(last) }
        socket.flush()
        startWaiting()
    }

    /// Answers waiting requests in order; a loop rather than recursion, since an answer can be
    /// finished (an error, say) within `handle`.
    private func startWaiting() {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        while !responding, socket.isActive, let next = waiting.popFirst() {
            handle(next)
        }
        if waiting.isEmpty { socket.resumeReading() }
    }
}
