import NIOCore

/// A client request read in full, or the refusal of one that could not be read.
struct ClientRequest {
    var head: ClientRequestHead
    var body: ByteBuffer
    /// The body was over `max_body_bytes`: it was read and dropped, and the answer is a 413.
    var tooLarge: Bool
    /// When its head was complete: the start of the gateway's added latency.
    var arrival: NIODeadline
}

/// Cuts a client connection's bytes into requests: heads (`RequestHeadParser`), then bodies by
/// content-length or chunked framing (`BodyFramer`, decoding), then the next pipelined request.
///
/// Nothing is copied in the common case, a whole request in one read: the head is parsed in
/// place and the body is a slice of the read's buffer. Bytes are gathered only when a request
/// is split across reads, and a head arriving in pieces is searched for its end only once.
struct ClientRequestReader {
    let maxBodyBytes: Int
    /// Bytes read and not yet consumed.
    private var pending: ByteBuffer?
    /// How far `pending` has been searched for the blank line that ends a head.
    private var scanned = 0
    /// The request whose body is being read.
    private var head: ClientRequestHead?
    private var framer = BodyFramer(.none)
    private var body: ByteBuffer?
    private var tooLarge = false
    private var arrival = NIODeadline.uptimeNanoseconds(0)
    /// A request could not be read: every later byte is dropped (the connection closes after
    /// the refusal, since where the next request would start is unknown).
    private(set) var failed = false

    init(maxBodyBytes: Int) { self.maxBodyBytes = maxBodyBytes }

    /// Adds bytes read from the connection.
    mutating func append(_ incoming: ByteBuffer) {
        guard !failed else { return }
        if pending == nil {
            pending = incoming
        } else {
            var incoming = incoming
            pending!.writeBuffer(&incoming)
        }
    }

    /// The next complete request in the bytes appended so far, or nil when it has not all
    /// arrived. Call again after each request: pipelined requests can share a read.
    mutating func next() throws(ClientRequestError) -> ClientRequest? {
        guard !failed, var bytes = pending else { return nil }
        pending = nil
        do {
            let request = try head == nil ? readHead(&bytes) : readBody(&bytes)
            if bytes.readableBytes > 0 { pending = bytes }
            return request
        } catch {
            failed = true
            head = nil
            body = nil
            throw error
        }
    }

    private mutating func readHead(_ bytes: inout ByteBuffer) throws(ClientRequestError) -> ClientRequest? {
        if scanned == 0 {
            bytes.moveReaderIndex(forwardBy: bytes.withUnsafeReadableBytes { RequestHeadParser.leadingLineBreaks($0) })
        }
        guard let end = bytes.withUnsafeReadableBytes({ RequestHeadParser.headEnd($0, from: scanned) }) else {
            if bytes.readableBytes > RequestHeadParser.maxHeadBytes { throw Self.headTooLarge }
            // The blank line may straddle this read and the next: search again from 3 bytes back.
            scanned = max(0, bytes.readableBytes - 3)
            return nil
        }
        scanned = 0
        guard end <= RequestHeadParser.maxHeadBytes else { throw Self.headTooLarge }
        let head = try bytes.withUnsafeReadableBytes { raw in
            Result { () throws(ClientRequestError) in try RequestHeadParser.parse(UnsafeRawBufferPointer(rebasing: raw[0..<end])) }
        }.get()
        bytes.moveReaderIndex(forwardBy: end)
        arrival = .now()
        switch head.body {
        case .none:
            return ClientRequest(head: head, body: ByteBuffer(), tooLarge: false, arrival: arrival)
        case .length(let n) where n <= maxBodyBytes && bytes.readableBytes >= n:
            // The whole body came with its head: a slice of the read, no copy.
            let body = bytes.readSlice(length: n)!
            return ClientRequest(head: head, body: body, tooLarge: false, arrival: arrival)
        case .length(let n):
            framer = BodyFramer(.length(n))
            tooLarge = n > maxBodyBytes
            body = tooLarge ? nil : ByteBufferAllocator().buffer(capacity: n)
        case .chunked:
            framer = BodyFramer(.chunked, decodes: true)
            tooLarge = false
            body = ByteBuffer()
        }
        self.head = head
        return try readBody(&bytes)
    }

    private mutating func readBody(_ bytes: inout ByteBuffer) throws(ClientRequestError) -> ClientRequest? {
        while bytes.readableBytes > 0 {
            let step: FramingStep
            switch bytes.withUnsafeReadableBytes({ raw in Result { () throws(BodyFramingError) in try framer.step(raw) } }) {
            case .success(let next): step = next
            case .failure(let error): throw .malformed(error.reason)
            }
            bytes.moveReaderIndex(forwardBy: step.skipped)
            if step.forward > 0 {
                var piece = bytes.readSlice(length: step.forward)!
                if !tooLarge {
                    if body!.readableBytes + piece.readableBytes > maxBodyBytes {
                        tooLarge = true
                        body = nil
                    } else {
                        body!.writeBuffer(&piece)
                    }
                }
            }
            if step.ended {
                let request = ClientRequest(head: head!, body: body ?? ByteBuffer(), tooLarge: tooLarge, arrival: arrival)
                head = nil
                body = nil
                return request
            }
        }
        return nil
    }

    private static var headTooLarge: ClientRequestError {
        ClientRequestError(status: .requestHeaderFieldsTooLarge, reason: "request head longer than \(RequestHeadParser.maxHeadBytes) bytes")
    }
}
