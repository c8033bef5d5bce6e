import NIOCore

/// The bytes of one proxied request to an upstream, head and body in one buffer, written with
/// one write and one flush. Encoded here rather than by an HTTP encoder in the upstream pipeline
/// because the request is always the same shape: a POST with a known length.
enum UpstreamRequest {
    /// `POST path` with the upstream's Host, a JSON content type, the caller's (or configured)
    /// authorization and accept headers, and the body's length. Header values come from the
    /// client's request head, which the HTTP decoder has already checked for CR and LF.
    static func encode(path: String, host: String, authorization: String?, accept: String?, body: ByteBuffer,
                       allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: 160 + path.utf8.count + host.utf8.count + (authorization?.utf8.count ?? 0)
            + (accept?.utf8.count ?? 0) + body.readableBytes)
        out.writeStaticString("POST ")
        out.writeString(path)
        out.writeStaticString(" HTTP/1.1\r\nhost: ")
        out.writeString(host)
        out.writeStaticString("\r\ncontent-type: application/json\r\n")
        if let authorization {
            out.writeStaticString("authorization: ")
            out.writeString(authorization)
            out.writeStaticString("\r\n")
        }
        if let accept {
            out.writeStaticString("accept: ")
            out.writeString(accept)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("content-length: ")
        out.writeString(String(body.readableBytes))
        out.writeStaticString("\r\n\r\n")
        out.writeImmutableBuffer(body)
        return out
    }
}
