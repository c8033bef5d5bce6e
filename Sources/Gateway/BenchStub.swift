import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix

/// A fast fake upstream for `llmux bench gateway`: answers `/v1/completions` and
/// `/v1/chat/completions` with a fixed number of tokens at a fixed pace in OpenAI's SSE format
/// (or one JSON body when not streaming), so a benchmark measures what sits in front of it.
/// Also answers `/health`, `/load`, `/v1/models` and the worker probes SGLang's gateway makes.
public enum BenchStub {
    public struct Settings: Sendable {
        public var host = "127.0.0.1"
        public var port = 0
        public var model = "bench"
        public var tokens = 16
        public var interval = Duration.milliseconds(20)
        public init() {}
    }

    public static func run(_ settings: Settings) async throws {
        let tokens = settings.tokens
        let interval = settings.interval
        let model = settings.model
        let created = Int(Date().timeIntervalSince1970)
        func chunk(_ i: Int, chat: Bool) -> ByteBuffer {
            let body = chat
                ? "{\"id\":\"chatcmpl-stub\",\"object\":\"chat.completion.chunk\",\"created\":\(created),\"model\":\"\(model)\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" tok\(i)\"},\"finish_reason\":\(i == tokens - 1 ? "\"length\"" : "null")}]}"
                : "{\"id\":\"cmpl-stub\",\"object\":\"text_completion\",\"created\":\(created),\"model\":\"\(model)\",\"choices\":[{\"index\":0,\"text\":\" tok\(i)\",\"finish_reason\":\(i == tokens - 1 ? "\"length\"" : "null")}]}"
            return ByteBuffer(string: "data: \(body)\n\n")
        }
        let chatChunks = (0..<tokens).map { chunk($0, chat: true) }
        let textChunks = (0..<tokens).map { chunk($0, chat: false) }
        let done = ByteBuffer(string: "data: [DONE]\n\n")
        let text = (0..<tokens).map { " tok\($0)" }.joined()
        let usage = "\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":\(tokens),\"total_tokens\":\(tokens + 8)}"
        let chatJSON = ByteBuffer(string: "{\"id\":\"chatcmpl-stub\",\"object\":\"chat.completion\",\"created\":\(created),\"model\":\"\(model)\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"\(text)\"},\"finish_reason\":\"length\"}],\(usage)}")
        let textJSON = ByteBuffer(string: "{\"id\":\"cmpl-stub\",\"object\":\"text_completion\",\"created\":\(created),\"model\":\"\(model)\",\"choices\":[{\"index\":0,\"text\":\"\(text)\",\"finish_reason\":\"length\"}],\(usage)}")
        let models = ByteBuffer(string: "{\"object\":\"list\",\"data\":[{\"id\":\"\(model)\",\"object\":\"model\",\"created\":\(created),\"owned_by\":\"llmux\"}]}")

        let router = Router(context: BasicRequestContext.self)
        @Sendable func json(_ buffer: ByteBuffer) -> Response {
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
        }
        for path in ["/health", "/health_generate", "/readiness", "/liveness"] {
            router.get(RouterPath(path)) { _, _ in Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "OK\n"))) }
        }
        router.get("/load") { _, _ in json(ByteBuffer(string: "{\"queued\":0,\"models\":{}}")) }
        router.get("/v1/models") { _, _ in json(models) }
        router.get("/get_model_info") { _, _ in
            json(ByteBuffer(string: "{\"model_path\":\"\(model)\",\"tokenizer_path\":null,\"is_generation\":true}"))
        }
        router.get("/get_server_info") { _, _ in json(ByteBuffer(string: "{\"model_path\":\"\(model)\",\"dp_size\":1}")) }
        router.get("/server_info") { _, _ in json(ByteBuffer(string: "{\"model_path\":\"\(model)\",\"dp_size\":1}")) }
        router.get("/model_info") { _, _ in json(ByteBuffer(string: "{\"model_path\":\"\(model)\",\"is_generation\":true}")) }
        router.get("/get_load") { _, _ in json(ByteBuffer(string: "{\"load\":0}")) }
        for path in ["/version", "/loads", "/v1/loads", "/metrics"] {
            router.get(RouterPath(path)) { _, _ in json(ByteBuffer(string: "{\"version\":\"0\"}")) }
        }
        for (path, chat) in [("/v1/chat/completions", true), ("/v1/completions", false)] {
            let chunks = chat ? chatChunks : textChunks
            let whole = chat ? chatJSON : textJSON
            router.post(RouterPath(path)) { request, _ in
                var request = request
                let body = try await request.collectBody(upTo: 64 << 20)
                let stream = (try? body.withUnsafeReadableBytes { bytes throws(BodyScanError) in try BodyScanner.scan(bytes) })?.stream ?? false
                guard stream else {
                    try await Task.sleep(for: interval * tokens)
                    return json(whole)
                }
                return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                                body: ResponseBody { writer in
                                    let start = ContinuousClock.now
                                    for (i, buffer) in chunks.enumerated() {
                                        if i > 0 { try await Task.sleep(until: start + interval * i, clock: .continuous) }
                                        try await writer.write(buffer)
                                    }
                                    try await writer.write(done)
                                    try await writer.finish(nil)
                                })
            }
        }
        var logger = Logger(label: "llmux-bench-stub")
        logger.logLevel = .warning
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "llmux-stub",
                                 backlog: 4096),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? settings.port
                FileHandle.standardOutput.write(Data("LLMux bench stub listening on http://\(settings.host):\(port)\n".utf8))
            },
            logger: logger)
        try await app.runService()
    }
}
