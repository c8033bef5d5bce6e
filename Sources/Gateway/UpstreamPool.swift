import NIOCore

/// Kept-alive connections to the upstreams, one set per loop (`GatewayLoop.idleUpstreams`), so
/// a request's upstream connection lives on its client connection's loop and taking one needs
/// no lock.
final class UpstreamPool: Sendable {
    /// An open upstream connection and its handler.
    typealias Connection = (socket: LoopSocket, handler: UpstreamHandler)

    let connectTimeout: TimeAmount
    let readTimeout: TimeAmount

    init(connectTimeout: TimeAmount, readTimeout: TimeAmount) {
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
    }

    /// An idle open connection to `upstream` on `loop`, taken out of the pool, if there is one.
    func takeIdle(_ upstream: Upstream, on loop: GatewayLoop) -> Connection? {
        let key = ObjectIdentifier(upstream)
        while let connection = loop.idleUpstreams[key]?.popLast() {
            if connection.socket.isActive { return connection }
        }
        return nil
    }

    /// A new connection to `upstream` on `loop`, to the first of its addresses that accepts;
    /// `done` is called on the loop. The connection carries raw bytes: the request is written
    /// encoded and `UpstreamHandler` parses the answer itself.
    func connect(_ upstream: Upstream, on loop: GatewayLoop, _ done: @escaping (Result<Connection, any Error>) -> Void) {
        let addresses: [ResolvedAddress]
        do {
            addresses = try upstream.addresses()
        } catch {
            return loop.later { done(.failure(error)) }
        }
        let readTimeout = self.readTimeout
        LoopSocket.connect(to: addresses[...], on: loop, timeout: connectTimeout) { result in
            done(result.map { socket in
                let handler = UpstreamHandler(socket: socket, readTimeout: readTimeout)
                socket.delegate = handler
                return (socket, handler)
            })
        }
    }

    /// Puts a connection whose answer ended cleanly back for reuse.
    func release(_ connection: Connection, upstream: Upstream) {
        guard connection.socket.isActive else { return }
        connection.socket.loop.idleUpstreams[ObjectIdentifier(upstream), default: []].append(connection)
    }
}
