import Foundation

// Response bodies, encoded field for field as OpenAI sends them: absent optional values that
// OpenAI writes as `null` are written as `null` here too.

/// Token counts of a request.
public struct Usage: Codable, Sendable, Equatable {
    /// `prompt_tokens`: tokens in the prompt (summed over all prompts of a completions request).
    public var promptTokens: Int
    /// `completion_tokens`: tokens generated, summed over all choices.
    public var completionTokens: Int
    /// `total_tokens`: prompt plus completion tokens.
    public var totalTokens: Int

    /// Counts of a request; `totalTokens` is computed as their sum.
    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = promptTokens + completionTokens
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
    }
}

// MARK: /v1/models

/// One entry of `GET /v1/models`.
public struct ModelCard: Codable, Sendable, Equatable {
    /// The model's name, as clients pass it in a request's `model`.
    public var id: String
    /// Always `model`.
    public var object = "model"
    /// Unix time (seconds) when the server loaded the model.
    public var created: Int
    /// `owned_by`: always `llmux`.
    public var ownedBy = "llmux"
    /// The context window (as vLLM reports it).
    public var maxModelLen: Int?

    /// A card for one served model.
    public init(id: String, created: Int, maxModelLen: Int?) {
        self.id = id
        self.created = created
        self.maxModelLen = maxModelLen
    }

    enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by", maxModelLen = "max_model_len" }
}

/// `GET /v1/models`.
public struct ModelList: Codable, Sendable, Equatable {
    /// Always `list`.
    public var object = "list"
    /// One card per served model.
    public var data: [ModelCard]
    /// A list of model cards.
    public init(data: [ModelCard]) { self.data = data }
}

// MARK: /v1/completions

/// Most likely tokens at one position with their log-probabilities, most likely first, encoded
/// as a JSON object `{token: logprob}` in that order.
public struct TopLogprobMap: Encodable, Sendable, Equatable {
    /// Token texts with their log-probabilities, most likely first.
    public var entries: [(token: String, logprob: Double)]
    /// A map over `entries`, which keep their order when encoded.
    public init(_ entries: [(token: String, logprob: Double)]) { self.entries = entries }

    /// Compares entries in order, written out because tuples are not `Equatable`.
    public static func == (lhs: TopLogprobMap, rhs: TopLogprobMap) -> Bool {
        lhs.entries.map(\.token) == rhs.entries.map(\.token) && lhs.entries.map(\.logprob) == rhs.entries.map(\.logprob)
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Writes `{token: logprob}` in entry order; a token text seen twice keeps only its first (most likely) entry.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        var seen = Set<String>()
        for entry in entries where seen.insert(entry.token).inserted {
            try container.encode(entry.logprob, forKey: Key(stringValue: entry.token))
        }
    }
}

/// The legacy completions `logprobs` object.
public struct CompletionLogprobs: Encodable, Sendable, Equatable {
    /// The text of each generated token (`tokens`).
    public var tokens: [String] = []
    /// `token_logprobs`: each token's log-probability, null where there is none.
    public var tokenLogprobs: [Double?] = []
    /// `top_logprobs`: the most likely tokens at each position, null where there are none.
    public var topLogprobs: [TopLogprobMap?] = []
    /// `text_offset`: where each token starts in the generated text, counted in Unicode scalars.
    public var textOffset: [Int] = []
    /// Empty lists, filled token by token.
    public init() {}

    enum CodingKeys: String, CodingKey {
        case tokens, tokenLogprobs = "token_logprobs", topLogprobs = "top_logprobs", textOffset = "text_offset"
    }
}

/// One choice of a completion (or of a completion chunk).
public struct CompletionChoice: Encodable, Sendable, Equatable {
    /// The choice's position: prompt index × n + choice number.
    public var index: Int
    /// The choice's text (after the prompt when `echo`); in a streamed chunk, only the new text.
    public var text: String
    /// Log-probabilities when the request asked for `logprobs`; written as null otherwise.
    public var logprobs: CompletionLogprobs?
    /// `finish_reason` (`stop`, `length`, …); null until the choice ends.
    public var finishReason: String?

    /// A choice with every field given.
    public init(index: Int, text: String, logprobs: CompletionLogprobs?, finishReason: String?) {
        self.index = index
        self.text = text
        self.logprobs = logprobs
        self.finishReason = finishReason
    }

    enum CodingKeys: String, CodingKey { case index, text, logprobs, finishReason = "finish_reason" }

    /// Writes `logprobs` and `finish_reason` as null when nil, as OpenAI does.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(index, forKey: .index)
        try container.encode(text, forKey: .text)
        try container.encode(logprobs, forKey: .logprobs)
        try container.encode(finishReason, forKey: .finishReason)
    }
}

/// An answer or streamed chunk that lists choices: `id`, `object`, `created`, `model`, `choices`
/// and `usage` (left out when nil, unless `encodesNullUsage`: streamed chunks with
/// `include_usage` write `"usage": null` until the last).
public struct ChoiceList<Choice: Encodable & Sendable & Equatable>: Encodable, Sendable, Equatable {
    /// The answer's id (`cmpl-…`, `chatcmpl-…`), the same in every chunk of a stream.
    public var id: String
    /// What OpenAI calls the object (`text_completion`, `chat.completion.chunk`).
    public var object: String
    /// Unix time (seconds) of the request; the same in every chunk of a stream.
    public var created: Int
    /// The name of the model that answered.
    public var model: String
    /// The choices; in a stream, those with news in this chunk (none in the last, usage-only chunk).
    public var choices: [Choice]
    /// Token counts; in a stream only the last chunk has them, and only with `include_usage`.
    public var usage: Usage?
    /// Writes `"usage": null` when `usage` is nil.
    public var encodesNullUsage: Bool

    /// A list of choices.
    public init(id: String, object: String, created: Int, model: String, choices: [Choice], usage: Usage?, encodesNullUsage: Bool) {
        self.id = id
        self.object = object
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
        self.encodesNullUsage = encodesNullUsage
    }

    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage }

    /// Leaves `usage` out when nil, unless `encodesNullUsage` asks for `"usage": null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(object, forKey: .object)
        try container.encode(created, forKey: .created)
        try container.encode(model, forKey: .model)
        try container.encode(choices, forKey: .choices)
        if usage != nil || encodesNullUsage { try container.encode(usage, forKey: .usage) }
    }
}

/// `POST /v1/completions` answer, and each streamed chunk (same `object`, as OpenAI does).
public typealias CompletionResponse = ChoiceList<CompletionChoice>

extension ChoiceList where Choice == CompletionChoice {
    /// A completion (or one of its streamed chunks).
    public init(id: String, created: Int, model: String, choices: [CompletionChoice], usage: Usage?, encodesNullUsage: Bool = false) {
        self.init(id: id, object: "text_completion", created: created, model: model, choices: choices, usage: usage,
                  encodesNullUsage: encodesNullUsage)
    }
}

// MARK: /v1/chat/completions

/// One most-likely token in the chat logprobs format.
public struct ChatTopLogprob: Encodable, Sendable, Equatable {
    /// The token's text.
    public var token: String
    /// The token's log-probability.
    public var logprob: Double
    /// The UTF-8 bytes of `token` (OpenAI's `bytes`), set by `init`.
    public var bytes: [UInt8]?
    /// An entry whose `bytes` are the UTF-8 bytes of `token`.
    public init(token: String, logprob: Double) {
        self.token = token
        self.logprob = logprob
        self.bytes = Array(token.utf8)
    }
    enum CodingKeys: String, CodingKey { case token, logprob, bytes }
    /// Writes every key, `bytes` as a list of integers or null.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(token, forKey: .token)
        try container.encode(logprob, forKey: .logprob)
        try container.encode(bytes.map { $0.map(Int.init) }, forKey: .bytes)
    }
}

/// One generated token in the chat logprobs format.
public struct ChatTokenLogprob: Encodable, Sendable, Equatable {
    /// The generated token's text.
    public var token: String
    /// The generated token's log-probability.
    public var logprob: Double
    /// The UTF-8 bytes of `token` (OpenAI's `bytes`), set by `init`.
    public var bytes: [UInt8]?
    /// `top_logprobs`: the most likely tokens at this position, as many as the request's `top_logprobs`.
    public var topLogprobs: [ChatTopLogprob]
    /// An entry whose `bytes` are the UTF-8 bytes of `token`.
    public init(token: String, logprob: Double, topLogprobs: [ChatTopLogprob]) {
        self.token = token
        self.logprob = logprob
        self.bytes = Array(token.utf8)
        self.topLogprobs = topLogprobs
    }
    enum CodingKeys: String, CodingKey { case token, logprob, bytes, topLogprobs = "top_logprobs" }
    /// Writes every key, `bytes` as a list of integers or null.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(token, forKey: .token)
        try container.encode(logprob, forKey: .logprob)
        try container.encode(bytes.map { $0.map(Int.init) }, forKey: .bytes)
        try container.encode(topLogprobs, forKey: .topLogprobs)
    }
}

/// A choice's `logprobs` in the chat format.
public struct ChatLogprobs: Encodable, Sendable, Equatable {
    /// One entry per generated token.
    public var content: [ChatTokenLogprob]
    /// The log-probabilities of the given tokens.
    public init(content: [ChatTokenLogprob]) { self.content = content }
    enum CodingKeys: String, CodingKey { case content, refusal }
    /// Also writes `"refusal": null`, as OpenAI does; LLMux produces no refusals.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(content, forKey: .content)
        try container.encode(String?.none, forKey: .refusal)
    }
}

/// The assistant's message of a chat choice.
public struct ChatResponseMessage: Encodable, Sendable, Equatable {
    /// Always `assistant`.
    public var role = "assistant"
    /// The generated text; written as null when nil.
    public var content: String?
    /// An assistant message with `content`.
    public init(content: String?) { self.content = content }
    enum CodingKeys: String, CodingKey { case role, content, refusal }
    /// Writes `content` even when null and adds `"refusal": null`, as OpenAI does.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(role, forKey: .role)
        try container.encode(content, forKey: .content)
        try container.encode(String?.none, forKey: .refusal)
    }
}

/// What a chat choice carries, and under which key: the whole `message` of a completion or the
/// `delta` of a streamed chunk.
public protocol ChatChoiceContent: Encodable, Sendable, Equatable {
    /// The JSON key of the content in a choice.
    static var choiceKey: String { get }
}

extension ChatResponseMessage: ChatChoiceContent {
    /// `message`.
    public static var choiceKey: String { "message" }
}

extension ChatDelta: ChatChoiceContent {
    /// `delta`.
    public static var choiceKey: String { "delta" }
}

/// One choice of a chat answer: `index`, the content under its key, `logprobs` and
/// `finish_reason`, the last two written as null when unset (OpenAI sends them).
public struct ChatChoiceOf<Content: ChatChoiceContent>: Encodable, Sendable, Equatable {
    /// The choice's number, 0 to n − 1.
    public var index: Int
    /// The `message` or `delta`, written under `Content.choiceKey`.
    public var content: Content
    /// Log-probabilities when the request asked for `logprobs`; written as null otherwise.
    public var logprobs: ChatLogprobs?
    /// `finish_reason` (`stop`, `length`, …); null until the choice ends.
    public var finishReason: String?
    /// A choice.
    public init(index: Int, content: Content, logprobs: ChatLogprobs?, finishReason: String?) {
        self.index = index
        self.content = content
        self.logprobs = logprobs
        self.finishReason = finishReason
    }
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.init(stringValue) }
        init?(intValue: Int) { nil }
    }
    /// Writes the content under `Content.choiceKey`, and `logprobs` and `finish_reason` even when null.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(index, forKey: Key("index"))
        try container.encode(content, forKey: Key(Content.choiceKey))
        try container.encode(logprobs, forKey: Key("logprobs"))
        try container.encode(finishReason, forKey: Key("finish_reason"))
    }
}

/// One choice of a chat completion.
public typealias ChatChoice = ChatChoiceOf<ChatResponseMessage>
/// One choice of a chat chunk.
public typealias ChatChunkChoice = ChatChoiceOf<ChatDelta>

extension ChatChoiceOf where Content == ChatResponseMessage {
    /// A choice of a chat completion.
    public init(index: Int, message: ChatResponseMessage, logprobs: ChatLogprobs?, finishReason: String?) {
        self.init(index: index, content: message, logprobs: logprobs, finishReason: finishReason)
    }
    /// The assistant's message.
    public var message: ChatResponseMessage { content }
}

extension ChatChoiceOf where Content == ChatDelta {
    /// A choice of a streamed chat chunk.
    public init(index: Int, delta: ChatDelta, logprobs: ChatLogprobs? = nil, finishReason: String? = nil) {
        self.init(index: index, content: delta, logprobs: logprobs, finishReason: finishReason)
    }
    /// What this chunk adds.
    public var delta: ChatDelta { content }
}

/// `POST /v1/chat/completions` answer.
public struct ChatCompletionResponse: Encodable, Sendable, Equatable {
    /// The answer's id (`chatcmpl-…`).
    public var id: String
    /// Always `chat.completion`.
    public var object = "chat.completion"
    /// Unix time (seconds) of the request.
    public var created: Int
    /// The name of the model that answered.
    public var model: String
    /// One choice per `n`.
    public var choices: [ChatChoice]
    /// Token counts, always present in a whole (non-streamed) answer.
    public var usage: Usage
    /// A whole chat completion; `object` is `chat.completion`.
    public init(id: String, created: Int, model: String, choices: [ChatChoice], usage: Usage) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }
}

/// The `delta` of a streamed chat choice: only the keys that are set are written (`{}` on the
/// finishing chunk).
public struct ChatDelta: Encodable, Sendable, Equatable {
    /// `assistant` on each choice's first chunk; nil, and left out, afterwards.
    public var role: String?
    /// The text this chunk adds; nil, and left out, on the finishing chunk.
    public var content: String?
    /// A delta; nil fields are left out of the JSON.
    public init(role: String? = nil, content: String? = nil) {
        self.role = role
        self.content = content
    }
    enum CodingKeys: String, CodingKey { case role, content }
    /// Writes only the keys that are set, so the finishing chunk's delta is `{}`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(role, forKey: .role)
        try container.encodeIfPresent(content, forKey: .content)
    }
}

/// One streamed chat chunk.
public typealias ChatCompletionChunk = ChoiceList<ChatChunkChoice>

extension ChoiceList where Choice == ChatChunkChoice {
    /// A chat chunk.
    public init(id: String, created: Int, model: String, choices: [ChatChunkChoice], usage: Usage? = nil, encodesNullUsage: Bool = false) {
        self.init(id: id, object: "chat.completion.chunk", created: created, model: model, choices: choices, usage: usage,
                  encodesNullUsage: encodesNullUsage)
    }
}

// MARK: Server-sent events

/// The framing of streamed answers: `data: {json}\n\n` per chunk, `data: [DONE]\n\n` last.
public enum ServerSentEvents {
    /// One event carrying `json`.
    public static func event(_ json: Data) -> Data {
        var data = Data("data: ".utf8)
        data.append(json)
        data.append(contentsOf: [0x0A, 0x0A])
        return data
    }

    /// One event carrying `value` encoded.
    public static func event<T: Encodable>(encoding value: T) throws -> Data {
        event(try WireJSON.encode(value))
    }

    /// The closing event.
    public static let done = Data("data: [DONE]\n\n".utf8)

    /// Splits an SSE stream into the payloads of its `data:` events (for tests and clients).
    public static func payloads(_ stream: String) -> [String] {
        stream.components(separatedBy: "\n\n").compactMap { block in
            let lines = block.split(separator: "\n", omittingEmptySubsequences: true)
            let data = lines.filter { $0.hasPrefix("data:") }.map { line -> String in
                var payload = line.dropFirst(5)
                if payload.first == " " { payload = payload.dropFirst() }
                return String(payload)
            }
            return data.isEmpty ? nil : data.joined(separator: "\n")
        }
    }
}
