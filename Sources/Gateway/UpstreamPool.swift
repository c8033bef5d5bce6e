import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Kept-alive connections to the upstreams, one set per event loop, so a request's upstream
/// connection lives on its client connection's loop. Each loop's set is touched only on that loop.
final class UpstreamPool: Sendable {
    /// An open upstream connection and its last handler.
    typealias Connection = (channel: Channel, handler: UpstreamHandler)

    final class LoopConnections: @unchecked Sendable {
        /// Idle connections by upstream (keyed by the `Upstream` object, which lives as long as
        /// the gateway's state does).
        var idle: [ObjectIdentifier: [Connection]] = [:]
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

    /// An idle open connection to `upstream` on `loop`, taken out of the pool, if there is one.
    /// Synchronous, so the common case (a kept-alive connection) costs no future.
    func takeIdle(_ upstream: Upstream, on loop: any EventLoop) -> Connection? {
        loop.preconditionInEventLoop()
        let connections = storage(on: loop)
        let key = ObjectIdentifier(upstream)
        while let connection = connections.idle[key]?.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    /// A new connection to `upstream` on `loop`. Its pipeline carries raw bytes: the request is
    /// written encoded and `UpstreamHandler` parses the answer itself.
    func connect(_ upstream: Upstream, on loop: any EventLoop) -> EventLoopFuture<Connection> {
        let readTimeout = self.readTimeout
        return ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(readTimeout: readTimeout))
                }
            }
            .connect(host: upstream.host, port: upstream.port)
            .flatMapThrowing { channel in
                (channel, try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self))
            }
    }

    /// Puts a connection whose answer ended cleanly back for reuse.
    func release(_ connection: Connection, upstream: Upstream) {
        let loop = connection.channel.eventLoop
        loop.preconditionInEventLoop()
        guard connection.channel.isActive else { return }
        storage(on: loop).idle[ObjectIdentifier(upstream), default: []].append(connection)
    }
}
