import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import OpenAIAPI
import ServiceLifecycle

extension GatewayState {
    /// `GET /v1/models`: the union of the healthy upstreams' lists, limited to the models this
    /// gateway routes, each model once.
    func mergedModels(authorization: String?) async -> (Int, ByteBuffer) {
        do {
            try authorize(authorization: authorization)
        } catch {
            metrics.answered(status: error.status)
            return (error.status, ByteBuffer(bytes: error.jsonData()))
        }
        let headers = upstreamHeaders(authorization: authorization, accept: nil)
        let client = self.client
        let timeout = Int64(configuration.healthTimeoutMs) * 2
        let answers = await withTaskGroup(of: (Int, Data?).self) { group in
            for upstream in upstreams where upstream.isHealthy {
                group.addTask {
                    var r = HTTPClientRequest(url: upstream.url + "/v1/models")
                    r.headers = headers
                    guard let response = try? await client.execute(r, timeout: .milliseconds(max(1000, timeout))),
                          let body = try? await response.body.collect(upTo: 8 << 20) else { return (0, nil) }
                    return (Int(response.status.code), Data(body.readableBytesView))
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
            return (status, ByteBuffer(bytes: data))
        }
        let ordered = configuration.models.compactMap { cards[$0.name] }
        let body = (try? JSONSerialization.data(withJSONObject: ["object": "list", "data": ordered], options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{\"object\":\"list\",\"data\":[]}".utf8)
        metrics.answered(status: 200)
        return (200, ByteBuffer(bytes: body))
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
                    upstream.updateLoad(Self.parseLoad(Data(body.readableBytesView)))
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

/// Starts the data path, runs the health checks, and at SIGINT/SIGTERM stops accepting, lets
/// requests in flight finish (up to `drainSeconds`), then closes every connection.
struct GatewayService: Service {
    let state: GatewayState
    let drainSeconds = 30.0

    func run() async throws {
        let front: GatewayFront
        do {
            front = try ProxyServer.start(state: state)
        } catch {
            // The health-check client must be shut down before it goes, even when nothing started.
            await state.shutdown()
            throw error
        }
        let configuration = state.configuration
        if configuration.announce {
            let port = front.port
            let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
            let models = configuration.models.map { "\($0.name) → \($0.upstreams.count) upstream(s), \($0.policy.rawValue)" }
            FileHandle.standardOutput.write(Data("LLMux gateway listening on http://\(host):\(port) (models: \(models.joined(separator: "; ")))\n".utf8))
        }
        await cancelWhenGracefulShutdown { await state.runHealthChecks() }
        await front.stopAccepting()
        let deadline = ContinuousClock.now + .seconds(drainSeconds)
        while state.upstreams.contains(where: { $0.outstanding > 0 }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        await front.shutdown()
        await state.shutdown()
    }
}

/// `llmux gateway`: serves until SIGINT/SIGTERM.
public enum LLMuxGateway {
    /// Raises the open-file limit to its hard limit (each stream holds two or three sockets).
    public static func prepareProcess() {
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
    }

    /// Serves `configuration` on its own loops (`resolvedEventLoops` of them; see
    /// `autoEventLoops`) until SIGINT/SIGTERM, then drains. Health checks and model lists use
    /// AsyncHTTPClient on one NIO thread of their own.
    public static func run(configuration: GatewayConfiguration) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let state = GatewayState(configuration: configuration, eventLoopGroup: group)
        var logger = Logger(label: "llmux-gateway")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
        let services = ServiceGroup(configuration: .init(
            services: [.init(service: GatewayService(state: state), successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await services.run()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
    }
}
