import Foundation

/// Sampling and streaming fields shared by `/v1/completions` and `/v1/chat/completions`. Absent
/// fields stay nil and take the server's defaults; ranges are checked by the engine, which names
/// the field in its message.
public struct SamplingFields: Sendable, Equatable {
    /// Most tokens to generate (`max_tokens`, or chat's `max_completion_tokens`); nil: the endpoint's default.
    public var maxTokens: Int?
    /// `temperature`: how random sampling is; 0 always picks the most likely token.
    public var temperature: Double?
    /// `top_p`: sample only from the most likely tokens whose probabilities add up to this mass.
    public var topP: Double?
    /// vLLM's `top_k`: sample only from the K most likely tokens; 0 or less disables it.
    public var topK: Int?
    /// vLLM's `min_p`: drop tokens less likely than this fraction of the most likely token's probability.
    public var minP: Double?
    /// `seed`: makes sampling reproducible; choice i of a request samples with seed + i so choices differ.
    public var seed: Int?
    /// `stop`: strings (one or a list) that end a choice when generated; they are left out of the text.
    public var stop: [String] = []
    /// vLLM's `stop_token_ids`: token ids that end a choice when generated.
    public var stopTokenIDs: [Int] = []
    /// `presence_penalty`: penalizes, once, every token that already appears in the output.
    public var presencePenalty: Double?
    /// `frequency_penalty`: penalizes each token in proportion to how often it already appears in the output.
    public var frequencyPenalty: Double?
    /// vLLM's `repetition_penalty` (Hugging Face style): above 1 discourages tokens seen in the prompt or output.
    public var repetitionPenalty: Double?
    /// vLLM's `ignore_eos`: keep generating past the model's end-of-sequence tokens.
    public var ignoreEOS = false
    /// Choices per prompt.
    public var n = 1
    /// Answer with server-sent events.
    public var stream = false
    /// `stream_options.include_usage`: a last chunk with the usage and no choices.
    public var includeUsage = false
    /// vLLM's `return_tokens_as_token_ids`: logprob tokens are written `token_id:N`.
    public var returnTokensAsTokenIDs = false

    /// Defaults.
    public init() {}

    /// The largest `n` accepted.
    public static let maxChoices = 128

    /// Reads the shared fields; `maxTokensKeys` lists the names of the length limit, first wins.
    public init(_ fields: FieldReader, maxTokensKeys: [String]) throws(APIError) {
        for key in maxTokensKeys {
            if let value = try fields.integer(key) {
                maxTokens = value
                break
            }
        }
        temperature = try fields.double("temperature")
        topP = try fields.double("top_p")
        topK = try fields.integer("top_k")
        minP = try fields.double("min_p")
        seed = try fields.integer("seed")
        stop = try fields.stringOrStrings("stop") ?? []
        stopTokenIDs = try fields.integers("stop_token_ids") ?? []
        presencePenalty = try fields.double("presence_penalty")
        frequencyPenalty = try fields.double("frequency_penalty")
        repetitionPenalty = try fields.double("repetition_penalty")
        ignoreEOS = try fields.bool("ignore_eos") ?? false
        n = try fields.integer("n") ?? 1
        guard n >= 1 && n <= Self.maxChoices else {
            throw APIError.invalidRequest("'n' must be between 1 and \(Self.maxChoices), got \(n)", param: "n")
        }
        if let bestOf = try fields.integer("best_of"), bestOf != n {
            throw APIError.invalidRequest("'best_of' is not supported (it must be absent or equal to 'n')", param: "best_of")
        }
        stream = try fields.bool("stream") ?? false
        returnTokensAsTokenIDs = try fields.bool("return_tokens_as_token_ids") ?? false
        if let options = try fields.object("stream_options") {
            guard stream else {
                throw APIError.invalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.", param: "stream_options")
            }
            includeUsage = try options.bool("include_usage") ?? false
        }
        if let bias = fields.value("logit_bias") {
            guard case .object(let entries) = bias else {
                throw APIError.invalidRequest("'logit_bias' must be an object, got \(bias.typeName)", param: "logit_bias")
            }
            if !entries.isEmpty { throw APIError.invalidRequest("'logit_bias' is not supported", param: "logit_bias") }
        }
    }
}

/// One prompt of `/v1/completions`.
public enum Prompt: Sendable, Equatable {
    /// Text, tokenized by the model's tokenizer.
    case text(String)
    /// Token ids, used as they are.
    case tokens([Int])
}

/// `POST /v1/completions`.
public struct CompletionRequest: Sendable, Equatable {
    /// The name of the served model to use (`model`).
    public var model: String
    /// One or more prompts; each gets `n` choices (indices prompt × n + choice).
    public var prompts: [Prompt]
    /// Prepend the prompt to each choice's text.
    public var echo: Bool
    /// Legacy `logprobs`: the number of most likely tokens reported per generated token.
    public var logprobs: Int?
    /// Sampling, stop and streaming fields; the length limit is read from `max_tokens`.
    public var sampling: SamplingFields

    /// A request.
    public init(model: String, prompts: [Prompt], echo: Bool = false, logprobs: Int? = nil, sampling: SamplingFields = SamplingFields()) {
        self.model = model
        self.prompts = prompts
        self.echo = echo
        self.logprobs = logprobs
        self.sampling = sampling
    }

    /// Decodes and checks a JSON body; unknown fields are ignored.
    public init(json: Data) throws(APIError) {
        let fields = try FieldReader(try JSONValue.parse(json))
        model = try fields.requiredString("model")
        guard let prompt = fields.value("prompt") else { throw APIError.invalidRequest("'prompt' is required", param: "prompt") }
        prompts = try Self.prompts(prompt)
        if let suffix = fields.value("suffix") {
            guard case .string(let text) = suffix else {
                throw APIError.invalidRequest("'suffix' must be a string, got \(suffix.typeName)", param: "suffix")
            }
            if !text.isEmpty {
                throw APIError.invalidRequest("'suffix' is not supported: LLMux does not do fill-in-the-middle completion", param: "suffix")
            }
        }
        echo = try fields.bool("echo") ?? false
        logprobs = try fields.integer("logprobs")
        if let logprobs, logprobs < 0 || logprobs > 20 {
            throw APIError.invalidRequest("'logprobs' must be between 0 and 20, got \(logprobs)", param: "logprobs")
        }
        if echo && logprobs != nil {
            throw APIError.invalidRequest("'echo' together with 'logprobs' is not supported (prompt log-probabilities are not computed)", param: "echo")
        }
        sampling = try SamplingFields(fields, maxTokensKeys: ["max_tokens"])
    }

    static let promptShapes = "a string, a list of strings, a list of token ids or a list of token-id lists"

    static func prompts(_ value: JSONValue) throws(APIError) -> [Prompt] {
        let bad = APIError.invalidRequest("'prompt' must be \(promptShapes), got \(value.typeName)", param: "prompt")
        switch value {
        case .string(let text):
            return [.text(text)]
        case .array(let items):
            guard let first = items.first else { throw APIError.invalidRequest("'prompt' must not be empty", param: "prompt") }
            switch first {
            case .string:
                var texts: [Prompt] = []
                for item in items {
                    guard case .string(let text) = item else { throw bad }
                    texts.append(.text(text))
                }
                return texts
            case .integer, .number:
                return [.tokens(try tokenIDs(items, bad: bad))]
            case .array:
                var lists: [Prompt] = []
                for item in items {
                    guard case .array(let ids) = item else { throw bad }
                    guard !ids.isEmpty else { throw APIError.invalidRequest("'prompt' must not contain an empty token list", param: "prompt") }
                    lists.append(.tokens(try tokenIDs(ids, bad: bad)))
                }
                return lists
            default:
                throw bad
            }
        default:
            throw bad
        }
    }

    private static func tokenIDs(_ items: [JSONValue], bad: APIError) throws(APIError) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(items.count)
        for item in items {
            guard let id = item.integerValue, let int = Int(exactly: id) else { throw bad }
            ids.append(int)
        }
        return ids
    }
}

/// One message of a chat request.
public struct ChatMessageInput: Sendable, Equatable {
    /// Who wrote the message: one of `roles`.
    public var role: String
    /// The text (list-of-parts content is joined with newlines as vLLM does).
    public var content: String
    /// OpenAI's optional participant `name`; read but not passed to the chat template.
    public var name: String?

    /// A message with plain-text content.
    public init(role: String, content: String, name: String? = nil) {
        self.role = role
        self.content = content
        self.name = name
    }

    /// Roles accepted.
    public static let roles: Set<String> = ["system", "developer", "user", "assistant"]
}

/// `POST /v1/chat/completions`.
public struct ChatCompletionRequest: Sendable, Equatable {
    /// The name of the served model to use (`model`).
    public var model: String
    /// The conversation, rendered into the prompt by the model's chat template.
    public var messages: [ChatMessageInput]
    /// Report the log-probability of each generated token.
    public var logprobs: Bool
    /// Most likely tokens reported per position (needs `logprobs`).
    public var topLogprobs: Int?
    /// Ends the rendered prompt with the assistant's header (vLLM's `add_generation_prompt`).
    public var addGenerationPrompt: Bool
    /// Sampling, stop and streaming fields; the length limit is `max_completion_tokens`, else `max_tokens`.
    public var sampling: SamplingFields

    /// A request.
    public init(model: String, messages: [ChatMessageInput], logprobs: Bool = false, topLogprobs: Int? = nil,
                addGenerationPrompt: Bool = true, sampling: SamplingFields = SamplingFields()) {
        self.model = model
        self.messages = messages
        self.logprobs = logprobs
        self.topLogprobs = topLogprobs
        self.addGenerationPrompt = addGenerationPrompt
        self.sampling = sampling
    }

    /// Decodes and checks a JSON body; unknown fields are ignored.
    public init(json: Data) throws(APIError) {
        let fields = try FieldReader(try JSONValue.parse(json))
        model = try fields.requiredString("model")
        guard let list = fields.value("messages") else { throw APIError.invalidRequest("'messages' is required", param: "messages") }
        guard case .array(let items) = list else {
            throw APIError.invalidRequest("'messages' must be a list of messages, got \(list.typeName)", param: "messages")
        }
        guard !items.isEmpty else { throw APIError.invalidRequest("'messages' must not be empty", param: "messages") }
        var messages: [ChatMessageInput] = []
        for (index, item) in items.enumerated() {
            messages.append(try Self.message(item, path: "messages[\(index)]"))
        }
        self.messages = messages
        logprobs = try fields.bool("logprobs") ?? false
        topLogprobs = try fields.integer("top_logprobs")
        if let topLogprobs {
            guard topLogprobs >= 0 && topLogprobs <= 20 else {
                throw APIError.invalidRequest("'top_logprobs' must be between 0 and 20, got \(topLogprobs)", param: "top_logprobs")
            }
            guard logprobs else {
                throw APIError.invalidRequest("'top_logprobs' requires 'logprobs' to be true", param: "top_logprobs")
            }
        }
        addGenerationPrompt = try fields.bool("add_generation_prompt") ?? true
        if let tools = fields.value("tools"), tools != .array([]) {
            throw APIError.invalidRequest("'tools' is not supported", param: "tools")
        }
        if let format = try fields.object("response_format"), let type = try format.string("type"), type != "text" {
            throw APIError.invalidRequest("'response_format' of type '\(type)' is not supported", param: "response_format")
        }
        sampling = try SamplingFields(fields, maxTokensKeys: ["max_completion_tokens", "max_tokens"])
    }

    static func message(_ value: JSONValue, path: String) throws(APIError) -> ChatMessageInput {
        let fields = try FieldReader(value, path: path + ".", what: "'\(path)'")
        let role = try fields.requiredString("role")
        guard ChatMessageInput.roles.contains(role) else {
            throw APIError.invalidRequest(
                "'\(path).role' must be one of \(ChatMessageInput.roles.sorted().map { "'\($0)'" }.joined(separator: ", ")), got '\(role)'",
                param: "\(path).role")
        }
        var content = ""
        if let value = fields.value("content") {
            switch value {
            case .string(let text):
                content = text
            case .array(let parts):
                var texts: [String] = []
                for (index, part) in parts.enumerated() {
                    let partPath = "\(path).content[\(index)]"
                    let partFields = try FieldReader(part, path: partPath + ".", what: "'\(partPath)'")
                    let type = try partFields.requiredString("type")
                    guard type == "text" else {
                        throw APIError.invalidRequest("'\(partPath).type' must be 'text' (only text content is supported), got '\(type)'",
                                                      param: "\(partPath).type")
                    }
                    texts.append(try partFields.requiredString("text"))
                }
                content = texts.joined(separator: "\n")
            default:
                throw APIError.invalidRequest("'\(path).content' must be a string or a list of content parts, got \(value.typeName)",
                                              param: "\(path).content")
            }
        } else if role != "assistant" {
            throw APIError.invalidRequest("'\(path).content' is required", param: "\(path).content")
        }
        return ChatMessageInput(role: role, content: content, name: try fields.string("name"))
    }
}
