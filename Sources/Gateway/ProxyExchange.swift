import NIOCore
import NIOHTTP1
import OpenAIAPI

/// One proxied request: attempts on replicas until one answers, then its answer streamed
/// through. Lives on the client connection's loop, as does its upstream connection (from
/// `UpstreamPool`), so every callback runs there.
///
/// The answer's body bytes go to the client as the upstream framed them: whole upstream chunks
/// are already valid chunks of the client's chunked response, so they are written as they came,
/// with no decoding and re-encoding. Only bare body bytes (a chunk split across reads, or a body
/// with a length sent to a streaming client) are framed here (`ClientResponse.chunk`).
final class ProxyExchange: UpstreamConsumer {
    let state: GatewayState
    let handler: GatewayConnectionHandler
    /// The client's connection: writes go straight to its socket.
    let client: LoopSocket
    let route: ModelRoute
    let path: String
    let body: ByteBuffer
    let hashes: [UInt64]
    let authorization: String?
    let accept: String?
    let keepAlive: Bool
    let arrival: NIODeadline

    private var attempt = 0
    private var excluded = Set<Int>()
    private var current: (index: Int, upstream: Upstream)?
    private var connection: UpstreamPool.Connection?
    private var reused = false
    private var sentAt = NIODeadline.now()
    private var waited = TimeAmount.zero
    private var lastError: APIError?
    /// The upstream's head, held until its first body bytes (the point after which no retry).
    private var upstreamHeadValue: HTTPResponseHead?
    private var upstreamBodyLength = BodyLength.none
    private var retryThisAttempt = false
    private var committed = false
    private var isStream = false
    /// The client response is chunked (else it carries the upstream's content-length).
    private var clientChunked = true
    /// Body bytes written since the last flush: flushed once per upstream read batch.
    private var needsFlush = false
    /// When the first body bytes arrived, until the flush that sends them is done and the
    /// added-latency histogram has the observation.
    private var firstBodyAt: NIODeadline?
    private var finished = false
    /// The whole-request limit (`request_timeout_s` after the arrival). Watched by the client
    /// connection's one lazily re-armed timer (`GatewayConnectionHandler`), not by a timer of
    /// the exchange's own: scheduling and cancelling one per request cost a promise, a closure
    /// and a locked heap operation each.
    let deadline: NIODeadline

    init(state: GatewayState, handler: GatewayConnectionHandler, client: LoopSocket,
         route: ModelRoute, path: String, body: ByteBuffer, hashes: [UInt64], authorization: String?, accept: String?,
         keepAlive: Bool, arrival: NIODeadline) {
        self.state = state
        self.handler = handler
        self.client = client
        self.route = route
        self.path = path
        self.body = body
        self.hashes = hashes
        self.authorization = authorization
        self.accept = accept
        self.keepAlive = keepAlive
        self.arrival = arrival
        deadline = arrival + .seconds(Int64(state.configuration.requestTimeoutSeconds))
    }

    func start() {
        guard !finished else { return }
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
            if let idle = state.pool.takeIdle(upstream, on: client.loop) {
                return connected(idle, reused: true)
            }
            state.pool.connect(upstream, on: client.loop) { [self] result in
                switch result {
                case .success(let connection):
                    connected(connection, reused: false)
                case .failure(let error):
                    attemptFailed(APIError(status: 502, message: "cannot connect to upstream \(upstream.url): \(error)",
                                                    type: "upstream_error", code: "bad_gateway"), eject: true)
                }
            }
        }
    }

    private func connected(_ connection: UpstreamPool.Connection, reused: Bool) {
        guard !finished, let (_, upstream) = current else {
            connection.socket.close(error: nil)
            return
        }
        self.connection = connection
        self.reused = reused
        connection.handler.consumer = self
        connection.handler.send(UpstreamRequest.encode(path: path, host: upstream.hostHeader, authorization: authorization, accept: accept,
                                                       body: body, allocator: GatewayLoop.allocator))
    }

    /// The request ran past `request_timeout_s`: 504 before the first byte, else as a failed stream.
    func timedOut() {
        guard !finished else { return }
        let socket = connection?.socket
        // The close below must not come back as the upstream's failure (a 502, or a retry).
        connection?.handler.consumer = nil
        if !committed {
            attempt = state.configuration.retries
            connection = nil
            socket?.close(error: nil)
            fail(APIError(status: 504, message: "The upstream did not answer within \(state.configuration.requestTimeoutSeconds) s.",
                          type: "upstream_error", code: "upstream_timeout"))
        } else {
            upstreamFailed(UpstreamTimedOut())
            socket?.close(error: nil)
        }
    }

    /// The client closed its connection: close the upstream one (the engine aborts the request).
    func clientGone() {
        guard !finished else { return }
        finished = true
        connection?.socket.close(error: nil)
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

    func upstreamHead(_ head: HTTPResponseHead, body: BodyLength) {
        if [429, 502, 503, 504].contains(head.status.code) && attempt < state.configuration.retries && !finished {
            retryThisAttempt = true
            lastError = APIError(status: Int(head.status.code), message: "upstream \(current?.upstream.url ?? "?") answered \(head.status.code)",
                                 type: "upstream_error", code: "upstream_status")
        } else {
            upstreamHeadValue = head
            upstreamBodyLength = body
            isStream = head.headers.first(name: "content-type")?.hasPrefix("text/event-stream") ?? false
        }
    }

    func upstreamBody(_ bytes: ByteBuffer, framed: Bool) {
        guard !retryThisAttempt, !finished else { return }
        if !committed {
            firstBodyAt = .now()
            commitHead()
        }
        if framed || !clientChunked {
            // Already in the client response's framing: passed on as they are.
            client.write(bytes)
        } else {
            client.write(ClientResponse.chunk(bytes, allocator: GatewayLoop.allocator))
        }
        needsFlush = true
    }

    func upstreamReadComplete() {
        guard needsFlush else { return }
        needsFlush = false
        client.flush()
        observeFirstBody()
        // A client reading slower than the upstream writes: stop reading the upstream until the
        // client's socket has taken what is queued, so the gateway holds at most about this much.
        if client.outboundBytes > Self.clientBacklogLimit, let upstream = connection?.socket, upstream.reading {
            upstream.pauseReading()
            state.metrics.upstreamPaused()
            client.onDrained = { [weak self] in self?.connection?.socket.resumeReading() }
        }
    }

    /// Bytes queued for a client beyond which its upstream is not read.
    static let clientBacklogLimit = 1 << 20

    /// Records the gateway's added latency once the first body bytes have been flushed: its time
    /// before the upstream hop plus from the first upstream body bytes to their flush.
    private func observeFirstBody() {
        guard let firstAt = firstBodyAt else { return }
        firstBodyAt = nil
        let added = (sentAt - arrival) - waited + (NIODeadline.now() - firstAt)
        state.metrics.observe(added: Self.seconds(added), upstreamFirstByte: Self.seconds(firstAt - sentAt))
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
        if isStream && clientChunked && client.isActive {
            // What was forwarded ends on a chunk boundary (see `BodyFramer`), so the error event
            // can follow as a chunk of its own.
            let apiError = APIError(status: 502, message: "The upstream \(url) failed mid-stream: \(GatewayState.describe(error))",
                                    type: "upstream_error", code: "upstream_stream_failed")
            let event = ByteBuffer(bytes: ServerSentEvents.event(apiError.jsonData()))
            client.write(ClientResponse.chunk(event, allocator: GatewayLoop.allocator))
            end()
        } else {
            finished = true
            releaseSlot()
            handler.exchangeEnded(self)
            client.close(error: nil)
        }
    }

    // MARK: steps

    private func commitHead() {
        committed = true
        let upstream = upstreamHeadValue ?? HTTPResponseHead(version: .http1_1, status: .ok)
        var length: Int?
        if !isStream, case .length(let n) = upstreamBodyLength { length = n }
        clientChunked = length == nil
        state.metrics.answered(status: Int(upstream.status.code))
        let head = ClientResponse.head(status: upstream.status, contentType: upstream.headers.first(name: "content-type") ?? "application/json",
                                       cacheControl: upstream.headers.first(name: "cache-control"), contentLength: length,
                                       close: !keepAlive || client.loop.draining, allocator: GatewayLoop.allocator)
        client.write(head)
    }

    private func end() {
        finished = true
        releaseSlot()
        handler.exchangeEnded(self)
        needsFlush = false
        handler.finishResponse(last: clientChunked ? ClientResponse.lastChunk : nil, close: !keepAlive)
        observeFirstBody()
    }

    private func fail(_ error: APIError) {
        finished = true
        releaseSlot()
        handler.exchangeEnded(self)
        if error.status >= 500 || error.status == 429 { state.metrics.error(model: route.name, upstream: nil) }
        handler.respond(error: error, keepAlive: keepAlive)
    }

    private func attemptFailed(_ error: APIError, eject: Bool) {
        guard let (index, upstream) = current else { return }
        connection?.socket.close(error: nil)
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
        client.loop.schedule(in: delay) { [self] in start() }
    }

    static func seconds(_ t: TimeAmount) -> Double { Double(t.nanoseconds) / 1e9 }
}
