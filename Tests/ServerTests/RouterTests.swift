import Engine
import Foundation
import Hummingbird
import HummingbirdTesting
import LLMuxCore
import OpenAIAPI
import Server
import Synchronization
import Testing
import Tokenization

/// Holds engine steps back while closed, so a test can act before the engine produces a token.
final class StepGate: Sendable {
    private let isOpen = Mutex(true)
    /// Steps wait until `open`.
    func close() { isOpen.withLock { $0 = false } }
    /// Lets steps run.
    func open() { isOpen.withLock { $0 = true } }
    /// Returns once the gate is open (polled: the engine thread has nothing else to do).
    func wait() { while !isOpen.withLock({ $0 }) { Thread.sleep(forTimeInterval: 0.001) } }
}

/// A model whose n-th generated token is the byte 'a' + n % 26 (ids are bytes in the test
/// tokenizer), so outputs are known; each step takes a millisecond, after `gate` opens.
final class AlphabetExecutor: ModelExecutor {
    let gate: StepGate?
    init(gate: StepGate? = nil) { self.gate = gate }
    let models = [ModelDescriptor(id: "alpha", contextLength: 64, vocabularySize: 256, eosTokenIDs: [0],
                                  kvShape: KVCacheShape(layerCount: 1, kvHeadCount: 1, headDim: 1, bytesPerElement: 4))]
    let pageCount = 256
    func tokensPerPage(for model: ModelID) -> Int { 16 }
    func execute(_ plan: StepPlan) throws -> StepResult {
        gate?.wait()
        Thread.sleep(forTimeInterval: 0.001)
        var result = StepResult()
        for job in plan.jobs {
            for sequence in job.sequences {
                guard let request = sequence.sample else { continue }
                let id = TokenID(97 + request.generatedCount % 26)
                let top = (0..<(request.parameters.logprobs ?? 0)).map { TokenLogprob(tokenID: id + TokenID($0), logprob: -0.25 * Float($0 + 1)) }
                result.samples[sequence.sequenceID] = SampledToken(tokenID: id, logprob: -0.25, top: top)
            }
        }
        return result
    }
}

/// A byte-level tokenizer whose ids are the bytes, with a ChatML template.
func byteTokenizer() throws -> Tokenizer {
    var printable = Array(33...126) + Array(161...172) + Array(174...255)
    var symbols = printable
    var extra = 0
    for byte in 0..<256 where !printable.contains(byte) {
        printable.append(byte)
        symbols.append(256 + extra)
        extra += 1
    }
    var vocab: [String: Int] = [:]
    for (byte, symbol) in zip(printable, symbols) { vocab[String(Character(Unicode.Scalar(UInt32(symbol))!))] = byte }
    let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
    let tokenizer: [String: Any] = [
        "version": "1.0", "added_tokens": [] as [Any], "normalizer": NSNull(), "pre_tokenizer": byteLevel,
        "post_processor": NSNull(), "decoder": byteLevel,
        "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                  "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": [] as [Any]] as [String: Any],
    ]
    let config: [String: Any] = ["chat_template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"]
    return try Tokenizer(tokenizerJSON: JSONSerialization.data(withJSONObject: tokenizer),
                         configJSON: JSONSerialization.data(withJSONObject: config))
}

struct Harness {
    let state: ServerState
    let engine: UnitEngine

    init(keys: Set<String> = [], maxQueue: Int = 64, maxBody: Int = 4096, ready: Bool = true, gate: StepGate? = nil) throws {
        var configuration = ServerConfiguration()
        configuration.apiKeys = keys
        configuration.maxQueue = maxQueue
        configuration.maxBodySize = maxBody
        state = ServerState(configuration: configuration)
        let executor = AlphabetExecutor(gate: gate)
        let tokenizer = try byteTokenizer()
        engine = UnitEngine(core: EngineCore(executor: executor, tokenizers: ["alpha": tokenizer]))
        if ready {
            state.ready(.init(backend: engine, models: [ServedModel(descriptor: executor.models[0], tokenizer: tokenizer)]))
        }
    }

    func test(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await Application(router: makeRouter(state: state)).test(.router, body)
        engine.shutdown()
    }
}

func json(_ buffer: ByteBuffer) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as! [String: Any]
}

func post(_ client: any TestClientProtocol, _ path: String, _ body: String, key: String? = nil,
          _ check: @escaping @Sendable (TestResponse) async throws -> Void) async throws {
    var headers: HTTPFields = [.contentType: "application/json"]
    if let key { headers[.authorization] = "Bearer \(key)" }
    try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body)) { try await check($0) }
}

@Suite struct RouterTests {
    @Test func healthWaitsForModels() async throws {
        let harness = try Harness(ready: false)
        try await harness.test { client in
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .serviceUnavailable) }
            try await post(client, "/v1/completions", #"{"model":"alpha","prompt":"x"}"#) { #expect($0.status == .serviceUnavailable) }
        }
        let ready = try Harness()
        try await ready.test { client in
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/models", method: .get) { response in
                let data = try json(response.body)["data"] as! [[String: Any]]
                #expect(data.map { $0["id"] as! String } == ["alpha"])
            }
        }
    }

    @Test func unknownRoutesAnswerWithOpenAIErrors() async throws {
        try await Harness().test { client in
            try await client.execute(uri: "/v2/completions", method: .get) { response in
                #expect(response.status == .notFound)
                let error = try json(response.body)["error"] as! [String: Any]
                #expect(error["code"] as? String == "unknown_url")
                #expect(error["message"] as? String == "Unknown request URL: GET /v2/completions.")
            }
            try await client.execute(uri: "/v1/completions", method: .delete) { response in
                #expect(response.status == .methodNotAllowed)
                let error = try json(response.body)["error"] as! [String: Any]
                #expect(error["code"] as? String == "method_not_allowed")
            }
            // A real route still answers.
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test func completionAndLogprobs() async throws {
        try await Harness().test { client in
            try await post(client, "/v1/completions", #"{"model":"alpha","prompt":"hi","max_tokens":4,"logprobs":2}"#) { response in
                #expect(response.status == .ok)
                let body = try json(response.body)
                let choice = (body["choices"] as! [[String: Any]])[0]
                #expect(choice["text"] as? String == "abcd")
                #expect(choice["finish_reason"] as? String == "length")
                let logprobs = choice["logprobs"] as! [String: Any]
                #expect(logprobs["tokens"] as? [String] == ["a", "b", "c", "d"])
                #expect(logprobs["text_offset"] as? [Int] == [0, 1, 2, 3])
                #expect((logprobs["top_logprobs"] as! [[String: Double]])[0] == ["a": -0.25, "b": -0.5])
                let usage = body["usage"] as! [String: Int]
                #expect(usage["prompt_tokens"] == 2 && usage["completion_tokens"] == 4 && usage["total_tokens"] == 6)
            }
            try await post(client, "/v1/completions", #"{"model":"alpha","prompt":[[104],[105,106]],"max_tokens":10,"stop":["de"],"n":2}"#) { response in
                let choices = try json(response.body)["choices"] as! [[String: Any]]
                #expect(choices.map { $0["index"] as! Int } == [0, 1, 2, 3])
                #expect(choices.allSatisfy { $0["text"] as? String == "abc" && $0["finish_reason"] as? String == "stop" })
            }
        }
    }

    @Test func streamingFramesAndUsage() async throws {
        try await Harness().test { client in
            try await post(client, "/v1/completions",
                           #"{"model":"alpha","prompt":"hi","max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}"#) { response in
                #expect(response.headers[.contentType]?.hasPrefix("text/event-stream") == true)
                let text = String(buffer: response.body)
                #expect(text.hasSuffix("\n\ndata: [DONE]\n\n"))
                let payloads = ServerSentEvents.payloads(text)
                let chunks = try payloads.dropLast().map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
                let texts = chunks.compactMap { ($0["choices"] as! [[String: Any]]).first?["text"] as? String }
                #expect(texts.joined() == "abc")
                #expect((chunks.last!["usage"] as! [String: Int])["completion_tokens"] == 3)
                #expect(chunks.dropLast().allSatisfy { $0["usage"] is NSNull })
            }
            try await post(client, "/v1/chat/completions",
                           #"{"model":"alpha","messages":[{"role":"user","content":"x"}],"max_tokens":2,"stream":true}"#) { response in
                let payloads = ServerSentEvents.payloads(String(buffer: response.body))
                #expect(payloads.last == "[DONE]")
                let chunks = try payloads.dropLast().map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
                let deltas = chunks.map { ($0["choices"] as! [[String: Any]])[0]["delta"] as! [String: String] }
                #expect(deltas == [["role": "assistant", "content": ""], ["content": "a"], ["content": "b"], [:]])
                #expect(((chunks.last!["choices"] as! [[String: Any]])[0]["finish_reason"] as? String) == "length")
            }
        }
    }

    @Test func chatDefaultsToTheRestOfTheContext() async throws {
        try await Harness().test { client in
            try await post(client, "/v1/chat/completions", #"{"model":"alpha","messages":[{"role":"user","content":"x"}]}"#) { response in
                let body = try json(response.body)
                let usage = body["usage"] as! [String: Int]
                #expect(usage["prompt_tokens"]! + usage["completion_tokens"]! == 64)
            }
        }
    }

    @Test func errorStatuses() async throws {
        try await Harness(keys: ["k"], maxQueue: 3, maxBody: 200).test { client in
            let ok = #"{"model":"alpha","prompt":"x","max_tokens":1}"#
            try await post(client, "/v1/completions", ok) { #expect($0.status == .unauthorized) }
            try await post(client, "/v1/completions", ok, key: "wrong") { #expect($0.status == .unauthorized) }
            try await post(client, "/v1/completions", ok, key: "k") { #expect($0.status == .ok) }
            try await post(client, "/v1/completions", #"{"model":"beta","prompt":"x"}"#, key: "k") { response in
                #expect(response.status == .notFound)
                let error = try json(response.body)["error"] as! [String: Any]
                #expect(error["message"] as? String == "The model `beta` does not exist.")
            }
            try await post(client, "/v1/completions", String(repeating: " ", count: 300) + ok, key: "k") { #expect($0.status == .contentTooLarge) }
            try await post(client, "/v1/completions", #"{"model":"alpha","prompt":"x","n":4}"#, key: "k") { #expect($0.status == .tooManyRequests) }
            try await post(client, "/v1/completions", #"{"model":"alpha","prompt":"x","max_tokens":100}"#, key: "k") { response in
                #expect(response.status == .badRequest)
                let message = (try json(response.body)["error"] as! [String: Any])["message"] as! String
                #expect(message.contains("maximum context length is 64 tokens") && message.contains("101 tokens"))
            }
            try await post(client, "/v1/completions", #"{"model":"alpha","prompt":[999]}"#, key: "k") { #expect($0.status == .badRequest) }
            try await post(client, "/v1/completions", #"{"model":"alpha","prompt":"x","temperature":-1}"#, key: "k") { response in
                #expect(response.status == .badRequest)
                let error = try json(response.body)["error"] as! [String: Any]
                #expect((error["message"] as! String).hasPrefix("temperature must be >= 0"))
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(text.contains("llmux_requests_total{model=\"alpha\",finish_reason=\"length\"} 1"))
                #expect(text.contains("llmux_http_responses_total{status=\"401\"} 2"))
                #expect(text.contains("llmux_time_to_first_token_seconds_count{model=\"alpha\"} 1"))
            }
        }
    }
}
