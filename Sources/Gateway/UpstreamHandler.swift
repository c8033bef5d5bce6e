import NIOCore
import NIOHTTP1

/// What an upstream connection tells the request using it. Every call is on the connection's
/// loop, which is also the client connection's.
protocol UpstreamConsumer: AnyObject {
    /// The answer's head (after any 1xx heads, which are dropped) and how its body is delimited.
    func upstreamHead(_ head: HTTPResponseHead, body: BodyLength)
    /// Body bytes as they came: `framed` when they are whole chunks, valid as they are in a
    /// chunked response; else bare body bytes.
    func upstreamBody(_ bytes: ByteBuffer, framed: Bool)
    /// The end of one batch of socket reads: the moment to flush what the batch produced.
    func upstreamReadComplete()
    /// The body is complete; `keepAlive`: the connection can carry another request.
    func upstreamEnd(keepAlive: Bool)
    func upstreamFailed(_ error: any Error)
}

/// The upstream closed the connection before the answer was complete.
struct UpstreamClosed: Error, CustomStringConvertible {
    var description: String { "the upstream closed the connection" }
}

/// No byte from the upstream within the read timeout.
struct UpstreamTimedOut: Error, CustomStringConvertible {
    var description: String { "the upstream sent nothing within the read timeout" }
}

/// An upstream connection's reader, which carries raw bytes both ways: it writes the request
/// already encoded, parses the answer's head itself, and then, instead of decoding the body
/// into parts, only finds where it ends (`BodyFramer`) and hands its bytes on as they came.
/// Used only on its socket's loop.
final class UpstreamHandler: LoopSocketDelegate {
    /// The request using the connection; set for one exchange, cleared when it ends or fails
    /// (a strong reference: every end of an exchange clears it, and closing the connection does).
    var consumer: (any UpstreamConsumer)?
    /// Cleared at the close, which breaks the cycle with the socket's `delegate`.
    private var socket: LoopSocket?

    private enum Phase {
        /// No request in flight: any byte now is a protocol error.
        case idle
        /// Waiting for (the rest of) the answer's head.
        case head
        case body
    }
    private var phase = Phase.idle
    /// A head split across reads, gathered until its blank line arrives.
    private var partialHead: ByteBuffer?
    private var framer = BodyFramer(.none)
    private var keepAlive = true

    /// The read timeout, re-armed lazily: reads only record their time, and the timer, when it
    /// fires, either fails the connection or sleeps again until `lastReadAt + readTimeout`.
    private let readTimeout: TimeAmount
    private var lastReadAt = NIODeadline.now()
    private var readTimer: LoopTimer?

    init(socket: LoopSocket, readTimeout: TimeAmount) {
        self.socket = socket
        self.readTimeout = readTimeout
        armReadTimer()
    }

    private func armReadTimer() {
        guard readTimer == nil, let socket else { return }
        readTimer = socket.loop.schedule(at: lastReadAt + readTimeout) { [self] in
            readTimer = nil
            readTimerFired()
        }
    }

    private func readTimerFired() {
        guard let socket, socket.isActive else { return }
        // Paused for a slow client (`ProxyExchange`): the silence is not the upstream's.
        if !socket.reading { lastReadAt = .now() }
        if NIODeadline.now() - lastReadAt >= readTimeout {
            // Waiting for an answer: the request failed. Idle in the pool: the connection is dropped.
            fail(UpstreamTimedOut())
        } else {
            armReadTimer()
        }
    }

    /// Sends one request (head and body encoded by `UpstreamRequest`) and waits for its answer.
    func send(_ request: ByteBuffer) {
        phase = .head
        partialHead = nil
        // The timeout counts from the request, not from the last read of the previous one.
        lastReadAt = .now()
        socket?.write(request)
        socket?.flush()
    }

    func socketRead(_ bytes: ByteBuffer) {
        var buffer = bytes
        do {
            switch phase {
            case .idle:
                throw UpstreamProtocolError(reason: "bytes from the upstream with no request in flight")
            case .head:
                try readHead(&buffer)
            case .body:
                try readBody(&buffer)
            }
        } catch {
            fail(error)
        }
    }

    func socketReadComplete() {
        lastReadAt = .now()
        consumer?.upstreamReadComplete()
    }

    private func readHead(_ incoming: inout ByteBuffer) throws {
        var buffer: ByteBuffer
        if var pending = partialHead {
            partialHead = nil
            pending.writeBuffer(&incoming)
            buffer = pending
        } else {
            buffer = incoming
        }
        // Informational (1xx) heads come before the real one; they are dropped.
        while true {
            guard let (head, body, consumed) = try buffer.withUnsafeReadableBytes({ try ResponseHeadParser.parse($0) }) else {
                partialHead = buffer
                return
            }
            buffer.moveReaderIndex(forwardBy: consumed)
            let status = Int(head.status.code)
            if (100..<200).contains(status) {
                guard status != 101 else { throw UpstreamProtocolError(reason: "unexpected protocol switch") }
                continue
            }
            keepAlive = head.isKeepAlive && body != .untilClose
            framer = BodyFramer(body)
            phase = .body
            consumer?.upstreamHead(head, body: body)
            guard phase == .body else { return }
            if framer.isDone { return finish(extraBytes: buffer.readableBytes > 0) }
            return try readBody(&buffer)
        }
    }

    private func readBody(_ buffer: inout ByteBuffer) throws {
        while buffer.readableBytes > 0 {
            let step = try buffer.withUnsafeReadableBytes { try framer.step($0) }
            buffer.moveReaderIndex(forwardBy: step.skipped)
            if step.forward > 0 {
                let bytes = step.forward == buffer.readableBytes ? buffer : buffer.getSlice(at: buffer.readerIndex, length: step.forward)!
                buffer.moveReaderIndex(forwardBy: step.forward)
                consumer?.upstreamBody(bytes, framed: step.kind == .framed)
                // The consumer may have given the connection up (its client left).
                guard phase == .body else { return }
            }
            if step.ended { return finish(extraBytes: buffer.readableBytes > 0) }
        }
    }

    /// The body is complete. Bytes after it mean the upstream is out of step with its requests:
    /// such a connection is not reused.
    private func finish(extraBytes: Bool) {
        phase = .idle
        let reusable = keepAlive && !extraBytes
        let consumer = self.consumer
        self.consumer = nil
        if !reusable { socket?.close(error: nil) }
        consumer?.upstreamEnd(keepAlive: reusable)
    }

    private func fail(_ error: any Error) {
        phase = .idle
        if let consumer {
            self.consumer = nil
            consumer.upstreamFailed(error)
        }
        socket?.close(error: nil)
    }

    func socketClosed(error: (any Error)?) {
        readTimer?.cancel()
        readTimer = nil
        socket = nil
        if let error {
            fail(error)
        } else if phase == .body, framer.state == .untilClose {
            // A body without a length ends at the close.
            finish(extraBytes: false)
        } else {
            phase = .idle
            if let consumer {
                self.consumer = nil
                consumer.upstreamFailed(UpstreamClosed())
            }
        }
    }
}
