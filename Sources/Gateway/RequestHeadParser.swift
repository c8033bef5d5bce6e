import NIOCore
import NIOHTTP1

/// What the gateway keeps of a client request's head. Only the few headers it acts on are
/// turned into strings; the others are checked for well-formedness and skipped, so a request
/// costs no `HTTPHeaders` and no string per header.
struct ClientRequestHead: Equatable, Sendable {
    var method: HTTPMethod
    /// The request target as sent (path and query).
    var uri: String
    var version: HTTPVersion
    /// HTTP/1.1 without `connection: close`, or HTTP/1.0 with `connection: keep-alive`.
    var keepAlive: Bool
    var authorization: String?
    var accept: String?
    var body: RequestBodyLength
}

/// How a client request's body is delimited (RFC 9112 §6.3; a request without either header
/// has no body).
enum RequestBodyLength: Equatable, Sendable {
    case none
    case length(Int)
    case chunked
}

/// Why a client request was refused before it was handled: a 400 for malformed bytes, a 431 for
/// a head over the limit. Either way the connection closes after the answer.
struct ClientRequestError: Error, Equatable, CustomStringConvertible {
    var status: HTTPResponseStatus
    var reason: String
    var description: String { "\(status.code): \(reason)" }

    static func malformed(_ reason: String) -> ClientRequestError { ClientRequestError(status: .badRequest, reason: reason) }
}

/// Parses a client request head (request line and header fields, RFC 9112 §3 and §5) from raw
/// bytes, in place of NIO's llhttp-based decoder and its `ByteToMessageHandler`: the gateway's
/// client connections carry raw bytes, and a whole request usually arrives in one read, so one
/// pass over it here replaces three pipeline events and a header dictionary per request.
enum RequestHeadParser {
    /// A head larger than this gets a 431 (llhttp's default limit is 80 KiB; clients of an LLM
    /// gateway send a handful of short headers).
    static let maxHeadBytes = 64 * 1024

    /// Where the head at the start of `bytes` ends (the index just past its blank line), looking
    /// from `from` on (so that a head arriving in pieces is not scanned again from its start), or
    /// nil when the blank line has not arrived. Empty lines before the request line (RFC 9112
    /// §2.2) must have been skipped already.
    static func headEnd(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        var i = max(from, 1)
        while i < bytes.count {
            if bytes[i] == 0x0A {
                // LF LF, or LF CR LF: the blank line (a bare LF is accepted as a line ending).
                if bytes[i - 1] == 0x0A { return i + 1 }
                if bytes[i - 1] == 0x0D, i >= 2, bytes[i - 2] == 0x0A { return i + 1 }
            }
            i += 1
        }
        return nil
    }

    /// The number of CR and LF bytes at the start of `bytes`: empty lines a client may send
    /// between requests, which a server ignores.
    static func leadingLineBreaks(_ bytes: UnsafeRawBufferPointer) -> Int {
        var i = 0
        while i < bytes.count, bytes[i] == 0x0D || bytes[i] == 0x0A { i += 1 }
        return i
    }

    /// Parses a complete head (`bytes` ends just after its blank line, as found by `headEnd`).
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(ClientRequestError) -> ClientRequestHead {
        var lines = ResponseHeadParser.LineReader(bytes: bytes)
        guard let requestLine = lines.next() else { throw .malformed("no request line") }
        let (method, uri, version) = try parseRequestLine(bytes, requestLine)
        var head = ClientRequestHead(method: method, uri: uri, version: version, keepAlive: version.minor >= 1,
                                     authorization: nil, accept: nil, body: .none)
        var contentLength: Int?
        var transferCodings = 0
        var chunkedLast = false
        var sawClose = false
        while let line = lines.next(), !line.isEmpty {
            let (name, value) = try splitHeader(bytes, line)
            switch Field(bytes, name) {
            case .contentLength:
                guard let n = decimal(bytes, value), contentLength == nil || contentLength == n else {
                    throw .malformed("bad content-length")
                }
                contentLength = n
            case .transferEncoding:
                // A list of codings; only whether the last one is `chunked` matters.
                forEachElement(bytes, value) { coding in
                    transferCodings += 1
                    chunkedLast = equalsLowercased(bytes, coding, "chunked")
                }
            case .connection:
                // `close` wins over `keep-alive`, whichever comes first.
                forEachElement(bytes, value) { option in
                    if equalsLowercased(bytes, option, "close") {
                        head.keepAlive = false
                        sawClose = true
                    } else if equalsLowercased(bytes, option, "keep-alive"), !sawClose {
                        head.keepAlive = true
                    }
                }
            case .authorization:
                head.authorization = string(bytes, value)
            case .accept:
                head.accept = head.accept.map { $0 + ", " + string(bytes, value) } ?? string(bytes, value)
            case .other:
                break
            }
        }
        if transferCodings > 0 {
            // A request body must end by its framing, not by the close (RFC 9112 §6.3 item 4);
            // both headers at once is how requests are smuggled past a proxy.
            guard chunkedLast, contentLength == nil else { throw .malformed("bad transfer-encoding") }
            head.body = .chunked
        } else if let contentLength, contentLength > 0 {
            head.body = .length(contentLength)
        }
        return head
    }

    /// `METHOD SP request-target SP HTTP/1.x`.
    private static func parseRequestLine(_ b: UnsafeRawBufferPointer, _ line: Range<Int>) throws(ClientRequestError) -> (HTTPMethod, String, HTTPVersion) {
        var i = line.lowerBound
        while i < line.upperBound, isTokenByte(b[i]) { i += 1 }
        guard i > line.lowerBound, i < line.upperBound, b[i] == 0x20 else { throw .malformed("bad request line") }
        let methodEnd = i
        i += 1
        let uriStart = i
        while i < line.upperBound, b[i] > 0x20, b[i] != 0x7F { i += 1 }
        guard i > uriStart, line.upperBound - i == 9, b[i] == 0x20 else { throw .malformed("bad request line") }
        let v = i + 1
        guard b[v] == UInt8(ascii: "H"), b[v + 1] == UInt8(ascii: "T"), b[v + 2] == UInt8(ascii: "T"), b[v + 3] == UInt8(ascii: "P"),
              b[v + 4] == UInt8(ascii: "/"), b[v + 5] == UInt8(ascii: "1"), b[v + 6] == UInt8(ascii: "."),
              b[v + 7] >= UInt8(ascii: "0"), b[v + 7] <= UInt8(ascii: "9") else {
            throw .malformed("bad HTTP version (HTTP/1.0 and HTTP/1.1 are served)")
        }
        let version = HTTPVersion(major: 1, minor: Int(b[v + 7] - UInt8(ascii: "0")))
        return (method(b, line.lowerBound..<methodEnd), string(b, uriStart..<i), version)
    }

    /// The methods the gateway serves without a string; any other keeps its name (for the 405).
    private static func method(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> HTTPMethod {
        if equals(b, r, "POST") { return .POST }
        if equals(b, r, "GET") { return .GET }
        if equals(b, r, "HEAD") { return .HEAD }
        return HTTPMethod(rawValue: string(b, r))
    }

    /// `name: value` → the name's range and the value's, without surrounding spaces and tabs.
    private static func splitHeader(_ b: UnsafeRawBufferPointer, _ line: Range<Int>) throws(ClientRequestError) -> (Range<Int>, Range<Int>) {
        var i = line.lowerBound
        // A line starting with a space (obsolete folding) or a space before the colon is refused.
        while i < line.upperBound, isTokenByte(b[i]) { i += 1 }
        guard i > line.lowerBound, i < line.upperBound, b[i] == UInt8(ascii: ":") else { throw .malformed("bad header line") }
        let name = line.lowerBound..<i
        var start = i + 1
        var end = line.upperBound
        while start < end, b[start] == 0x20 || b[start] == 0x09 { start += 1 }
        while end > start, b[end - 1] == 0x20 || b[end - 1] == 0x09 { end -= 1 }
        for j in start..<end where (b[j] < 0x20 && b[j] != 0x09) || b[j] == 0x7F {
            throw .malformed("control character in a header value")
        }
        return (name, start..<end)
    }

    /// The header fields the gateway acts on, told apart by length first.
    private enum Field {
        case contentLength, transferEncoding, connection, authorization, accept, other

        init(_ b: UnsafeRawBufferPointer, _ name: Range<Int>) {
            switch name.count {
            case 14 where equalsLowercased(b, name, "content-length"): self = .contentLength
            case 17 where equalsLowercased(b, name, "transfer-encoding"): self = .transferEncoding
            case 10 where equalsLowercased(b, name, "connection"): self = .connection
            case 13 where equalsLowercased(b, name, "authorization"): self = .authorization
            case 6 where equalsLowercased(b, name, "accept"): self = .accept
            default: self = .other
            }
        }
    }

    /// A content-length value: digits only, at most 18 of them (so it cannot overflow).
    private static func decimal(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Int? {
        guard !r.isEmpty, r.count <= 18 else { return nil }
        var n = 0
        for i in r {
            guard b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") else { return nil }
            n = n * 10 + Int(b[i] - UInt8(ascii: "0"))
        }
        return n
    }

    /// Calls `body` with each comma-separated element of a list value, trimmed, empty ones
    /// skipped (a closure rather than an array: no allocation per header).
    private static func forEachElement(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ body: (Range<Int>) -> Void) {
        var start = r.lowerBound
        for i in r.lowerBound...r.upperBound where i == r.upperBound || b[i] == UInt8(ascii: ",") {
            var s = start
            var e = i
            while s < e, b[s] == 0x20 || b[s] == 0x09 { s += 1 }
            while e > s, b[e - 1] == 0x20 || b[e - 1] == 0x09 { e -= 1 }
            if s < e { body(s..<e) }
            start = i + 1
        }
    }

    private static func string(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self)
    }

    private static func equals(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ text: StaticString) -> Bool {
        guard r.count == text.utf8CodeUnitCount else { return false }
        let t = text.utf8Start
        for k in 0..<r.count where b[r.lowerBound + k] != t[k] { return false }
        return true
    }

    /// Compares case-insensitively with a lowercase ASCII `text`.
    private static func equalsLowercased(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ text: StaticString) -> Bool {
        guard r.count == text.utf8CodeUnitCount else { return false }
        let t = text.utf8Start
        for k in 0..<r.count {
            let c = b[r.lowerBound + k]
            let lower = c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c | 0x20 : c
            if lower != t[k] { return false }
        }
        return true
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool { ResponseHeadParser.isTokenByte(byte) }
}
