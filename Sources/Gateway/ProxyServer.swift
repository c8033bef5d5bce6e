import NIOCore
import NIOPosix

/// Binds the gateway's listening socket on the shared event loops.
public enum ProxyServer {
    /// Listens on the configured host and port; each accepted connection gets only a
    /// `GatewayConnectionHandler`, which parses its requests and writes its answers itself.
    public static func bind(state: GatewayState, group: any EventLoopGroup) async throws -> any Channel {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(GatewayConnectionHandler(state: state))
                }
            }
        return try await bootstrap.bind(host: state.configuration.host, port: state.configuration.port).get()
    }
}
