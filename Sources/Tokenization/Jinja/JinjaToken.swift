/// One token inside a `{{ … }}` or `{% … %}` tag.
struct JinjaToken: Sendable, Equatable {
    /// Token categories, as Jinja's lexer distinguishes them.
    enum Kind: Sendable, Equatable {
        case name, string, integer, float, op
    }

    let kind: Kind
    /// Names and operators as written; strings already unescaped; numbers without `_`.
    let text: String
    /// 1-based source line, for error messages.
    let line: Int

    func isOp(_ op: String) -> Bool { kind == .op && text == op }
    func isName(_ name: String) -> Bool { kind == .name && text == name }

    /// How Jinja names the token in "expected …, got …" messages.
    var describe: String {
        switch kind {
        case .name, .op: return "'\(text)'"
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        }
    }
}

/// The template split into literal text and tags, after whitespace control has been applied.
enum JinjaPiece: Sendable {
    /// Literal output.
    case text(String)
    /// `{{ … }}`: its tokens and the line it starts on.
    case output([JinjaToken], line: Int)
    /// `{% … %}`: its tokens and the line it starts on.
    case statement([JinjaToken], line: Int)
}

/// Python's `str.isspace`, which Jinja's `\s` and `str.strip()` follow: Unicode White_Space plus
/// the ASCII information separators that Python also counts.
func isPythonSpace(_ scalar: Unicode.Scalar) -> Bool {
    scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
}
