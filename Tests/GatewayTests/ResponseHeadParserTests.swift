@testable import Gateway
import NIOHTTP1
import Testing

@Suite struct ResponseHeadParserTests {
    static func parse(_ text: String) throws -> (head: HTTPResponseHead, body: BodyLength, consumed: Int)? {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { try ResponseHeadParser.parse($0) }
    }

    @Test func headsAndTheirBodyLengths() throws {
        let sse = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding:  chunked \r\n\r\n"
        let parsed = try #require(try Self.parse(sse + "1a\r\n"))
        #expect(parsed.head.status == .ok && parsed.head.version == .http1_1 && parsed.body == .chunked)
        #expect(parsed.consumed == sse.utf8.count)
        #expect(parsed.head.headers.first(name: "content-type") == "text/event-stream")
        #expect(parsed.head.headers.first(name: "transfer-encoding") == "chunked")
        #expect(parsed.head.isKeepAlive)

        #expect(try Self.parse("HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n")?.body == .length(12))
        #expect(try Self.parse("HTTP/1.1 204 No Content\r\ncontent-length: 12\r\n\r\n")?.body == BodyLength.none)
        #expect(try Self.parse("HTTP/1.1 200\nx: y\n\n")?.body == .untilClose)
        #expect(try Self.parse("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n")?.body == .untilClose)
        let old = try #require(try Self.parse("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"))
        #expect(!old.head.isKeepAlive && old.body == .length(0))
        #expect(try Self.parse("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")?.head.isKeepAlive == false)
    }

    @Test func incompleteHeadsWaitForMore() throws {
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
        for end in 0..<head.utf8.count {
            let prefix = String(decoding: Array(head.utf8)[0..<end], as: UTF8.self)
            #expect(try Self.parse(prefix) == nil, "\(end)")
        }
    }

    @Test func malformedHeadsAreRejected() {
        for bad in ["HTTP/1.1 2x0 OK\r\n\r\n", "HTTX/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                    "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                    "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n"] {
            #expect(throws: UpstreamProtocolError.self, "\(bad)") { _ = try Self.parse(bad) }
        }
        #expect(throws: UpstreamProtocolError.self) {
            _ = try Self.parse("HTTP/1.1 200 OK\r\nx: " + String(repeating: "a", count: ResponseHeadParser.maxHeadBytes))
        }
    }
}
