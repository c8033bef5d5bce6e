import Hummingbird
import NIOCore
import OpenAIAPI

#if canImport(Glibc)
import Glibc
#endif

/// The request context of `llmux serve`: Hummingbird's core context plus the request's
/// `ClientConnection`.
public struct ServerRequestContext: RequestContext {
    /// Hummingbird's per-request storage (allocator, logger, parameters).
    public var coreContext: CoreRequestContextStorage
    /// Whether the client is still there.
    let connection: ClientConnection

    /// The context of a request read from `source`'s connection.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        let channel = source.channel
        // Only a connection that was open and then closed counts as gone: the router tests'
        // channel was never connected.
        if channel.isActive {
            connection = ClientConnection { await ClientConnection.peerIsConnected(channel) }
        } else {
            connection = .always
        }
    }
}

/// Whether a request's client is still connected. A request writes nothing while it waits in
/// the queue, and a non-streamed one nothing until its answer is whole, so no failed write
/// would tell that its client left: `ServerState.generate` asks this instead, and aborts.
struct ClientConnection: Sendable {
    /// How often `generate` asks. Each check wakes a task and hops to the connection's event
    /// loop; once a second cost nothing measurable with 256 concurrent whole answers on the CPU
    /// demo (BENCHMARKS, "serve: watching for departed clients"), and a departed client then
    /// costs at most a second of generation.
    static let pollInterval = Duration.seconds(1)

    /// Whether the client is still connected.
    let isConnected: @Sendable () async -> Bool
    /// Watch until the answer is whole (true), or only until its first token (false: a streamed
    /// answer, whose writes from then on fail once the client has gone, with no polling).
    var watchesWholeAnswer = true

    /// A client connection checked by `isConnected`.
    init(isConnected: @escaping @Sendable () async -> Bool) { self.isConnected = isConnected }

    /// The same connection, watched only until the first token.
    var untilFirstToken: ClientConnection {
        var copy = self
        copy.watchesWholeAnswer = false
        return copy
    }

    /// A client that never leaves (the router tests).
    static let always = ClientConnection { true }

    /// Returns once the client has gone, checking every `pollInterval`; throws when cancelled.
    func waitUntilGone() async throws {
        while await isConnected() { try await Task.sleep(for: Self.pollInterval) }
    }

    /// Hummingbird allows half-closed connections, so a client that closed its socket leaves the
    /// channel active: the kernel's TCP state tells (CLOSE_WAIT once the client's FIN arrived).
    /// Like nginx, a client that half-closes is taken as gone.
    static func peerIsConnected(_ channel: any Channel) async -> Bool {
        guard channel.isActive else { return false }
        #if os(Linux)
        if let provider = channel as? any SocketOptionProvider, let info = try? await provider.getTCPInfo().get() {
            return info.tcpi_state == UInt8(TCP_ESTABLISHED)
        }
        #endif
        return true
    }
}
