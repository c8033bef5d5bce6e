/// Parses the tokens of one tag into expressions, with Jinja's operator precedence (lowest
/// first): conditional, `or`, `and`, `not`, comparisons and `in`, `+ -`, `~`, `* / // %`, `**`,
/// unary `- +`, then postfix access, calls, filters and tests.
struct JinjaExpressionParser {
    let tokens: [JinjaToken]
    var index = 0
    /// Line of the tag, for errors at its end.
    let line: Int
    /// What the tag's end is called in messages ("end of print statement", …).
    let endName: String
    private var depth = 0
    /// Nesting limit, so that `((((…` cannot overflow the stack while parsing or evaluating.
    static let maxDepth = 200

    init(tokens: [JinjaToken], line: Int, endName: String) {
        self.tokens = tokens
        self.line = line
        self.endName = endName
    }

    var current: JinjaToken? { index < tokens.count ? tokens[index] : nil }
    var atEnd: Bool { index >= tokens.count }

    func error(_ message: String) -> ChatTemplateError {
        .syntax("line \(current?.line ?? line): \(message)")
    }

    func describeCurrent() -> String { current?.describe ?? endName }

    mutating func skipOp(_ op: String) -> Bool {
        if current?.isOp(op) == true { index += 1; return true }
        return false
    }

    mutating func skipName(_ name: String) -> Bool {
        if current?.isName(name) == true { index += 1; return true }
        return false
    }

    mutating func expectOp(_ op: String) throws {
        guard skipOp(op) else { throw error("expected token '\(op)', got \(describeCurrent())") }
    }

    mutating func expectName() throws -> String {
        guard let token = current, token.kind == .name else {
            throw error("expected token 'name', got \(describeCurrent())")
        }
        index += 1
        return token.text
    }

    /// Throws unless every token was consumed.
    func expectEnd() throws {
        if let token = current { throw error("expected token 'end of statement block', got \(token.describe)") }
    }

    private mutating func enter() throws {
        depth += 1
        if depth > Self.maxDepth { throw error("expression nested too deeply") }
    }

    /// Counts one more link of a left-associative chain (`a + b + c`, `x.y.z`, `v|f|g`): each
    /// nests the tree one level deeper, and evaluation recurses that deep.
    private mutating func link(_ links: inout Int) throws {
        links += 1
        try enter()
    }

    /// An expression; with `allowTuple`, `a, b` becomes a list (Jinja's tuple).
    mutating func parseExpression(allowTuple: Bool = false, allowConditional: Bool = true) throws -> JinjaExpr {
        let first = allowConditional ? try parseConditional() : try parseOr()
        guard allowTuple, current?.isOp(",") == true else { return first }
        var items = [first]
        while skipOp(",") {
            if atEnd || current?.isOp(")") == true { break }
            items.append(allowConditional ? try parseConditional() : try parseOr())
        }
        return .list(items)
    }

    mutating func parseConditional() throws -> JinjaExpr {
        try enter(); defer { depth -= 1 }
        var expr = try parseOr()
        while skipName("if") {
            let condition = try parseOr()
            let otherwise = skipName("else") ? try parseConditional() : nil
            expr = .conditional(condition: condition, then: expr, otherwise: otherwise)
        }
        return expr
    }

    mutating func parseOr() throws -> JinjaExpr {
        var expr = try parseAnd()
        var links = 0
        defer { depth -= links }
        while skipName("or") { try link(&links); expr = .or(expr, try parseAnd()) }
        return expr
    }

    mutating func parseAnd() throws -> JinjaExpr {
        var expr = try parseNot()
        var links = 0
        defer { depth -= links }
        while skipName("and") { try link(&links); expr = .and(expr, try parseNot()) }
        return expr
    }

    mutating func parseNot() throws -> JinjaExpr {
        if skipName("not") {
            try enter(); defer { depth -= 1 }
            return .not(try parseNot())
        }
        return try parseCompare()
    }

    mutating func parseCompare() throws -> JinjaExpr {
        let first = try parseMath1()
        var rest: [(String, JinjaExpr)] = []
        var links = 0
        defer { depth -= links }
        while let token = current {
            if rest.count > links { try link(&links) }
            if token.kind == .op, ["==", "!=", "<", ">", "<=", ">="].contains(token.text) {
                index += 1
                rest.append((token.text, try parseMath1()))
            } else if token.isName("in") {
                index += 1
                rest.append(("in", try parseMath1()))
            } else if token.isName("not"), index + 1 < tokens.count, tokens[index + 1].isName("in") {
                index += 2
                rest.append(("notin", try parseMath1()))
            } else {
                break
            }
        }
        return rest.isEmpty ? first : .compare(first, rest)
    }

    mutating func parseMath1() throws -> JinjaExpr {
        var expr = try parseConcat()
        var links = 0
        defer { depth -= links }
        while let token = current, token.isOp("+") || token.isOp("-") {
            index += 1
            try link(&links)
            expr = .binary(token.text, expr, try parseConcat())
        }
        return expr
    }

    mutating func parseConcat() throws -> JinjaExpr {
        var expr = try parseMath2()
        var links = 0
        defer { depth -= links }
        while skipOp("~") { try link(&links); expr = .binary("~", expr, try parseMath2()) }
        return expr
    }

    mutating func parseMath2() throws -> JinjaExpr {
        var expr = try parsePow()
        var links = 0
        defer { depth -= links }
        while let token = current, token.kind == .op, ["*", "/", "//", "%"].contains(token.text) {
            index += 1
            try link(&links)
            expr = .binary(token.text, expr, try parsePow())
        }
        return expr
    }

    mutating func parsePow() throws -> JinjaExpr {
        var expr = try parseUnary(withFilter: true)
        var links = 0
        defer { depth -= links }
        while skipOp("**") { try link(&links); expr = .binary("**", expr, try parseUnary(withFilter: true)) }
        return expr
    }

    mutating func parseUnary(withFilter: Bool) throws -> JinjaExpr {
        try enter(); defer { depth -= 1 }
        var expr: JinjaExpr
        if skipOp("-") {
            expr = .negate(try parseUnary(withFilter: false))
        } else if skipOp("+") {
            expr = .plus(try parseUnary(withFilter: false))
        } else {
            expr = try parsePrimary()
        }
        expr = try parsePostfix(expr)
        return withFilter ? try parseFilterAndTest(expr) : expr
    }

    mutating func parsePrimary() throws -> JinjaExpr {
        guard let token = current else { throw error("Expected an expression, got '\(endName)'") }
        index += 1
        switch token.kind {
        case .name:
            switch token.text {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(token.text)
            }
        case .string:
            // Adjacent string literals concatenate, as in Python.
            var text = token.text
            while let next = current, next.kind == .string { text += next.text; index += 1 }
            return .literal(.string(text))
        case .integer:
            guard let value = Int(token.text) else { throw error("integer literal too large") }
            return .literal(.int(value))
        case .float:
            return .literal(.double(Double(token.text) ?? .nan))
        case .op:
            switch token.text {
            case "(":
                if skipOp(")") { return .list([]) }
                let expr = try parseExpression(allowTuple: true)
                try expectOp(")")
                return expr
            case "[":
                var items: [JinjaExpr] = []
                while !skipOp("]") {
                    if !items.isEmpty { try expectOp(","); if skipOp("]") { break } }
                    items.append(try parseExpression())
                }
                return .list(items)
            case "{":
                var pairs: [(JinjaExpr, JinjaExpr)] = []
                while !skipOp("}") {
                    if !pairs.isEmpty { try expectOp(","); if skipOp("}") { break } }
                    let key = try parseExpression()
                    try expectOp(":")
                    pairs.append((key, try parseExpression()))
                }
                return .dict(pairs)
            default:
                index -= 1
                throw error("unexpected '\(token.text)'")
            }
        }
    }

    mutating func parsePostfix(_ base: JinjaExpr) throws -> JinjaExpr {
        var expr = base
        var links = 0
        defer { depth -= links }
        while let token = current, token.kind == .op {
            if [".", "[", "("].contains(token.text) { try link(&links) }
            if token.text == "." {
                index += 1
                guard let next = current, next.kind == .name || next.kind == .integer else {
                    throw error("expected name or number after '.'")
                }
                index += 1
                expr = next.kind == .integer ? .item(expr, .literal(.int(Int(next.text) ?? 0))) : .attribute(expr, next.text)
            } else if token.text == "[" {
                index += 1
                expr = try parseSubscript(expr)
            } else if token.text == "(" {
                index += 1
                expr = .call(expr, try parseArguments())
            } else {
                break
            }
        }
        return expr
    }

    /// `[i]` or a slice `[start:stop:step]`; the opening bracket is already consumed.
    mutating func parseSubscript(_ base: JinjaExpr) throws -> JinjaExpr {
        var parts: [JinjaExpr?] = [nil]
        var sawColon = false
        while !skipOp("]") {
            if skipOp(":") {
                sawColon = true
                parts.append(nil)
                guard parts.count <= 3 else { throw error("too many ':' in slice") }
                continue
            }
            guard parts[parts.count - 1] == nil else { throw error("expected ']' , got \(describeCurrent())") }
            parts[parts.count - 1] = try parseExpression(allowTuple: false)
        }
        if !sawColon {
            guard let key = parts[0] else { throw error("Expected an expression, got ']'") }
            return .item(base, key)
        }
        return .slice(base, start: parts[0], stop: parts.count > 1 ? parts[1] : nil, step: parts.count > 2 ? parts[2] : nil)
    }

    /// Call arguments after `(`: positional, then `name=value` keywords.
    mutating func parseArguments() throws -> JinjaArguments {
        var args = JinjaArguments()
        while !skipOp(")") {
            if !args.positional.isEmpty || !args.keyword.isEmpty {
                try expectOp(",")
                if skipOp(")") { break }
            }
            if let token = current, token.kind == .name, index + 1 < tokens.count, tokens[index + 1].isOp("=") {
                index += 2
                args.keyword.append((token.text, try parseExpression()))
            } else {
                guard args.keyword.isEmpty else { throw error("Invalid syntax for function call expression") }
                args.positional.append(try parseExpression())
            }
        }
        return args
    }

    mutating func parseFilterAndTest(_ base: JinjaExpr) throws -> JinjaExpr {
        var expr = base
        var links = 0
        defer { depth -= links }
        while let token = current {
            if token.isOp("|") || token.isName("is") || token.isOp("(") { try link(&links) }
            if token.isOp("|") {
                index += 1
                expr = try parseFilter(expr)
            } else if token.isName("is") {
                index += 1
                let negated = skipName("not")
                let name = try expectDottedName()
                guard JinjaTests.known.contains(name) else { throw error("No test named '\(name)'.") }
                var args = JinjaArguments()
                if skipOp("(") {
                    args = try parseArguments()
                } else if let next = current, [.name, .string, .integer, .float].contains(next.kind) || next.isOp("[") || next.isOp("{"),
                          !next.isName("else"), !next.isName("or"), !next.isName("and"), !next.isName("if")
                {
                    args.positional = [try parsePostfix(try parsePrimary())]
                }
                expr = .test(expr, name, args, negated: negated)
            } else if token.isOp("(") {
                index += 1
                expr = .call(expr, try parseArguments())
            } else {
                break
            }
        }
        return expr
    }

    mutating func parseFilter(_ base: JinjaExpr) throws -> JinjaExpr {
        let name = try expectDottedName()
        guard JinjaFilters.known.contains(name) else { throw error("No filter named '\(name)'.") }
        let args = skipOp("(") ? try parseArguments() : JinjaArguments()
        return .filter(base, name, args)
    }

    mutating func expectDottedName() throws -> String {
        var name = try expectName()
        while current?.isOp(".") == true, index + 1 < tokens.count, tokens[index + 1].kind == .name {
            index += 1
            name += "." + (try expectName())
        }
        return name
    }
}
