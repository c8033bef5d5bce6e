import Foundation
import NIOCore
import NIOPosix

/// A fast fake upstream for `llmux bench gateway`: answers `/v1/completions` and
/// `/v1/chat/completions` with a fixed number of tokens at a fixed pace in OpenAI's SSE format
/// (or one JSON body when not streaming), so a benchmark measures what sits in front of it.
/// Also answers `/health`, `/load`, `/v1/models` and the worker probes SGLang's gateway makes.
public enum BenchStub {
    /// Where the stub listens and what it answers.
    public struct Settings: Sendable {
        /// Address to listen on.
        public var host = "127.0.0.1"
        /// Port to listen on; 0 lets the system choose one (`run` prints the one bound).
        public var port = 0
        /// Model name put in the answers and listed by `/v1/models`.
        public var model = "bench"
        /// Tokens per answer: one SSE chunk each when streaming, joined into one body otherwise.
        public var tokens = 16
        /// Time between tokens; a non-streamed answer is sent after `tokens` × `interval`.
        public var interval = Duration.milliseconds(20)
        /// Defaults: 127.0.0.1, a system-chosen port, model "bench", 16 tokens 20 ms apart.
        public init() {}
    }

    /// Binds the stub, prints the address it listens on, and serves until its channel closes.
    public static func run(_ settings: Settings) async throws {
        let channel = try await bind(settings)
        let port = channel.localAddress?.port ?? settings.port
        FileHandle.standardOutput.write(Data("LLMux bench stub listening on http://\(settings.host):\(port)\n".utf8))
        try await channel.closeFuture.get()
    }

    /// Binds the stub and returns its listening channel (close it to stop).
    public static func bind(_ settings: Settings) async throws -> any Channel {
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

        var gets: [String: ByteBuffer] = [:]
        for path in ["/health", "/health_generate", "/readiness", "/liveness"] { gets[path] = ByteBuffer(string: "OK\n") }
        gets["/load"] = ByteBuffer(string: "{\"queued\":0,\"models\":{}}")
        gets["/v1/models"] = models
        gets["/get_model_info"] = ByteBuffer(string: "{\"model_path\":\"\(model)\",\"tokenizer_path\":null,\"is_generation\":true}")
        for path in ["/get_server_info", "/server_info"] { gets[path] = ByteBuffer(string: "{\"model_path\":\"\(model)\",\"dp_size\":1}") }
        gets["/model_info"] = ByteBuffer(string: "{\"model_path\":\"\(model)\",\"is_generation\":true}")
        gets["/get_load"] = ByteBuffer(string: "{\"load\":0}")
        for path in ["/version", "/loads", "/v1/loads", "/metrics"] { gets[path] = ByteBuffer(string: "{\"version\":\"0\"}") }
        let answers = StubHandler.Answers(chatChunks: chatChunks, textChunks: textChunks, done: done, chatJSON: chatJSON, textJSON: textJSON,
                                          gets: gets, interval: .nanoseconds(Int64(interval.components.seconds) * 1_000_000_000 + interval.components.attoseconds / 1_000_000_000))
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(StubHandler(answers: answers))
                }
            }
            .bind(host: settings.host, port: settings.port).get()
        return channel
    }
}
