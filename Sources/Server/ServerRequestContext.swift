import Hummingbird
import NIOCore
import OpenAIAPI

#if canImport(Glibc)
import Glibc
#endif

/// The request context of `llmux serve`: Hummingbird's core context plus a way to ask whether
/// the client is still there. A non-streamed answer writes nothing until it is whole, so without
/// asking, a request whose client has gone would run to its end on the device.
public struct ServerRequestContext: RequestContext {
    /// Hummingbird's per-request storage (allocator, logger, parameters).
    public var coreContext: CoreRequestContextStorage
    /// Whether the request's client is still connected.
    let isConnected: @Sendable () async -> Bool

    /// The context of a request read from `source`'s connection.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        let channel = source.channel
        // Only a connection that was open and then closed counts as gone: the router tests'
        // channel was never connected.
        let wasActive = channel.isActive
        isConnected = {
            guard wasActive else { return true }
            return await Self.peerIsConnected(channel)
        }
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

/// How often a non-streamed request checks that its client is still connected: each check is a
/// hop to the connection's event loop, and a fifth of a second of work for a departed client is
/// small next to the whole answer it would otherwise run to.
let disconnectPollInterval = Duration.milliseconds(200)

/// Runs `work` until it ends or `isConnected` turns false, whichever comes first; in the second
/// case the work is cancelled, which aborts its sequences in the engine (`ServerState.generate`).
func whileConnected(_ isConnected: @escaping @Sendable () async -> Bool,
                    _ work: @escaping @Sendable () async throws(APIError) -> APIAnswer) async throws(APIError) -> APIAnswer {
    let outcome: Result<APIAnswer, APIError>? = await withTaskGroup(of: Result<APIAnswer, APIError>?.self) { group in
        group.addTask {
            do throws(APIError) {
                return .success(try await work())
            } catch {
                return .failure(error)
            }
        }
        group.addTask {
            while !Task.isCancelled, await isConnected() { try? await Task.sleep(for: disconnectPollInterval) }
            // nil: the client left (a cancelled watcher's answer is never read).
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
    switch outcome {
    case .success(let answer): return answer
    case .failure(let error): throw error
    case nil: throw APIError.clientClosedRequest
    }
}
