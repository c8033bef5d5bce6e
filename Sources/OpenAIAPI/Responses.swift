import Foundation

// Response bodies, encoded field for field as OpenAI sends them: absent optional values that
// OpenAI writes as `null` are written as `null` here too.

/// Token counts of a request.
public struct Usage: Codable, Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int

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
    public var id: String
    public var object = "model"
    public var created: Int
    public var ownedBy = "llmux"
    /// The context window (as vLLM reports it).
    public var maxModelLen: Int?

    public init(id: String, created: Int, maxModelLen: Int?) {
        self.id = id
        self.created = created
        self.maxModelLen = maxModelLen
    }

    enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by", maxModelLen = "max_model_len" }
}

/// `GET /v1/models`.
public struct ModelList: Codable, Sendable, Equatable {
    public var object = "list"
    public var data: [ModelCard]
    public init(data: [ModelCard]) { self.data = data }
}

// MARK: /v1/completions

/// Most likely tokens at one position with their log-probabilities, most likely first, encoded
/// as a JSON object `{token: logprob}` in that order.
public struct TopLogprobMap: Encodable, Sendable, Equatable {
    public var entries: [(token: String, logprob: Double)]
    public init(_ entries: [(token: String, logprob: Double)]) { self.entries = entries }

    public static func == (lhs: TopLogprobMap, rhs: TopLogprobMap) -> Bool {
        lhs.entries.map(\.token) == rhs.entries.map(\.token) && lhs.entries.map(\.logprob) == rhs.entries.map(\.logprob)
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

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
    public var tokens: [String] = []
    public var tokenLogprobs: [Double?] = []
    public var topLogprobs: [TopLogprobMap?] = []
    public var textOffset: [Int] = []
    public init() {}

    enum CodingKeys: String, CodingKey {
        case tokens, tokenLogprobs = "token_logprobs", topLogprobs = "top_logprobs", textOffset = "text_offset"
    }
}

/// One choice of a completion (or of a completion chunk).
public struct CompletionChoice: Encodable, Sendable, Equatable {
    public var index: Int
    public var text: String
    public var logprobs: CompletionLogprobs?
    public var finishReason: String?

    public init(index: Int, text: String, logprobs: CompletionLogprobs?, finishReason: String?) {
        self.index = index
        self.text = text
        self.logprobs = logprobs
        self.finishReason = finishReason
    }

    enum CodingKeys: String, CodingKey { case index, text, logprobs, finishReason = "finish_reason" }

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
    public var id: String
    /// What OpenAI calls the object (`text_completion`, `chat.completion.chunk`).
    public var object: String
    public var created: Int
    public var model: String
    public var choices: [Choice]
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
    public var token: String
    public var logprob: Double
    public var bytes: [UInt8]?
    public init(token: String, logprob: Double) {
        self.token = token
        self.logprob = logprob
        self.bytes = Array(token.utf8)
    }
    enum CodingKeys: String, CodingKey { case token, logprob, bytes }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(token, forKey: .token)
        try container.encode(logprob, forKey: .logprob)
        try container.encode(bytes.map { $0.map(Int.init) }, forKey: .bytes)
    }
}

/// One generated token in the chat logprobs format.
public struct ChatTokenLogprob: Encodable, Sendable, Equatable {
    public var token: String
    public var logprob: Double
    public var bytes: [UInt8]?
    public var topLogprobs: [ChatTopLogprob]
    public init(token: String, logprob: Double, topLogprobs: [ChatTopLogprob]) {
        self.token = token
        self.logprob = logprob
        self.bytes = Array(token.utf8)
        self.topLogprobs = topLogprobs
    }
    enum CodingKeys: String, CodingKey { case token, logprob, bytes, topLogprobs = "top_logprobs" }
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
    public var content: [ChatTokenLogprob]
    public init(content: [ChatTokenLogprob]) { self.content = content }
    enum CodingKeys: String, CodingKey { case content, refusal }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(content, forKey: .content)
        try container.encode(String?.none, forKey: .refusal)
    }
}

/// The assistant's message of a chat choice.
public struct ChatResponseMessage: Encodable, Sendable, Equatable {
    public var role = "assistant"
    public var content: String?
    public init(content: String?) { self.content = content }
    enum CodingKeys: String, CodingKey { case role, content, refusal }
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
    public var index: Int
    public var content: Content
    public var logprobs: ChatLogprobs?
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
    public var id: String
    public var object = "chat.completion"
    public var created: Int
    public var model: String
    public var choices: [ChatChoice]
    public var usage: Usage
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
    public var role: String?
    public var content: String?
    public init(role: String? = nil, content: String? = nil) {
        self.role = role
        self.content = content
    }
    enum CodingKeys: String, CodingKey { case role, content }
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
