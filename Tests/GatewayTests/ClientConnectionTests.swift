import Foundation
@testable import Gateway
import NIOCore
import NIOPosix
import Testing

/// Collects everything a raw client connection receives until the server closes it.
final class Collector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    var received = ""
    let done: EventLoopPromise<String>

    init(done: EventLoopPromise<String>) { self.done = done }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { received += String(buffer: unwrapInboundIn(data)) }
    func channelInactive(context: ChannelHandlerContext) { done.succeed(received) }
}

/// The gateway's client side without an HTTP client in between: pipelined requests, HEAD,
/// malformed requests.
@Suite(.serialized) struct ClientConnectionTests {
    /// Sends `bytes` on one connection and returns all the gateway sent back before closing it.
    static func exchange(_ bytes: String) async throws -> String {
        var stubSettings = BenchStub.Settings()
        stubSettings.tokens = 3
        stubSettings.interval = .milliseconds(5)
        let stub = try await BenchStub.bind(stubSettings)
        var configuration = GatewayConfiguration()
        configuration.port = 0
        configuration.announce = false
        try configuration.addUpstream("bench=http://127.0.0.1:\(stub.localAddress!.port!)")
        let state = GatewayState(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        let gateway = try await ProxyServer.bind(state: state, group: MultiThreadedEventLoopGroup.singleton)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let done = loop.makePromise(of: String.self)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(done: done)) }
            }
            .connect(host: "127.0.0.1", port: gateway.localAddress!.port!).get()
        try await channel.writeAndFlush(ByteBuffer(string: bytes))
        let text = try await done.futureResult.get()
        try? await gateway.close()
        try? await stub.close()
        await state.shutdown()
        return text
    }

    static func post(_ path: String, _ json: String, close: Bool = false) -> String {
        "POST \(path) HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(json.utf8.count)\r\n"
            + (close ? "connection: close\r\n" : "") + "\r\n" + json
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let text = try await Self.exchange(
            Self.post("/v1/completions", #"{"model":"bench","prompt":"x","stream":true}"#)
                + "GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
                + Self.post("/v1/completions", #"{"model":"nope","prompt":"x"}"#)
                + Self.post("/v1/completions", #"{"model":"bench","prompt":"x"}"#, close: true))
        let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        #expect(statuses == ["200", "200", "404", "200"], "\(text)")
        // The stream came whole and in its own framing before the next answer.
        let stream = text.components(separatedBy: "HTTP/1.1 ")[1]
        #expect(stream.contains("transfer-encoding: chunked") && stream.contains("data: [DONE]") && stream.hasSuffix("0\r\n\r\n"))
        #expect(text.contains("OK\n") && text.contains("model_not_found") && text.contains("connection: close"))
    }

    @Test func headRequestsGetNoBody() async throws {
        let text = try await Self.exchange("HEAD /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n") && text.contains("content-length: 3\r\n") && text.hasSuffix("\r\n\r\n"))
    }

    @Test func malformedRequestsGetA400AndTheClose() async throws {
        let text = try await Self.exchange("BROKEN\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\n") && text.contains("connection: close"))
    }
}
