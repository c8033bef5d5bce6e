// TEMPORARY: stands in for Tokenization's `ChatTemplate` (the Jinja engine on branch
// helper-jinja) until it lands on main; delete this file then. It has the same API and renders
// ChatML (`<|im_start|>role\ncontent<|im_end|>\n`, after the BOS when the template names
// `bos_token`), which is what the demo model's template produces; any other template is refused.

/// One chat message as templates see it.
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// Why a template could not render.
public enum ChatTemplateError: Error, Sendable, Equatable {
    /// The template called `raise_exception(msg)`.
    case raised(String)
    /// The template does not parse.
    case syntax(String)
    /// Rendering failed.
    case runtime(String)
}

/// A chat template (shim: ChatML only).
public struct ChatTemplate: Sendable {
    private let source: String

    public init(source: String) throws {
        guard source.contains("<|im_start|>") else {
            throw ChatTemplateError.syntax("only ChatML templates are supported until the Jinja engine lands")
        }
        self.source = source
    }

    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String?, eosToken: String?) throws -> String {
        var text = source.contains("bos_token") ? (bosToken ?? "") : ""
        for message in messages { text += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n" }
        if addGenerationPrompt { text += "<|im_start|>assistant\n" }
        return text
    }
}
