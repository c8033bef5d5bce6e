import Engine
import Foundation
import LLMuxCore
import OpenAIAPI
import Tokenization

/// What the HTTP layer needs of an engine: submit requests, read their streams, report load.
/// `UnitEngine` is the real one; tests plug in a unit over a fake executor.
public protocol GenerationBackend: Sendable {
    /// Queues a request; see `UnitEngine.submit`.
    func submit(_ request: GenerationRequest) -> AsyncThrowingStream<SequenceEvent, Error>
    /// Current load, for metrics.
    var stats: UnitStats { get }
    /// Stops taking requests and waits for the running ones (blocking).
    func shutdown()
}

extension UnitEngine: GenerationBackend {}

/// One model as the server exposes it.
public struct ServedModel: Sendable {
    /// The serving name (`--model NAME=…`).
    public let name: String
    /// Context window, vocabulary, EOS.
    public let descriptor: ModelDescriptor
    /// Tokenizer, when the checkpoint has one (without it only token-id prompts work).
    public let tokenizer: Tokenizer?
    /// Unix time the model was loaded (for `/v1/models`).
    public let created: Int
    /// The chat template parsed once at load, or why it could not be parsed (reported per request,
    /// so a model with a broken template still serves completions).
    private let chatTemplate: Result<ChatTemplate, ChatTemplateError>?

    /// A served model.
    public init(descriptor: ModelDescriptor, tokenizer: Tokenizer?, created: Int = Int(Date().timeIntervalSince1970)) {
        self.name = descriptor.id.name
        self.descriptor = descriptor
        self.tokenizer = tokenizer
        self.created = created
        self.chatTemplate = tokenizer?.chatTemplate.map { source in
            Result { () throws(ChatTemplateError) in try ChatTemplate.parse(source) }
        }
    }

    /// Token ids of a completion prompt.
    func tokenize(_ prompt: Prompt) throws(APIError) -> [TokenID] {
        switch prompt {
        case .tokens(let ids):
            var tokens: [TokenID] = []
            tokens.reserveCapacity(ids.count)
            for id in ids {
                guard let token = TokenID(exactly: id), id >= 0, id < descriptor.vocabularySize else {
                    throw APIError.invalidRequest("token id \(id) is outside the vocabulary of \(descriptor.vocabularySize) tokens", param: "prompt")
                }
                tokens.append(token)
            }
            return tokens
        case .text(let text):
            guard let tokenizer else {
                throw APIError.invalidRequest("The model `\(name)` has no tokenizer; send the prompt as token ids", param: "prompt")
            }
            return tokenizer.encode(text, addSpecialTokens: true)
        }
    }

    /// Renders chat messages with the model's template and tokenizes them without adding
    /// special tokens (the template writes them), as vLLM does.
    func chatPromptTokens(_ messages: [ChatMessageInput], addGenerationPrompt: Bool) throws(APIError) -> [TokenID] {
        guard let tokenizer else {
            throw APIError.invalidRequest("The model `\(name)` has no tokenizer, so it cannot serve chat completions")
        }
        guard let chatTemplate else {
            throw APIError.invalidRequest("The model `\(name)` has no chat template (tokenizer_config.json has no chat_template); use /v1/completions")
        }
        let text: String
        do {
            let template = try chatTemplate.get()
            text = try template.render(messages: messages.map { ChatMessage(role: $0.role, content: $0.content) },
                                       addGenerationPrompt: addGenerationPrompt,
                                       bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken)
        } catch let error as ChatTemplateError {
            switch error {
            case .raised(let message): throw APIError.invalidRequest(message, param: "messages")
            case .syntax(let message): throw APIError.invalidRequest("The chat template of `\(name)` does not parse: \(message)")
            case .runtime(let message): throw APIError.invalidRequest("The chat template of `\(name)` failed: \(message)", param: "messages")
            }
        } catch {
            throw APIError.invalidRequest("The chat template of `\(name)` failed: \(error)", param: "messages")
        }
        return tokenizer.encode(text, addSpecialTokens: false)
    }

    /// The text of one token, for log-probabilities.
    func tokenText(_ id: TokenID, asID: Bool = false) -> String {
        guard let tokenizer, !asID else { return "token_id:\(id)" }
        return tokenizer.decode([id])
    }
}

/// Settings of `llmux serve`'s HTTP side.
public struct ServerConfiguration: Sendable {
    /// Address to bind.
    public var host = "127.0.0.1"
    /// Port to bind (0: any free port; the one chosen is printed).
    public var port = 8000
    /// Accepted API keys; empty: no authentication.
    public var apiKeys: Set<String> = []
    /// Sequences that may wait for their first token before new requests get 429.
    public var maxQueue = 1024
    /// Largest request body in bytes (413 beyond).
    public var maxBodySize = 8 << 20
    /// Print the "listening" line and the curl example to standard output.
    public var announce = true

    /// Defaults.
    public init() {}
}

extension ChatTemplate {
    /// Parses with a typed error.
    static func parse(_ source: String) throws(ChatTemplateError) -> ChatTemplate {
        do {
            return try ChatTemplate(source: source)
        } catch let error as ChatTemplateError {
            throw error
        } catch {
            throw ChatTemplateError.syntax("\(error)")
        }
    }
}
