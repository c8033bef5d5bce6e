/// Splits template source into text and tag pieces the way Jinja's lexer does with
/// `trim_blocks=True, lstrip_blocks=True`, `keep_trailing_newline=False`: newlines are normalized,
/// one trailing newline is dropped, and `-`/`+` whitespace control is applied to the text.
///
/// It works on Unicode scalars rather than Characters because Python indexes code points, and a
/// combining mark after `{` would otherwise hide the tag inside a grapheme cluster.
struct JinjaLexer {
    private let s: [Unicode.Scalar]
    private var pos = 0
    private var line = 1
    /// Whether the last consumed piece ended with a newline (the start counts as one), which is
    /// when `lstrip_blocks` may strip the indentation before a tag.
    private var lineStarting = true
    private var pieces: [JinjaPiece] = []

    /// Lexes `source` into pieces and the number of its last line (where "unexpected end of
    /// template" is reported), or throws a syntax error naming the line.
    static func lex(_ source: String) throws -> (pieces: [JinjaPiece], lastLine: Int) {
        var lexer = JinjaLexer(source: source)
        try lexer.run()
        return (lexer.pieces, lexer.line)
    }

    private init(source: String) {
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var previousCR = false
        for scalar in source.unicodeScalars {
            if scalar == "\r" { scalars.append("\n"); previousCR = true; continue }
            if scalar == "\n" && previousCR { previousCR = false; continue }
            previousCR = false
            scalars.append(scalar)
        }
        if scalars.last == "\n" { scalars.removeLast() }
        s = scalars
    }

    private func at(_ i: Int) -> Unicode.Scalar? { i < s.count ? s[i] : nil }

    private func matches(_ literal: String, at i: Int) -> Bool {
        var j = i
        for scalar in literal.unicodeScalars {
            guard at(j) == scalar else { return false }
            j += 1
        }
        return true
    }

    private func text(_ range: Range<Int>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: s[range])
        return String(view)
    }

    /// Advances `pos` to `end`, counting the lines passed over.
    private mutating func advance(to end: Int) {
        while pos < end {
            if s[pos] == "\n" { line += 1 }
            pos += 1
        }
    }

    private func syntax(_ message: String, line: Int? = nil) -> ChatTemplateError {
        .syntax("line \(line ?? self.line): \(message)")
    }

    /// Appends literal text that precedes a tag, applying `-` (strip all whitespace) or, without
    /// `+`, lstrip_blocks (strip the indentation of a line holding only the tag).
    private mutating func emitText(_ range: Range<Int>, sign: Unicode.Scalar?, lstrip: Bool) {
        var end = range.upperBound
        if sign == "-" {
            while end > range.lowerBound, isPythonSpace(s[end - 1]) { end -= 1 }
        } else if sign != "+", lstrip {
            var lineStart = end
            while lineStart > range.lowerBound, s[lineStart - 1] != "\n" { lineStart -= 1 }
            let atLine = lineStart > range.lowerBound || lineStarting
            if atLine, lineStart < end, s[lineStart..<end].allSatisfy(isPythonSpace) { end = lineStart }
        }
        if end > range.lowerBound { pieces.append(.text(text(range.lowerBound..<end))) }
    }

    private mutating func run() throws {
        while pos < s.count {
            // Find the next tag opener.
            var k = pos
            var opener: Unicode.Scalar?
            while k + 1 < s.count {
                if s[k] == "{", s[k + 1] == "{" || s[k + 1] == "%" || s[k + 1] == "#" { opener = s[k + 1]; break }
                k += 1
            }
            guard let opener else {
                pieces.append(.text(text(pos..<s.count)))
                advance(to: s.count)
                return
            }
            let sign: Unicode.Scalar? = (at(k + 2) == "-" || at(k + 2) == "+") ? at(k + 2) : nil
            let bodyStart = k + 2 + (sign == nil ? 0 : 1)
            if opener == "%", let rawEnd = rawBeginEnd(from: bodyStart) {
                emitText(pos..<k, sign: sign, lstrip: true)
                advance(to: rawEnd)
                try lexRaw()
                continue
            }
            emitText(pos..<k, sign: sign, lstrip: opener != "{")
            advance(to: bodyStart)
            switch opener {
            case "#": try lexComment()
            case "%": try lexTag(statement: true)
            default: try lexTag(statement: false)
            }
        }
    }

    /// If `{% raw %}` starts here (after the opener and sign), the index just past it; a `-%}`
    /// close also swallows the whitespace that follows.
    private func rawBeginEnd(from start: Int) -> Int? {
        var i = start
        while let c = at(i), isPythonSpace(c) { i += 1 }
        guard matches("raw", at: i) else { return nil }
        i += 3
        while let c = at(i), isPythonSpace(c) { i += 1 }
        if matches("-%}", at: i) {
            i += 3
            while let c = at(i), isPythonSpace(c) { i += 1 }
            return i
        }
        return matches("%}", at: i) ? i + 2 : nil
    }

    /// Emits everything up to `{% endraw %}` as text and consumes the end tag.
    private mutating func lexRaw() throws {
        lineStarting = pos > 0 && s[pos - 1] == "\n"
        var k = pos
        while k + 1 < s.count {
            if s[k] == "{", s[k + 1] == "%" {
                let sign: Unicode.Scalar? = (at(k + 2) == "-" || at(k + 2) == "+") ? at(k + 2) : nil
                var i = k + 2 + (sign == nil ? 0 : 1)
                while let c = at(i), isPythonSpace(c) { i += 1 }
                if matches("endraw", at: i) {
                    i += 6
                    while let c = at(i), isPythonSpace(c) { i += 1 }
                    if let end = blockEnd(at: i) {
                        emitText(pos..<k, sign: sign, lstrip: true)
                        advance(to: end)
                        lineStarting = s[end - 1] == "\n"
                        return
                    }
                }
            }
            k += 1
        }
        throw syntax("Missing end of raw directive")
    }

    /// If a block close (`%}`, `-%}`, `+%}`) starts at `i`, the index past it and the whitespace
    /// it removes: trim_blocks drops one newline after `%}`, `-%}` drops all whitespace.
    private func blockEnd(at i: Int) -> Int? {
        var end: Int
        if matches("+%}", at: i) { return i + 3 }
        if matches("-%}", at: i) {
            end = i + 3
            while let c = at(end), isPythonSpace(c) { end += 1 }
            return end
        }
        guard matches("%}", at: i) else { return nil }
        end = i + 2
        if at(end) == "\n" { end += 1 }
        return end
    }

    private mutating func lexComment() throws {
        var k = pos
        while k + 1 < s.count {
            if s[k] == "#", s[k + 1] == "}" {
                var end = k + 2
                if k > pos, s[k - 1] == "-" {
                    while let c = at(end), isPythonSpace(c) { end += 1 }
                } else if !(k > pos && s[k - 1] == "+"), at(end) == "\n" {
                    end += 1
                }
                advance(to: end)
                lineStarting = s[end - 1] == "\n"
                return
            }
            k += 1
        }
        throw syntax("Missing end of comment tag")
    }

    /// Tokenizes the inside of a tag up to its close; closes inside brackets do not count, as in
    /// Jinja (`{{ {'a': {'b': 1}} }}`).
    private mutating func lexTag(statement: Bool) throws {
        let startLine = line
        var tokens: [JinjaToken] = []
        var brackets: [Unicode.Scalar] = []
        while true {
            while let c = at(pos), isPythonSpace(c) { advance(to: pos + 1) }
            guard let c = at(pos) else {
                throw syntax("unexpected end of template, expected '\(statement ? "%}" : "}}")'", line: startLine)
            }
            if brackets.isEmpty {
                if statement, let end = blockEnd(at: pos) {
                    advance(to: end)
                    lineStarting = s[end - 1] == "\n"
                    pieces.append(.statement(tokens, line: startLine))
                    return
                }
                if !statement, matches("}}", at: pos) || matches("-}}", at: pos) {
                    var end = pos + (c == "-" ? 3 : 2)
                    if c == "-" { while let w = at(end), isPythonSpace(w) { end += 1 } }
                    advance(to: end)
                    lineStarting = s[end - 1] == "\n"
                    pieces.append(.output(tokens, line: startLine))
                    return
                }
            }
            let token = try lexToken()
            if token.kind == .op {
                switch token.text {
                case "(", "[", "{": brackets.append(token.text.unicodeScalars.first ?? "(")
                case ")", "]", "}":
                    let expected: Unicode.Scalar = token.text == ")" ? "(" : token.text == "]" ? "[" : "{"
                    guard brackets.last == expected else { throw syntax("unexpected '\(token.text)'") }
                    brackets.removeLast()
                default: break
                }
            }
            tokens.append(token)
        }
    }

    private static let operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]",
                                    "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"]

    private mutating func lexToken() throws -> JinjaToken {
        let start = pos
        let c = s[pos]
        if c.properties.numericType != nil, ("0"..."9").contains(c) { return lexNumber() }
        if c == "_" || ("a"..."z").contains(c) || ("A"..."Z").contains(c) {
            var end = pos + 1
            while let d = at(end), d == "_" || ("a"..."z").contains(d) || ("A"..."Z").contains(d) || ("0"..."9").contains(d) {
                end += 1
            }
            let token = JinjaToken(kind: .name, text: text(start..<end), line: line)
            advance(to: end)
            return token
        }
        if c == "'" || c == "\"" { return try lexString(quote: c) }
        for op in Self.operators where matches(op, at: pos) {
            let token = JinjaToken(kind: .op, text: op, line: line)
            advance(to: pos + op.unicodeScalars.count)
            return token
        }
        throw syntax("unexpected char \(JinjaValue.pythonStringRepr(String(Character(c)))) at \(pos)")
    }

    /// Integers and floats; `_` separators are allowed between digits as in Python.
    private mutating func lexNumber() -> JinjaToken {
        func digits(_ i: inout Int) -> Bool {
            let begin = i
            while let d = at(i), ("0"..."9").contains(d) || (d == "_" && i > begin && (at(i + 1).map { ("0"..."9").contains($0) } ?? false)) {
                i += 1
            }
            return i > begin
        }
        var i = pos
        _ = digits(&i)
        var isFloat = false
        if at(i) == ".", let d = at(i + 1), ("0"..."9").contains(d) {
            i += 1
            _ = digits(&i)
            isFloat = true
        }
        if at(i) == "e" || at(i) == "E" {
            var j = i + 1
            if at(j) == "+" || at(j) == "-" { j += 1 }
            if digits(&j) { i = j; isFloat = true }
        }
        let raw = text(pos..<i).replacingOccurrences(of: "_", with: "")
        let token = JinjaToken(kind: isFloat ? .float : .integer, text: raw, line: line)
        advance(to: i)
        return token
    }

    /// A quoted string with Python escapes decoded.
    private mutating func lexString(quote: Unicode.Scalar) throws -> JinjaToken {
        let startLine = line
        var i = pos + 1
        var out = String.UnicodeScalarView()
        while let c = at(i) {
            if c == quote {
                advance(to: i + 1)
                return JinjaToken(kind: .string, text: String(out), line: startLine)
            }
            if c == "\\", let e = at(i + 1) {
                i += 2
                switch e {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "0": out.append("\0")
                case "a": out.append("\u{07}")
                case "b": out.append("\u{08}")
                case "f": out.append("\u{0C}")
                case "v": out.append("\u{0B}")
                case "\n": break
                case "x", "u", "U":
                    let width = e == "x" ? 2 : e == "u" ? 4 : 8
                    let hex = i + width <= s.count ? text(i..<i + width) : ""
                    if let code = UInt32(hex, radix: 16), hex.count == width, let scalar = Unicode.Scalar(code) {
                        out.append(scalar)
                        i += width
                    } else {
                        throw syntax("invalid \\\(e) escape in string", line: startLine)
                    }
                case "\\", "'", "\"": out.append(e)
                default: out.append("\\"); out.append(e)
                }
                continue
            }
            out.append(c)
            i += 1
        }
        throw syntax("unexpected char \(JinjaValue.pythonStringRepr(String(Character(quote)))) at \(pos)")
    }
}
