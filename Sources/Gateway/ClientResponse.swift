import NIOCore
import NIOHTTP1

/// The bytes of the gateway's answers to its clients. The client pipeline has no response
/// encoder: every answer has one of a few fixed shapes, so its head is written here in one
/// buffer, and a streamed body is passed on in the upstream's own chunk framing where it can be.
enum ClientResponse {
    /// The end of a chunked body (the last chunk, no trailers).
    static let lastChunk = ByteBuffer(staticString: "0\r\n\r\n")

    /// A response head: status line, `content-type`, `cache-control` when given, then
    /// `content-length` when given, else `transfer-encoding: chunked`, and `connection: close`
    /// when the connection ends after it. `extra` is room reserved for a body written after it.
    static func head(status: HTTPResponseStatus, contentType: String, cacheControl: String? = nil, contentLength: Int?,
                     close: Bool, allocator: ByteBufferAllocator, extra: Int = 0) -> ByteBuffer {
        var out = allocator.buffer(capacity: 128 + contentType.utf8.count + (cacheControl?.utf8.count ?? 0) + extra)
        out.writeStaticString("HTTP/1.1 ")
        out.writeString(String(status.code))
        out.writeStaticString(" ")
        out.writeString(status.reasonPhrase)
        out.writeStaticString("\r\ncontent-type: ")
        out.writeString(contentType)
        if let cacheControl {
            out.writeStaticString("\r\ncache-control: ")
            out.writeString(cacheControl)
        }
        if let contentLength {
            out.writeStaticString("\r\ncontent-length: ")
            out.writeString(String(contentLength))
        } else {
            out.writeStaticString("\r\ntransfer-encoding: chunked")
        }
        if close { out.writeStaticString("\r\nconnection: close") }
        out.writeStaticString("\r\n\r\n")
        return out
    }

    /// A whole answer with a length: head and body in one buffer (no body for a HEAD request).
    static func whole(status: HTTPResponseStatus, contentType: String, body: ByteBuffer, close: Bool, headRequest: Bool,
                      allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = head(status: status, contentType: contentType, contentLength: body.readableBytes, close: close,
                       allocator: allocator, extra: headRequest ? 0 : body.readableBytes)
        if !headRequest { out.writeImmutableBuffer(body) }
        return out
    }

    /// `bytes` as one chunk of a chunked body (size line, data, CRLF), copied into one buffer:
    /// used only for bytes the upstream did not frame as whole chunks, which is rare.
    static func chunk(_ bytes: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: bytes.readableBytes + 20)
        out.writeString(String(bytes.readableBytes, radix: 16))
        out.writeStaticString("\r\n")
        out.writeImmutableBuffer(bytes)
        out.writeStaticString("\r\n")
        return out
    }
}
