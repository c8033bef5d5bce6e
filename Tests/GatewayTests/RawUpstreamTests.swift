import AsyncHTTPClient
import Foundation
@testable import Gateway
import NIOCore
import NIOPosix
import Testing

/// An upstream that answers every request with a script of raw byte pieces, written with pauses
/// between them so that each reaches the gateway in a read of its own: heads and chunks split at
/// awkward places, bodies that end at a close, upstreams that die mid-chunk.
final class ScriptedUpstream: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let pieces: [String]
    let closeAtEnd: Bool
    private var request = ""
    private var started = false

    init(pieces: [String], closeAtEnd: Bool) {
        self.pieces = pieces
        self.closeAtEnd = closeAtEnd
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        request += String(buffer: unwrapInboundIn(data))
        guard !started, request.contains("\r\n\r\n") else { return }
        started = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        for (i, piece) in pieces.enumerated() {
            context.eventLoop.scheduleTask(in: .milliseconds(Int64(15 * i))) {
                let (handler, context) = bound.value
                context.writeAndFlush(handler.wrapOutboundOut(ByteBuffer(string: piece)), promise: nil)
                if i == handler.pieces.count - 1 && handler.closeAtEnd { context.close(promise: nil) }
            }
        }
    }

    static func bind(pieces: [String], closeAtEnd: Bool) async throws -> any Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ScriptedUpstream(pieces: pieces, closeAtEnd: closeAtEnd))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }
}

@Suite(.serialized) struct RawUpstreamTests {
    static let sseHead = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"

    static func chunk(_ text: String, ext: String = "") -> String {
        String(text.utf8.count, radix: 16) + ext + "\r\n" + text + "\r\n"
    }

    /// Runs one request through a gateway in front of a scripted upstream; returns status and body.
    static func proxy(_ pieces: [String], closeAtEnd: Bool = false, stream: Bool = true,
                      configure: (inout GatewayConfiguration) -> Void = { _ in }) async throws -> (Int, String) {
        let upstream = try await ScriptedUpstream.bind(pieces: pieces, closeAtEnd: closeAtEnd)
        let (state, gateway) = try startTestGateway(upstream: "m=http://127.0.0.1:\(upstream.localAddress!.port!)") {
            $0.retries = 0
            configure(&$0)
        }
        let client = BenchLoad.makeClient(concurrency: 1)
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(gateway.port)/v1/completions")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: #"{"model":"m","prompt":"x","stream":\#(stream)}"#))
        let result: (Int, String)
        do {
            let response = try await client.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            result = (Int(response.status.code), String(buffer: body))
        } catch {
            result = (-1, "\(error)")
        }
        try? await client.shutdown()
        await gateway.shutdown()
        try? await upstream.close()
        await state.shutdown()
        return result
    }

    @Test func splitHeadsChunksExtensionsAndTrailersPassThrough() async throws {
        let events = (0..<3).map { "data: {\"text\":\" tok\($0)\"}\n\n" }
        let all = Self.sseHead + Self.chunk(events[0], ext: ";a=b") + Self.chunk(events[1]) + Self.chunk(events[2]) + "0\r\nx-t: 1\r\n\r\n"
        // Cut the answer at several awkward places: inside the head, a size line, chunk data, a CRLF, the trailers.
        let bytes = Array(all.utf8)
        let cuts = [20, Self.sseHead.utf8.count + 1, Self.sseHead.utf8.count + 12, Self.sseHead.utf8.count + 40, bytes.count - 30,
                    bytes.count - 9, bytes.count - 3]
        var pieces: [String] = []
        var start = 0
        for cut in cuts + [bytes.count] {
            pieces.append(String(decoding: bytes[start..<cut], as: UTF8.self))
            start = cut
        }
        let (status, text) = try await Self.proxy(pieces)
        #expect(status == 200)
        #expect(text == events.joined())
    }

    @Test func anUpstreamDyingMidChunkEndsTheStreamWithAWellFramedErrorEvent() async throws {
        let event = "data: {\"text\":\" tok0\"}\n\n"
        let half = Self.chunk(event).prefix(12)
        let (status, text) = try await Self.proxy([Self.sseHead + Self.chunk(event), String(half)], closeAtEnd: true)
        // The client parsed a valid chunked answer: the first event, the piece of the second, the error.
        #expect(status == 200)
        #expect(text.hasPrefix(event))
        #expect(text.contains("upstream_stream_failed"))
    }

    @Test func contentLengthAndCloseDelimitedBodies() async throws {
        let json = #"{"object":"text_completion","choices":[{"text":"abc"}]}"#
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(json.utf8.count)\r\n\r\n"
        let (status, text) = try await Self.proxy([head + json.prefix(10), String(json.dropFirst(10).prefix(20)), String(json.dropFirst(30))],
                                                  stream: false)
        #expect(status == 200 && text == json)

        let event = "data: {\"text\":\" tok0\"}\n\n"
        let closeHead = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        let (status2, text2) = try await Self.proxy([closeHead + event, event, "data: [DONE]\n\n"], closeAtEnd: true)
        #expect(status2 == 200 && text2 == event + event + "data: [DONE]\n\n")
    }

    @Test func anUpstreamFallingSilentMidStreamHitsTheReadTimeout() async throws {
        let event = "data: {\"text\":\" tok0\"}\n\n"
        let (status, text) = try await Self.proxy([Self.sseHead + Self.chunk(event)]) { $0.readTimeoutSeconds = 1 }
        #expect(status == 200 && text.hasPrefix(event))
        #expect(text.contains("upstream_stream_failed") && text.contains("read timeout"))
    }

    @Test func aMalformedUpstreamAnswerIsABadGateway() async throws {
        let (status, text) = try await Self.proxy(["HTTP/1.1 200 OK\r\nbroken header\r\n\r\n"], stream: false)
        #expect(status == 502 && text.contains("malformed upstream response"))
    }

    /// A 12 MiB answer to a client that reads slowly: the gateway stops reading the upstream
    /// while over 1 MiB waits for the client (counted in `/metrics`), and every byte arrives.
    @Test func aSlowClientPausesTheUpstreamAndGetsEveryByte() async throws {
        let body = String(repeating: "0123456789abcdef", count: 12 << 16)
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n\r\n"
        let upstream = try await ScriptedUpstream.bind(pieces: [head + body], closeAtEnd: false)
        let (state, gateway) = try startTestGateway(upstream: "m=http://127.0.0.1:\(upstream.localAddress!.port!)")
        let port = gateway.port
        let received = try await Task.detached { () throws -> [UInt8] in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var small: Int32 = 16 << 10
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else { throw IOError(errnoCode: errno, reason: "connect") }
            let json = #"{"model":"m","prompt":"x"}"#
            let request = "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: \(json.utf8.count)\r\nconnection: close\r\n\r\n" + json
            _ = request.withCString { send(fd, $0, strlen($0), 0) }
            var all: [UInt8] = []
            var piece = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                let count = piece.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard count > 0 else { break }
                all += piece[0..<count]
                usleep(500)
            }
            return all
        }.value
        let text = String(decoding: received, as: UTF8.self)
        let split = text.range(of: "\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 200"))
        #expect(split.map { String(text[$0.upperBound...]) } == body)
        let metrics = state.metrics.render(upstreams: state.upstreams)
        let pauses = metrics.split(separator: "\n").first { $0.hasPrefix("llmux_gateway_upstream_read_pauses_total ") }
        #expect(pauses.flatMap { Int($0.split(separator: " ").last!) }.map { $0 > 0 } == true)
        await gateway.shutdown()
        try? await upstream.close()
        await state.shutdown()
    }
}
