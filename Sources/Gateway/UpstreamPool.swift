import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Kept-alive connections to the upstreams, one set per event loop, so a request's upstream
/// connection lives on its client connection's loop. Each loop's set is touched only on that loop.
final class UpstreamPool: Sendable {
    final class LoopConnections: @unchecked Sendable {
        var idle: [String: [Channel]] = [:]
    }
    private let loops = NIOLockedValueBox<[ObjectIdentifier: LoopConnections]>([:])
    let connectTimeout: TimeAmount
    let readTimeout: TimeAmount

    init(connectTimeout: TimeAmount, readTimeout: TimeAmount) {
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
    }

    private func storage(on loop: any EventLoop) -> LoopConnections {
        loops.withLockedValue { map in
            if let existing = map[ObjectIdentifier(loop)] { return existing }
            let created = LoopConnections()
            map[ObjectIdentifier(loop)] = created
            return created
        }
    }

    /// An idle connection to `upstream` on `loop`, or a new one. `reused` tells which.
    func acquire(_ upstream: Upstream, on loop: any EventLoop) -> EventLoopFuture<(channel: Channel, handler: UpstreamHandler, reused: Bool)> {
        loop.preconditionInEventLoop()
        let connections = storage(on: loop)
        while var list = connections.idle[upstream.url], let channel = list.popLast() {
            connections.idle[upstream.url] = list
            if channel.isActive, let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) {
                return loop.makeSucceededFuture((channel, handler, true))
            }
        }
        let readTimeout = self.readTimeout
        return ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: readTimeout))
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
            .connect(host: upstream.host, port: upstream.port)
            .flatMapThrowing { channel in
                (channel, try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self), false)
            }
    }

    /// Puts a connection whose answer ended cleanly back for reuse.
    func release(_ channel: Channel, upstream: Upstream) {
        let loop = channel.eventLoop
        loop.preconditionInEventLoop()
        guard channel.isActive else { return }
        storage(on: loop).idle[upstream.url, default: []].append(channel)
    }
}

/// What an upstream connection tells the request using it.
protocol UpstreamConsumer: AnyObject {
    func upstreamHead(_ head: HTTPResponseHead)
    func upstreamBody(_ buffer: ByteBuffer)
    func upstreamEnd(keepAlive: Bool)
    func upstreamFailed(_ error: any Error)
}

struct UpstreamClosed: Error, CustomStringConvertible {
    var description: String { "the upstream closed the connection" }
}

struct UpstreamTimedOut: Error, CustomStringConvertible {
    var description: String { "the upstream sent nothing within the read timeout" }
}

/// The last handler of an upstream connection: forwards the answer's parts to the request that
/// holds the connection.
/// Used only on its channel's event loop (hence the unchecked Sendable, for futures on that loop).
final class UpstreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    weak var consumer: (any UpstreamConsumer)?
    private var keepAlive = true

    func send(context channel: Channel, head: HTTPRequestHead, body: ByteBuffer) {
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            consumer?.upstreamHead(head)
        case .body(let buffer):
            consumer?.upstreamBody(buffer)
        case .end:
            let consumer = self.consumer
            self.consumer = nil
            if !keepAlive { context.close(promise: nil) }
            consumer?.upstreamEnd(keepAlive: keepAlive)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let consumer {
            self.consumer = nil
            consumer.upstreamFailed(UpstreamClosed())
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let consumer {
            self.consumer = nil
            consumer.upstreamFailed(error)
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            if let consumer {
                self.consumer = nil
                consumer.upstreamFailed(UpstreamTimedOut())
            }
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
