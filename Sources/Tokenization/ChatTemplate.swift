import Foundation

/// One chat turn as a template sees it: `message.role` and `message.content`.
public struct ChatMessage: Sendable, Equatable {
    /// "system", "user", "assistant", or another role the template understands.
    public var role: String
    /// The turn's text.
    public var content: String

    /// A message with `role` and `content`.
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// Why a chat template could not be parsed or rendered.
public enum ChatTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The template source is malformed; the message starts with "line N: ".
    case syntax(String)
    /// The template called `raise_exception(message)`; the payload is exactly that message.
    case raised(String)
    /// Evaluation failed (undefined attribute access, type errors, limits).
    case runtime(String)

    /// A human-readable description that names the kind of failure.
    public var description: String {
        switch self {
        case .syntax(let message): return "chat template syntax error: \(message)"
        case .raised(let message): return message
        case .runtime(let message): return "chat template error: \(message)"
        }
    }
}

/// A Hugging Face chat template (a Jinja2 program), parsed once and rendered per request the way
/// transformers' `apply_chat_template` does: `trim_blocks` and `lstrip_blocks` on, loop controls,
/// `raise_exception`, `strftime_now` and a non-escaping `tojson`.
public struct ChatTemplate: Sendable {
    private let nodes: [JinjaNode]
    /// The clock `strftime_now` reads; tests replace it to get a fixed date.
    public var now: @Sendable () -> Date = { Date() }

    /// Parses `source`; throws `ChatTemplateError.syntax` naming the offending line.
    public init(source: String) throws {
        nodes = try JinjaParser.parse(source)
    }

    /// Renders a prompt. The template sees `messages` (dicts with `role` and `content`),
    /// `add_generation_prompt`, `bos_token` and `eos_token` (empty when nil), plus `extraContext`
    /// (for example `tools` or `date_string`), which may override those.
    /// Throws `ChatTemplateError.raised` for `raise_exception`, `.runtime` for evaluation errors.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String?, eosToken: String?,
                       extraContext: [String: JinjaValue] = [:]) throws -> String {
        var globals: [String: JinjaValue] = [
            "messages": .array(messages.map { .object(JinjaObject([("role", .string($0.role)), ("content", .string($0.content))])) }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken ?? ""),
            "eos_token": .string(eosToken ?? ""),
        ]
        globals.merge(extraContext) { $1 }
        return try render(context: globals)
    }

    /// Renders with a context given in full, for callers whose messages carry more than role
    /// and content (tool calls, images); nothing is added to `context`.
    public func render(context: [String: JinjaValue]) throws -> String {
        try JinjaInterpreter(globals: context, now: now).render(nodes)
    }
}
