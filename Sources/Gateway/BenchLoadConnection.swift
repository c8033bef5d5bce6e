import NIOCore
import NIOHTTP1
import NIOPosix

/// One worker of the load client: a keep-alive connection that sends the mix's requests back to
/// back until the window ends, timing each request's first body byte and its end, and opening a
/// new connection when the server closes one.
///
/// It writes prepared request heads and bodies through NIO's HTTP/1 client handlers on one event loop,
/// so the client spends little of the machine's CPU on each request: on a 2-core machine the
/// client shares the cores with the stub and the proxy, and whatever it spends shows up as the
/// proxy's latency.
final class LoadWorker: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    /// What every worker of one run shares (read-only).
    struct Plan: Sendable {
        /// Where to connect.
        let address: SocketAddress
        /// The mix's requests and whether each streams.
        let requests: [(head: HTTPRequestHead, body: ByteBuffer, streamed: Bool)]
        let windowStart: NIODeadline
        let windowEnd: NIODeadline
        /// A worker still waiting for an answer then gives up (an error) and ends.
        let giveUpAt: NIODeadline
    }

    private let plan: Plan
    private let eventLoop: any EventLoop
    private let done: EventLoopPromise<BenchLoad.Result>
    private var result = BenchLoad.Result()
    /// Index into the mix of the next request (each worker starts at its own place).
    private var next: Int
    /// The request in flight: when it was sent, whether it streams, when its first byte came.
    private var sent: NIODeadline?
    private var streamed = false
    private var firstByte: NIODeadline?
    private var failedStatus: HTTPResponseStatus?
    private var finished = false
    private var channel: (any Channel)?

    init(plan: Plan, worker: Int, eventLoop: any EventLoop, done: EventLoopPromise<BenchLoad.Result>) {
        self.plan = plan
        self.eventLoop = eventLoop
        self.done = done
        self.next = worker
    }

    /// Starts the worker: its first connection, and the deadline after which it stops waiting.
    func start() {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        eventLoop.scheduleTask(deadline: plan.giveUpAt) {
            let worker = bound.value
            guard !worker.finished else { return }
            if worker.sent != nil {
                worker.sent = nil
                worker.record(error: "no answer by the deadline")
            }
            worker.finish()
        }
        connect()
    }

    /// Opens the worker's (next) connection; a refused connection counts as an error and is
    /// tried again 10 ms later while the window lasts.
    private func connect() {
        guard !finished else { return }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            .connect(to: plan.address)
            .whenFailure { error in bound.value.failed("connect: \(error)") }
    }

    func channelActive(context: ChannelHandlerContext) {
        channel = context.channel
        sendNext(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status != .ok { failedStatus = head.status }
        case .body:
            if firstByte == nil { firstByte = .now() }
        case .end:
            guard let sent else { return }
            let end = NIODeadline.now()
            self.sent = nil
            if let status = failedStatus {
                failedStatus = nil
                record(error: "status \(status.code)")
            } else {
                if sent >= plan.windowStart && sent < plan.windowEnd {
                    if streamed { result.firstByte.append(Self.seconds((firstByte ?? end) - sent)) }
                    result.total.append(Self.seconds(end - sent))
                }
                if end >= plan.windowStart && end < plan.windowEnd { result.completedInWindow += 1 }
            }
            sendNext(context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Closed under a request: that request failed. Either way the worker goes on, on a new
        // connection, until the window ends.
        channel = nil
        if sent != nil {
            sent = nil
            failed("connection closed before the answer ended")
        } else if !finished {
            connect()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func sendNext(context: ChannelHandlerContext) {
        guard NIODeadline.now() < plan.windowEnd else { return finish() }
        let request = plan.requests[next % plan.requests.count]
        next += 1
        streamed = request.streamed
        firstByte = nil
        sent = .now()
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// Counts an error (a refused connection, a request cut off) and tries a new connection a
    /// little later, or ends when the window has.
    private func failed(_ message: String) {
        record(error: message)
        guard !finished, NIODeadline.now() < plan.windowEnd else { return finish() }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        eventLoop.scheduleTask(in: .milliseconds(10)) { bound.value.connect() }
    }

    private func record(error: String) {
        result.errors += 1
        if result.firstError == nil { result.firstError = error }
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        channel?.close(promise: nil)
        done.succeed(result)
    }

    static func seconds(_ amount: TimeAmount) -> Double { Double(amount.nanoseconds) / 1e9 }
}
