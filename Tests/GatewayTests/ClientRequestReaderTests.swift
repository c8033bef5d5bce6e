@testable import Gateway
import NIOCore
import NIOHTTP1
import Testing

/// The client request parser, fed the same bytes cut in every possible way.
struct ClientRequestReaderTests {
    /// What a test compares of a parsed request.
    struct Seen: Equatable {
        var method: HTTPMethod
        var uri: String
        var keepAlive: Bool
        var authorization: String?
        var accept: String?
        var body: String
        var tooLarge = false
    }

    /// Feeds `pieces` one read each; returns the requests in order, and the error if one came.
    static func read(_ pieces: [[UInt8]], maxBody: Int = 1 << 20) -> ([Seen], ClientRequestError?) {
        var reader = ClientRequestReader(maxBodyBytes: maxBody)
        var seen: [Seen] = []
        for piece in pieces {
            reader.append(ByteBuffer(bytes: piece))
            do {
                while let r = try reader.next() {
                    seen.append(Seen(method: r.head.method, uri: r.head.uri, keepAlive: r.head.keepAlive, authorization: r.head.authorization,
                                     accept: r.head.accept, body: String(buffer: r.body), tooLarge: r.tooLarge))
                }
            } catch {
                return (seen, error)
            }
        }
        return (seen, nil)
    }

    static func read(_ text: String, maxBody: Int = 1 << 20) -> ([Seen], ClientRequestError?) {
        read([Array(text.utf8)], maxBody: maxBody)
    }

    /// Five pipelined requests: a GET, a POST with a length, a chunked POST with an extension
    /// and a trailer (after an empty line, which is ignored), an HTTP/1.0 one, and a HEAD that
    /// closes. Bare LFs end the lines of one of them.
    static let pipelined = "GET /health?x=1 HTTP/1.1\r\nHost: a\r\nAccept: text/plain\r\n\r\n"
        + "POST /v1/completions HTTP/1.1\r\nhost: a\r\nAuthorization: Bearer k\r\nContent-Length: 13\r\n\r\n{\"model\":\"m\"}"
        + "\r\nPOST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\naccept: a\r\nACCEPT: b\r\n\r\n"
        + "4;ext=1\r\n{\"mo\r\n9\r\ndel\":\"m\"}\r\n0\r\nx-trailer: y\r\n\r\n"
        + "POST /v1/completions HTTP/1.0\ncontent-length: 2\n\n{}"
        + "HEAD /health HTTP/1.1\r\nconnection: keep-alive, Close\r\n\r\n"

    static let expected = [
        Seen(method: .GET, uri: "/health?x=1", keepAlive: true, authorization: nil, accept: "text/plain", body: ""),
        Seen(method: .POST, uri: "/v1/completions", keepAlive: true, authorization: "Bearer k", accept: nil, body: #"{"model":"m"}"#),
        Seen(method: .POST, uri: "/v1/chat/completions", keepAlive: true, authorization: nil, accept: "a, b", body: #"{"model":"m"}"#),
        Seen(method: .POST, uri: "/v1/completions", keepAlive: false, authorization: nil, accept: nil, body: "{}"),
        Seen(method: .HEAD, uri: "/health", keepAlive: false, authorization: nil, accept: nil, body: ""),
    ]

    @Test func pipelinedRequestsInOneRead() {
        let (seen, error) = Self.read(Self.pipelined)
        #expect(error == nil)
        #expect(seen == Self.expected)
    }

    @Test func everySingleCutGivesTheSameRequests() {
        let bytes = Array(Self.pipelined.utf8)
        for cut in 1..<bytes.count {
            let (seen, error) = Self.read([Array(bytes[..<cut]), Array(bytes[cut...])])
            #expect(error == nil && seen == Self.expected, "cut at \(cut)")
        }
    }

    @Test func everyPairOfCutsGivesTheSameRequests() {
        // The first two requests (every pair over the whole text would be slow to run).
        let text = "GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc"
        let bytes = Array(text.utf8)
        for i in 1..<bytes.count {
            for j in (i + 1)..<bytes.count {
                let (seen, error) = Self.read([Array(bytes[..<i]), Array(bytes[i..<j]), Array(bytes[j...])])
                #expect(error == nil && seen.map(\.uri) == ["/a", "/b"] && seen.last?.body == "abc", "cuts at \(i), \(j)")
            }
        }
    }

    @Test func byteByByteReads() {
        let (seen, error) = Self.read(Self.pipelined.utf8.map { [$0] })
        #expect(error == nil && seen == Self.expected)
    }

    @Test func nothingIsReturnedBeforeTheBodyIsComplete() throws {
        var reader = ClientRequestReader(maxBodyBytes: 100)
        reader.append(ByteBuffer(string: "POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nab"))
        #expect(try reader.next() == nil)
        reader.append(ByteBuffer(string: "cde"))
        let request = try #require(try reader.next())
        #expect(String(buffer: request.body) == "abcde")
        #expect(try reader.next() == nil)
    }

    @Test func keepAliveFollowsVersionAndConnectionHeader() {
        func keepAlive(_ version: String, _ connection: String?) -> Bool? {
            let text = "GET / HTTP/\(version)\r\n" + (connection.map { "Connection: \($0)\r\n" } ?? "") + "\r\n"
            return Self.read(text).0.first?.keepAlive
        }
        #expect(keepAlive("1.1", nil) == true)
        #expect(keepAlive("1.1", "close") == false)
        #expect(keepAlive("1.1", "Upgrade, CLOSE") == false)
        #expect(keepAlive("1.0", nil) == false)
        #expect(keepAlive("1.0", "Keep-Alive") == true)
        #expect(keepAlive("1.0", "close, keep-alive") == false)
    }

    @Test func malformedRequestsAreRefusedWithA400() {
        let malformed = [
            "BROKEN\r\n\r\n",
            "GET /\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/1.1 x\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "GET / HTTP/1.1\r\nname : value\r\n\r\n",
            "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
            "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
            "GET / HTTP/1.1\r\nx: a\u{1}b\r\n\r\n",
            "GET / HTTP/1.1\r\nx: a\rb\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: x\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabX\r\n",
        ]
        for text in malformed {
            let (seen, error) = Self.read(text)
            #expect(seen.isEmpty && error?.status == .badRequest, "\(text.debugDescription)")
        }
        // A repeated, equal content-length is fine.
        #expect(Self.read("POST / HTTP/1.1\r\ncontent-length: 2\r\nContent-Length: 2\r\n\r\nab").0.first?.body == "ab")
    }

    @Test func afterARefusalLaterBytesAreDropped() throws {
        var reader = ClientRequestReader(maxBodyBytes: 100)
        reader.append(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\nBAD\r\n\r\nGET / HTTP/1.1\r\n\r\n"))
        #expect(try reader.next()?.head.uri == "/")
        #expect(throws: ClientRequestError.self) { try reader.next() }
        #expect(reader.failed)
        reader.append(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
        #expect(try reader.next() == nil)
    }

    @Test func oversizedHeadsGetA431() {
        let big = String(repeating: "a", count: RequestHeadParser.maxHeadBytes)
        // Complete but too long.
        let (_, complete) = Self.read("GET / HTTP/1.1\r\nx: \(big)\r\n\r\n")
        #expect(complete?.status == .requestHeaderFieldsTooLarge)
        // Never ending, in small reads: refused once past the limit, not buffered on.
        let pieces = [Array("GET / HTTP/1.1\r\n".utf8)] + Array(repeating: Array("x: \(String(repeating: "b", count: 1000))\r\n".utf8), count: 80)
        let (_, endless) = Self.read(pieces)
        #expect(endless?.status == .requestHeaderFieldsTooLarge)
        // Just under the limit is served.
        let fits = "GET / HTTP/1.1\r\nx: " + String(repeating: "c", count: RequestHeadParser.maxHeadBytes - 40) + "\r\n\r\n"
        #expect(Self.read(fits).0.count == 1)
    }

    @Test func bodiesOverTheLimitAreReadAndDropped() {
        let text = "POST /a HTTP/1.1\r\ncontent-length: 11\r\n\r\nhello world"
            + "POST /b HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
            + "POST /c HTTP/1.1\r\ncontent-length: 5\r\n\r\nshort"
        for pieces in [[Array(text.utf8)], text.utf8.map { [$0] }] {
            let (seen, error) = Self.read(pieces, maxBody: 8)
            #expect(error == nil)
            #expect(seen.map(\.uri) == ["/a", "/b", "/c"])
            #expect(seen.map(\.tooLarge) == [true, true, false])
            #expect(seen.map(\.body) == ["", "", "short"])
        }
    }

    @Test func otherMethodsKeepTheirNames() {
        let (seen, _) = Self.read("DELETE /v1/models HTTP/1.1\r\n\r\nBREW /pot HTTP/1.1\r\n\r\n")
        #expect(seen.map(\.method) == [.DELETE, .RAW(value: "BREW")])
    }
}
