import Foundation
@testable import Gateway
import NIOConcurrencyHelpers
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
        try await exchange([(.zero, bytes)])
    }

    /// Sends each piece after its delay (counted from the previous one) on one connection, to
    /// a gateway in front of a stub that answers `tokens` tokens `interval` apart; returns all
    /// the gateway sent back before closing the connection.
    static func exchange(_ pieces: [(delay: Duration, bytes: String)], tokens: Int = 3, interval: Duration = .milliseconds(5),
                         configure: (inout GatewayConfiguration) -> Void = { _ in }) async throws -> String {
        var stubSettings = BenchStub.Settings()
        stubSettings.tokens = tokens
        stubSettings.interval = interval
        let stub = try await BenchStub.bind(stubSettings)
        let (state, gateway) = try startTestGateway(upstream: "bench=http://127.0.0.1:\(stub.localAddress!.port!)", configure: configure)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let done = loop.makePromise(of: String.self)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(done: done)) }
            }
            .connect(host: "127.0.0.1", port: gateway.port).get()
        // A gateway that never closes the connection fails the test instead of hanging it.
        let giveUp = loop.scheduleTask(in: .seconds(15)) { channel.close(promise: nil) }
        defer { giveUp.cancel() }
        for (delay, bytes) in pieces {
            if delay > .zero { try await Task.sleep(for: delay) }
            try await channel.writeAndFlush(ByteBuffer(string: bytes))
        }
        let text = try await done.futureResult.get()
        await gateway.shutdown()
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

    @Test func aMalformedRequestIsRefusedAfterTheAnswersBeforeIt() async throws {
        let text = try await Self.exchange(Self.post("/v1/completions", #"{"model":"bench","prompt":"x","stream":true}"#)
            + "GET /health HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nbad header\r\n\r\nGET /health HTTP/1.1\r\n\r\n")
        let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        #expect(statuses == ["200", "200", "400"], "\(text)")
        #expect(text.contains("data: [DONE]") && text.hasSuffix("bad header line\n"))
    }

    @Test func requestsAreReadAcrossSplitsAndPauses() async throws {
        let request = Self.post("/v1/completions", #"{"model":"bench","prompt":"x","stream":true}"#, close: true)
        let bytes = Array(request.utf8)
        // Cuts in the request line, in a header, in the body and before its last byte.
        let cuts = [0, 3, 20, bytes.count - 12, bytes.count - 1, bytes.count]
        let pieces = zip(cuts, cuts.dropFirst()).map {
            (delay: Duration.milliseconds(20), bytes: String(decoding: bytes[$0..<$1], as: UTF8.self))
        }
        let text = try await Self.exchange(pieces)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n") && text.contains("data: [DONE]") && text.hasSuffix("0\r\n\r\n"), "\(text)")
    }

    @Test func anOversizedHeadGetsA431() async throws {
        let text = try await Self.exchange("GET /health HTTP/1.1\r\nx: \(String(repeating: "a", count: 70_000))\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n") && text.contains("connection: close"))
    }

    @Test func anOversizedBodyGetsA413AndTheClose() async throws {
        let text = try await Self.exchange([(.zero, Self.post("/v1/completions", #"{"model":"bench","prompt":"xxxxxxxxxxxxxxxxxxxxxxxx"}"#))]) {
            $0.maxBodyBytes = 16
        }
        #expect(text.hasPrefix("HTTP/1.1 413 ") && text.contains("connection: close"), "\(text)")
    }

    @Test func aChunkedRequestBodyIsDecoded() async throws {
        let json = #"{"model":"bench","prompt":"x"}"#
        let chunked = "POST /v1/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            + "5\r\n" + json.prefix(5) + "\r\n" + String(json.utf8.count - 5, radix: 16) + "\r\n" + json.dropFirst(5) + "\r\n0\r\n\r\n"
        let text = try await Self.exchange(chunked)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n") && text.contains("text_completion"), "\(text)")
    }

    /// The connection's one deadline timer, armed for the first request, must still time out the
    /// second at the second's own deadline: streams of 11 tokens 80 ms apart (0.8 s) and a 1 s
    /// limit; the second is pipelined 0.3 s after the first (deadline 1.3 s), starts when the
    /// first ends (0.8 s) and would run to 1.6 s.
    @Test func eachRequestTimesOutAtItsOwnDeadline() async throws {
        let stream = Self.post("/v1/completions", #"{"model":"bench","prompt":"x","stream":true}"#)
        let last = Self.post("/v1/completions", #"{"model":"bench","prompt":"x","stream":true}"#, close: true)
        let text = try await Self.exchange([(.zero, stream), (.milliseconds(300), last)], tokens: 11, interval: .milliseconds(80)) {
            $0.requestTimeoutSeconds = 1
        }
        let answers = text.components(separatedBy: "HTTP/1.1 ").dropFirst()
        #expect(answers.count == 2, "\(text)")
        guard answers.count == 2 else { return }
        let (first, second) = (answers[answers.startIndex], answers[answers.startIndex + 1])
        #expect(first.contains("data: [DONE]") && !first.contains("upstream_stream_failed"), "\(first)")
        #expect(second.contains("upstream_stream_failed") && !second.contains("data: [DONE]"), "\(second)")
        // Cut at 1.3 s, 0.5 s into its stream: about 7 tokens, where a cut at the first
        // request's deadline (1.0 s) would have left about 3.
        let tokens = second.components(separatedBy: "\"text_completion\"").count - 1
        #expect(tokens >= 5, "\(second)")
    }

    @Test func aWholeAnswerPastTheDeadlineIsA504() async throws {
        let text = try await Self.exchange([(.zero, Self.post("/v1/completions", #"{"model":"bench","prompt":"x"}"#, close: true))],
                                           tokens: 8, interval: .milliseconds(200)) { $0.requestTimeoutSeconds = 1 }
        #expect(text.hasPrefix("HTTP/1.1 504 ") && text.contains("upstream_timeout"), "\(text)")
    }

    /// Draining (what SIGTERM starts): an idle keep-alive connection closes at once, a stream in
    /// progress ends whole and then its connection closes, and new connections are refused.
    @Test func drainingClosesIdleConnectionsAndFinishesStreams() async throws {
        var stubSettings = BenchStub.Settings()
        stubSettings.tokens = 20
        stubSettings.interval = .milliseconds(20)
        let stub = try await BenchStub.bind(stubSettings)
        let (state, gateway) = try startTestGateway(upstream: "bench=http://127.0.0.1:\(stub.localAddress!.port!)")
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        // Connections this test closed itself after waiting 15 s, rather than the gateway.
        let gaveUp = NIOLockedValueBox(0)
        func connect() async throws -> (any Channel, EventLoopFuture<String>) {
            let done = loop.makePromise(of: String.self)
            let channel: any Channel
            do {
                channel = try await ClientBootstrap(group: loop)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(done: done)) }
                    }
                    .connect(host: "127.0.0.1", port: gateway.port).get()
            } catch {
                done.fail(error)
                throw error
            }
            // A connection the gateway never closes fails the test instead of hanging it.
            loop.scheduleTask(in: .seconds(15)) {
                if channel.isActive { gaveUp.withLockedValue { $0 += 1 } }
                channel.close(promise: nil)
            }
            return (channel, done.futureResult)
        }
        let (idle, idleText) = try await connect()
        try await idle.writeAndFlush(ByteBuffer(string: "GET /health HTTP/1.1\r\nhost: x\r\n\r\n"))
        let (busy, busyText) = try await connect()
        try await busy.writeAndFlush(ByteBuffer(string: Self.post("/v1/completions", #"{"model":"bench","prompt":"x","stream":true}"#)))
        // The stream takes about 400 ms: drain while it is under way.
        try await Task.sleep(for: .milliseconds(150))
        await gateway.stopAccepting()
        let idleAnswer = try await idleText.get()
        #expect(idleAnswer.hasPrefix("HTTP/1.1 200 OK\r\n") && idleAnswer.hasSuffix("OK\n"))
        let busyAnswer = try await busyText.get()
        #expect(busyAnswer.hasPrefix("HTTP/1.1 200 OK\r\n") && busyAnswer.contains("data: [DONE]") && busyAnswer.hasSuffix("0\r\n\r\n"))
        // Both were closed by the gateway, not by this test's 15 s limit.
        #expect(gaveUp.withLockedValue { $0 } == 0)
        await #expect(throws: (any Error).self) { _ = try await connect() }
        await gateway.shutdown()
        try? await stub.close()
        await state.shutdown()
    }
}
