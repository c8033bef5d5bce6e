import AsyncHTTPClient
import Foundation
@testable import Gateway
import NIOCore
import NIOPosix
import Testing

/// The real proxy on a free port in front of the stub upstream.
@Suite(.serialized) struct ProxyTests {
    struct Setup {
        let stub: any Channel
        let gateway: GatewayFront
        let state: GatewayState
        let client: HTTPClient
        var url: String { "http://127.0.0.1:\(gateway.port)" }

        func close() async {
            await gateway.shutdown()
            try? await stub.close()
            await state.shutdown()
            try? await client.shutdown()
        }

        func post(_ path: String, _ json: String) async throws -> (Int, String) {
            var request = HTTPClientRequest(url: url + path)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
            let response = try await client.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 20)
            return (Int(response.status.code), String(buffer: body))
        }
    }

    func setup(interval: Duration = .milliseconds(2), configure: (inout GatewayConfiguration) -> Void = { _ in }) async throws -> Setup {
        var stubSettings = BenchStub.Settings()
        stubSettings.tokens = 8
        stubSettings.interval = interval
        let stub = try await BenchStub.bind(stubSettings)
        var configuration = GatewayConfiguration()
        configuration.port = 0
        configuration.announce = false
        try configuration.addUpstream("bench=http://127.0.0.1:\(stub.localAddress!.port!)")
        configure(&configuration)
        let state = GatewayState(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        let channel = try ProxyServer.start(state: state)
        return Setup(stub: stub, gateway: channel, state: state, client: BenchLoad.makeClient(concurrency: 8))
    }

    @Test func streamsAndWholeAnswersPassThrough() async throws {
        let s = try await setup()
        let (status, text) = try await s.post("/v1/chat/completions", #"{"model":"bench","messages":[],"stream":true}"#)
        #expect(status == 200)
        let events = text.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: ") }
        #expect(events.count == 9 && events.last == "data: [DONE]")
        let (status2, json) = try await s.post("/v1/completions", #"{"model":"bench","prompt":"x"}"#)
        #expect(status2 == 200 && json.contains("\"text_completion\""))
        let (status3, missing) = try await s.post("/v1/completions", #"{"model":"nope","prompt":"x"}"#)
        #expect(status3 == 404 && missing.contains("model_not_found"))
        let (status4, _) = try await s.post("/v1/completions", #"{"prompt":"x"}"#)
        #expect(status4 == 400)
        #expect(s.state.metrics.render(upstreams: s.state.upstreams).contains("llmux_gateway_requests_total{model=\"bench\"} 2"))
        await s.close()
    }

    @Test func fullUpstreamsAnswer429() async throws {
        let s = try await setup(interval: .milliseconds(100)) { $0.maxConcurrentPerUpstream = 1 }
        async let first = s.post("/v1/chat/completions", #"{"model":"bench","messages":[],"stream":true}"#)
        try await Task.sleep(for: .milliseconds(200))
        let (status, body) = try await s.post("/v1/chat/completions", #"{"model":"bench","messages":[],"stream":true}"#)
        #expect(status == 429 && body.contains("upstreams_busy"))
        #expect(try await first.0 == 200)
        await s.close()
    }

    @Test func requestTimeoutEndsAStreamWithAnErrorEvent() async throws {
        let s = try await setup(interval: .milliseconds(400)) { $0.requestTimeoutSeconds = 1 }
        let (status, text) = try await s.post("/v1/chat/completions", #"{"model":"bench","messages":[],"stream":true}"#)
        #expect(status == 200)
        #expect(text.contains("upstream_stream_failed") && !text.contains("[DONE]"))
        await s.close()
    }

    @Test func deadUpstreamIsRetriedOnAnotherReplicaAndEjected() async throws {
        // A port nothing listens on, then the stub: the refused attempt is retried on the stub.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let deadPort = probe.localAddress!.port!
        try await probe.close()
        let s = try await setup { config in
            config.models[0].upstreams.insert("http://127.0.0.1:\(deadPort)", at: 0)
            config.models[0].policy = .roundRobin
        }
        let route = s.state.routes["bench"]!
        for _ in 0..<3 {
            let (status, _) = try await s.post("/v1/completions", #"{"model":"bench","prompt":"x","stream":true}"#)
            #expect(status == 200)
        }
        #expect(!route.upstreams[0].isHealthy && route.upstreams[1].isHealthy)
        #expect(s.state.metrics.render(upstreams: s.state.upstreams).contains("llmux_gateway_retries_total{model=\"bench\"} 1"))
        await s.close()
    }
}
