import NIOCore
import NIOHTTP1
import NIOPosix

/// The stub's HTTP handler on SwiftNIO directly: answers are pre-encoded buffers and tokens are
/// paced with event-loop timers, so the stub costs little CPU and the proxies in front of it are
/// what a benchmark measures.
final class StubHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    struct Answers: Sendable {
        var chatChunks: [ByteBuffer]
        var textChunks: [ByteBuffer]
        var done: ByteBuffer
        var chatJSON: ByteBuffer
        var textJSON: ByteBuffer
        var gets: [String: ByteBuffer]
        var interval: TimeAmount
    }

    let answers: Answers
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var timer: Scheduled<Void>?

    init(answers: Answers) { self.answers = answers }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            guard let head else { return }
            self.head = nil
            respond(context: context, head: head)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let keepAlive = head.isKeepAlive
        let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
        if head.method == .GET {
            if let answer = answers.gets[path] {
                whole(context: context, status: .ok, contentType: "application/json", body: answer, keepAlive: keepAlive)
            } else {
                whole(context: context, status: .notFound, contentType: "application/json", body: ByteBuffer(string: "{}"), keepAlive: keepAlive)
            }
            return
        }
        let chat = path == "/v1/chat/completions"
        guard chat || path == "/v1/completions" else {
            return whole(context: context, status: .notFound, contentType: "application/json", body: ByteBuffer(string: "{}"), keepAlive: keepAlive)
        }
        let stream = (try? body.withUnsafeReadableBytes { bytes in
            try Result { () throws(BodyScanError) in try BodyScanner.scan(bytes) }.get()
        })?.stream ?? false
        let chunks = chat ? answers.chatChunks : answers.textChunks
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        guard stream else {
            let json = chat ? answers.chatJSON : answers.textJSON
            timer = loop.scheduleTask(in: answers.interval * Int64(chunks.count)) {
                let (handler, context) = bound.value
                handler.whole(context: context, status: .ok, contentType: "application/json", body: json, keepAlive: keepAlive)
            }
            return
        }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/event-stream")
        headers.add(name: "cache-control", value: "no-cache")
        headers.add(name: "transfer-encoding", value: "chunked")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        let start = NIODeadline.now()
        func send(_ i: Int) {
            let (handler, context) = bound.value
            guard context.channel.isActive else { return }
            context.write(handler.wrapOutboundOut(.body(.byteBuffer(chunks[i]))), promise: nil)
            if i + 1 == chunks.count {
                context.write(handler.wrapOutboundOut(.body(.byteBuffer(handler.answers.done))), promise: nil)
                let done = context.writeAndFlush(handler.wrapOutboundOut(.end(nil)))
                if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
                handler.timer = nil
            } else {
                context.flush()
                // Isolated: `send` and the context stay on this loop, so they need not be Sendable.
                handler.timer = loop.assumeIsolated().scheduleTask(deadline: start + handler.answers.interval * Int64(i + 1)) { send(i + 1) }
            }
        }
        send(0)
    }

    func whole(context: ChannelHandlerContext, status: HTTPResponseStatus, contentType: String, body: ByteBuffer, keepAlive: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.readableBytes))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }
}
