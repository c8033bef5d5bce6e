import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import OpenAIAPI
import ServiceLifecycle

/// The routes of `llmux gateway`.
public func makeGatewayRouter(state: GatewayState) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.post("/v1/completions") { request, _ in await state.proxy(request, path: "/v1/completions") }
    router.post("/v1/chat/completions") { request, _ in await state.proxy(request, path: "/v1/chat/completions") }
    router.get("/v1/models") { request, _ in await state.mergedModels(request) }
    router.get("/health") { _, _ in
        let up = state.routes.values.contains { $0.upstreams.contains(where: \.isHealthy) }
        return Response(status: up ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain"],
                        body: .init(byteBuffer: ByteBuffer(string: up ? "OK\n" : "no healthy upstream\n")))
    }
    router.get("/metrics") { _, _ in
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: state.metrics.render(upstreams: state.upstreams))))
    }
    return router
}

extension GatewayState {
    /// `GET /v1/models`: the union of the healthy upstreams' lists, limited to the models this
    /// gateway routes, each model once.
    func mergedModels(_ request: Request) async -> Response {
        do {
            try authorize(request)
        } catch {
            metrics.answered(status: error.status)
            return Self.errorResponse(error)
        }
        let headers = upstreamHeaders(request)
        let client = self.client
        let timeout = Int64(configuration.healthTimeoutMs) * 2
        let answers = await withTaskGroup(of: (Int, Data?).self) { group in
            for upstream in upstreams where upstream.isHealthy {
                group.addTask {
                    var r = HTTPClientRequest(url: upstream.url + "/v1/models")
                    r.headers = headers
                    guard let response = try? await client.execute(r, timeout: .milliseconds(max(1000, timeout))),
                          let body = try? await response.body.collect(upTo: 8 << 20) else { return (0, nil) }
                    return (Int(response.status.code), Data(buffer: body))
                }
            }
            var all: [(Int, Data?)] = []
            for await answer in group { all.append(answer) }
            return all
        }
        var cards: [String: [String: Any]] = [:]
        var firstError: (Int, Data)?
        for (status, data) in answers {
            guard let data else { continue }
            guard status == 200 else {
                if firstError == nil { firstError = (status, data) }
                continue
            }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let list = object["data"] as? [[String: Any]] else { continue }
            for card in list {
                guard let id = card["id"] as? String, routes[id] != nil, cards[id] == nil else { continue }
                cards[id] = card
            }
        }
        if cards.isEmpty, let (status, data) = firstError {
            metrics.answered(status: status)
            return Response(status: .init(code: status), headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        let ordered = configuration.models.compactMap { cards[$0.name] }
        let body = (try? JSONSerialization.data(withJSONObject: ["object": "list", "data": ordered], options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{\"object\":\"list\",\"data\":[]}".utf8)
        metrics.answered(status: 200)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// Checks every upstream's `/health` each interval (and reads `/load` for the load-aware
    /// policies) until cancelled.
    func runHealthChecks() async {
        let wantsLoad = configuration.models.contains { $0.policy == .powerOfTwo || $0.policy == .prefix }
        await withTaskGroup(of: Void.self) { group in
            for upstream in upstreams {
                group.addTask { await self.check(upstream, wantsLoad: wantsLoad) }
            }
        }
    }

    private func check(_ upstream: Upstream, wantsLoad: Bool) async {
        let interval = Duration.milliseconds(configuration.healthIntervalMs)
        let timeout = TimeAmount.milliseconds(Int64(configuration.healthTimeoutMs))
        var headers = HTTPHeaders()
        if let key = configuration.upstreamAPIKey { headers.add(name: "authorization", value: "Bearer \(key)") }
        while !Task.isCancelled {
            let started = ContinuousClock.now
            var request = HTTPClientRequest(url: upstream.url + "/health")
            request.headers = headers
            var healthy = false
            if let response = try? await client.execute(request, timeout: timeout) {
                healthy = response.status == .ok
                _ = try? await response.body.collect(upTo: 1 << 16)
            }
            if let change = upstream.recordCheck(success: healthy) {
                FileHandle.standardError.write(Data("llmux gateway: upstream \(upstream.url) is \(change.rawValue)\n".utf8))
            }
            if healthy && wantsLoad {
                var loadRequest = HTTPClientRequest(url: upstream.url + "/load")
                loadRequest.headers = headers
                if let response = try? await client.execute(loadRequest, timeout: timeout),
                   let body = try? await response.body.collect(upTo: 1 << 20), response.status == .ok {
                    upstream.updateLoad(Self.parseLoad(Data(buffer: body)))
                }
            }
            let elapsed = ContinuousClock.now - started
            if elapsed < interval { try? await Task.sleep(for: interval - elapsed) }
        }
    }

    /// Reads `{"models": {"NAME": {"running": R, "waiting": W, "kv_usage": K}}}`.
    static func parseLoad(_ data: Data) -> [String: ModelLoad] {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let models = object["models"] as? [String: [String: Any]] else { return [:] }
        var loads: [String: ModelLoad] = [:]
        for (name, entry) in models {
            loads[name] = ModelLoad(running: (entry["running"] as? NSNumber)?.intValue ?? 0,
                                    waiting: (entry["waiting"] as? NSNumber)?.intValue ?? 0,
                                    kvUsage: (entry["kv_usage"] as? NSNumber)?.doubleValue ?? 0)
        }
        return loads
    }
}

/// Runs the health checks beside the HTTP server and closes the client pool at shutdown.
struct HealthCheckService: Service {
    let state: GatewayState
    func run() async throws {
        await cancelWhenGracefulShutdown { await state.runHealthChecks() }
        await state.shutdown()
    }
}

/// `llmux gateway`: serves until SIGINT/SIGTERM.
public enum LLMuxGateway {
    /// Raises the open-file limit to its hard limit (each stream holds two or three sockets) and,
    /// with `eventLoopExecutor`, runs Swift tasks on the network event loops that own the
    /// sockets, so a forwarded chunk does not hop between threads.
    public static func prepareProcess(eventLoopExecutor: Bool) {
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
        if eventLoopExecutor {
            _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
    }

    public static func run(configuration: GatewayConfiguration) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let state = GatewayState(configuration: configuration, eventLoopGroup: group)
        var logger = Logger(label: "llmux-gateway")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
        let app = Application(
            router: makeGatewayRouter(state: state),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "llmux-gateway", backlog: 4096),
            services: [HealthCheckService(state: state)],
            onServerRunning: { channel in
                guard configuration.announce else { return }
                let port = channel.localAddress?.port ?? configuration.port
                let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
                let models = configuration.models.map { "\($0.name) → \($0.upstreams.count) upstream(s), \($0.policy.rawValue)" }
                FileHandle.standardOutput.write(Data("LLMux gateway listening on http://\(host):\(port) (models: \(models.joined(separator: "; ")))\n".utf8))
            },
            eventLoopGroupProvider: .shared(group),
            logger: logger)
        try await app.runService()
    }
}
