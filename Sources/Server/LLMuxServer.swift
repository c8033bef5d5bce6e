import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// Runs `llmux serve`'s HTTP server: binds at once (so `/health` answers 503 while loading),
/// loads the models with `load` on a thread of its own, prints the "listening" line, and on
/// SIGINT/SIGTERM stops accepting, lets in-flight requests finish, then drains the engine.
public enum LLMuxServer {
    /// Serves until SIGINT/SIGTERM; `load` runs on a thread of its own and supplies the models and their engine.
    public static func run(configuration: ServerConfiguration, load: @escaping @Sendable () throws -> ServerState.Loaded) async throws {
        let state = ServerState(configuration: configuration)
        let (bound, boundContinuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "llmux")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
        let app = Application(
            router: makeRouter(state: state),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "llmux"),
            services: [ModelService(state: state, load: load, bound: bound)],
            onServerRunning: { channel in
                boundContinuation.yield(channel.localAddress?.port ?? configuration.port)
                boundContinuation.finish()
            },
            logger: logger)
        try await app.runService()
    }
}

/// Loads the models, marks the server ready, announces it, and drains the engine at shutdown
/// (after the HTTP server has finished its in-flight requests: services stop in reverse order).
struct ModelService: Service {
    let state: ServerState
    let load: @Sendable () throws -> ServerState.Loaded
    let bound: AsyncStream<Int>

    func run() async throws {
        let loaded = try await onThread(load)
        state.ready(loaded)
        var port = state.configuration.port
        for await actual in bound {
            port = actual
            break
        }
        if state.configuration.announce {
            let host = state.configuration.host
            let hostPart = host.contains(":") ? "[\(host)]" : host
            let first = loaded.models.first?.name ?? "demo"
            var lines = "LLMux listening on http://\(hostPart):\(port) (models: \(loaded.models.map(\.name).joined(separator: ", ")))\n"
            let auth = state.configuration.apiKeys.isEmpty ? "" : " -H 'Authorization: Bearer $LLMUX_API_KEY'"
            lines += "Try: curl http://\(hostPart):\(port)/v1/completions -H 'Content-Type: application/json'\(auth) -d '{\"model\": \"\(first)\", \"prompt\": \"def fibonacci(n):\\n\", \"max_tokens\": 48, \"temperature\": 0}'\n"
            FileHandle.standardOutput.write(Data(lines.utf8))
        }
        try? await gracefulShutdown()
        state.beginDrain()
        try await onThread { loaded.backend.shutdown() }
    }
}

/// Runs blocking work on a thread of its own, off the cooperative pool.
func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try work()) } catch { continuation.resume(throwing: error) }
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
