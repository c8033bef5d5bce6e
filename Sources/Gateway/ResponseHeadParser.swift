import NIOCore
import NIOHTTP1

/// How an upstream response's body is delimited (RFC 9112 §6.3), as its head says.
enum BodyLength: Equatable, Sendable {
    /// No body: 1xx, 204 and 304 answers.
    case none
    /// `transfer-encoding: chunked`.
    case chunked
    /// `content-length: n`.
    case length(Int)
    /// Neither: the body runs until the upstream closes the connection.
    case untilClose
}

/// An upstream answer that is not well-formed HTTP/1.x.
struct UpstreamProtocolError: Error, Equatable, CustomStringConvertible {
    var reason: String
    var description: String { "malformed upstream response: \(reason)" }
}

/// Parses an upstream response head from raw bytes. The gateway reads upstream connections as
/// plain bytes (no HTTP decoder in their pipeline) so that the body can be forwarded as it came;
/// only the head is taken apart, here, once per answer.
enum ResponseHeadParser {
    /// A head larger than this is refused (the upstream is `llmux serve`; its heads are small).
    static let maxHeadBytes = 64 * 1024

    /// The head at the start of `bytes` and how many bytes it took (through the blank line), or
    /// nil when the blank line has not arrived yet.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(UpstreamProtocolError) -> (head: HTTPResponseHead, body: BodyLength, consumed: Int)? {
        var lines = LineReader(bytes: bytes)
        guard let statusLine = lines.next() else { return try incomplete(bytes) }
        let (version, status) = try parseStatusLine(bytes, statusLine)
        var headers = HTTPHeaders()
        while true {
            guard let line = lines.next() else { return try incomplete(bytes) }
            if line.isEmpty { break }
            let (name, value) = try parseHeader(bytes, line)
            headers.add(name: name, value: value)
        }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status), headers: headers)
        return (head, try bodyLength(status: status, headers: headers), lines.position)
    }

    private static func incomplete(_ bytes: UnsafeRawBufferPointer) throws(UpstreamProtocolError) -> (head: HTTPResponseHead, body: BodyLength, consumed: Int)? {
        if bytes.count > maxHeadBytes { throw UpstreamProtocolError(reason: "head longer than \(maxHeadBytes) bytes") }
        return nil
    }

    /// `HTTP/1.1 200 OK` → version and status code (the reason phrase is not kept).
    private static func parseStatusLine(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) throws(UpstreamProtocolError) -> (HTTPVersion, Int) {
        let b = bytes
        let s = line.lowerBound
        guard line.count >= 12, b[s] == UInt8(ascii: "H"), b[s + 1] == UInt8(ascii: "T"), b[s + 2] == UInt8(ascii: "T"),
              b[s + 3] == UInt8(ascii: "P"), b[s + 4] == UInt8(ascii: "/"), b[s + 6] == UInt8(ascii: "."), b[s + 8] == UInt8(ascii: " "),
              let major = digit(b[s + 5]), let minor = digit(b[s + 7]),
              let d0 = digit(b[s + 9]), let d1 = digit(b[s + 10]), let d2 = digit(b[s + 11]),
              line.count == 12 || b[s + 12] == UInt8(ascii: " ") else {
            throw UpstreamProtocolError(reason: "bad status line")
        }
        return (HTTPVersion(major: major, minor: minor), d0 * 100 + d1 * 10 + d2)
    }

    /// `name: value` with the value's surrounding spaces trimmed.
    private static func parseHeader(_ bytes: UnsafeRawBufferPointer, _ line: Range<Int>) throws(UpstreamProtocolError) -> (String, String) {
        guard let colon = line.first(where: { bytes[$0] == UInt8(ascii: ":") }), colon > line.lowerBound else {
            throw UpstreamProtocolError(reason: "bad header line")
        }
        for i in line.lowerBound..<colon where !isTokenByte(bytes[i]) {
            // Also catches obsolete line folding (a line starting with a space).
            throw UpstreamProtocolError(reason: "bad header name")
        }
        var start = colon + 1
        var end = line.upperBound
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[line.lowerBound..<colon]), as: UTF8.self)
        let value = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        return (name, value)
    }

    /// RFC 9112 §6.3: no body for 1xx/204/304; chunked when it is the last transfer coding (any
    /// other coding runs to the close); else content-length; else until the close.
    static func bodyLength(status: Int, headers: HTTPHeaders) throws(UpstreamProtocolError) -> BodyLength {
        if (100..<200).contains(status) || status == 204 || status == 304 { return .none }
        let codings = headers[canonicalForm: "transfer-encoding"]
        if let last = codings.last {
            return last.lowercased() == "chunked" ? .chunked : .untilClose
        }
        var length: Int?
        for value in headers[canonicalForm: "content-length"] {
            guard let n = Int(value), n >= 0, length == nil || length == n else {
                throw UpstreamProtocolError(reason: "bad content-length")
            }
            length = n
        }
        return length.map(BodyLength.length) ?? .untilClose
    }

    private static func digit(_ byte: UInt8) -> Int? {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") ? Int(byte - UInt8(ascii: "0")) : nil
    }

    /// RFC 9110 token characters (also used for client requests' methods and field names).
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Lines ending in LF (a CR before it is dropped), as byte ranges without the line ending.
    struct LineReader {
        let bytes: UnsafeRawBufferPointer
        /// Where the next line starts.
        var position = 0

        mutating func next() -> Range<Int>? {
            var i = position
            while i < bytes.count, bytes[i] != 0x0A { i += 1 }
            guard i < bytes.count else { return nil }
            let end = i > position && bytes[i - 1] == 0x0D ? i - 1 : i
            defer { position = i + 1 }
            return position..<end
        }
    }
}
