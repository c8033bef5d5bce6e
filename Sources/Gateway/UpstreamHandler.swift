import NIOCore
import NIOHTTP1

/// What an upstream connection tells the request using it. Every call is on the connection's
/// event loop, which is also the client connection's.
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

/// The last handler of an upstream connection, which carries raw bytes both ways: it writes the
/// request already encoded, parses the answer's head itself, and then, instead of decoding the
/// body into parts, only finds where it ends (`BodyFramer`) and hands its bytes on as they came.
/// Used only on its channel's event loop (hence the unchecked Sendable, for futures on that loop).
final class UpstreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The request using the connection; set for one exchange, cleared when it ends or fails
    /// (a strong reference: every end of an exchange clears it, and closing the connection does).
    var consumer: (any UpstreamConsumer)?
    private var context: ChannelHandlerContext?

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

    /// The read timeout, kept here rather than by an `IdleStateHandler` in front, which would
    /// add three handler hops to every read. The timer is re-armed lazily: reads only record
    /// their time, and the timer, when it fires, either fails the connection or sleeps again
    /// until `lastReadAt + readTimeout`.
    private let readTimeout: TimeAmount
    private var lastReadAt = NIODeadline.now()
    private var readTimer: Scheduled<Void>?

    init(readTimeout: TimeAmount) { self.readTimeout = readTimeout }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armReadTimer(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        readTimer?.cancel()
        readTimer = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        lastReadAt = .now()
        armReadTimer(context: context)
        context.fireChannelActive()
    }

    private func armReadTimer(context: ChannelHandlerContext) {
        guard readTimer == nil else { return }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        readTimer = context.eventLoop.scheduleTask(deadline: lastReadAt + readTimeout) {
            let (handler, context) = bound.value
            handler.readTimer = nil
            handler.readTimerFired(context: context)
        }
    }

    private func readTimerFired(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        if NIODeadline.now() - lastReadAt >= readTimeout {
            // Waiting for an answer: the request failed. Idle in the pool: the connection is dropped.
            fail(context: context, UpstreamTimedOut())
        } else {
            armReadTimer(context: context)
        }
    }

    /// Sends one request (head and body encoded by `UpstreamRequest`) and waits for its answer.
    func send(_ request: ByteBuffer) {
        phase = .head
        partialHead = nil
        // The timeout counts from the request, not from the last read of the previous one.
        lastReadAt = .now()
        context?.writeAndFlush(wrapOutboundOut(request), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        do {
            switch phase {
            case .idle:
                throw UpstreamProtocolError(reason: "bytes from the upstream with no request in flight")
            case .head:
                try readHead(context: context, &buffer)
            case .body:
                try readBody(context: context, &buffer)
            }
        } catch {
            fail(context: context, error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        lastReadAt = .now()
        consumer?.upstreamReadComplete()
    }

    private func readHead(context: ChannelHandlerContext, _ incoming: inout ByteBuffer) throws {
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
            if framer.isDone { return finish(context: context, extraBytes: buffer.readableBytes > 0) }
            return try readBody(context: context, &buffer)
        }
    }

    private func readBody(context: ChannelHandlerContext, _ buffer: inout ByteBuffer) throws {
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
            if step.ended { return finish(context: context, extraBytes: buffer.readableBytes > 0) }
        }
    }

    /// The body is complete. Bytes after it mean the upstream is out of step with its requests:
    /// such a connection is not reused.
    private func finish(context: ChannelHandlerContext, extraBytes: Bool) {
        phase = .idle
        let reusable = keepAlive && !extraBytes
        let consumer = self.consumer
        self.consumer = nil
        if !reusable { context.close(promise: nil) }
        consumer?.upstreamEnd(keepAlive: reusable)
    }

    private func fail(context: ChannelHandlerContext, _ error: any Error) {
        phase = .idle
        if let consumer {
            self.consumer = nil
            consumer.upstreamFailed(error)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        readTimer?.cancel()
        readTimer = nil
        if phase == .body, framer.state == .untilClose {
            // A body without a length ends at the close.
            finish(context: context, extraBytes: false)
        } else {
            phase = .idle
            if let consumer {
                self.consumer = nil
                consumer.upstreamFailed(UpstreamClosed())
            }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, error)
    }
}
