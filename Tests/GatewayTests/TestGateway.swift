@testable import Gateway
import NIOPosix

/// A gateway on a free port in front of `upstream` (`MODEL=URL`), quiet, with `configure`
/// applied; health checks and model lists on NIO's shared loops.
func startTestGateway(upstream: String, configure: (inout GatewayConfiguration) -> Void = { _ in }) throws
    -> (state: GatewayState, front: GatewayFront) {
    var configuration = GatewayConfiguration()
    configuration.port = 0
    configuration.announce = false
    try configuration.addUpstream(upstream)
    configure(&configuration)
    let state = GatewayState(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
    return (state, try ProxyServer.start(state: state))
}
