/// Builds the statement tree from lexed pieces. Block tags nest by recursion on the body, so
/// nesting depth is bounded to keep hostile templates from overflowing the stack.
struct JinjaParser {
    private let pieces: [JinjaPiece]
    private var index = 0
    private var depth = 0
    /// Open blocks, innermost last, for Jinja-style "looking for" messages.
    private var openBlocks: [(name: String, ends: [String])] = []
    static let maxNesting = 100

    /// Parses a whole template.
    static func parse(_ source: String) throws -> [JinjaNode] {
        let (pieces, lastLine) = try JinjaLexer.lex(source)
        var parser = JinjaParser(pieces: pieces, lastLine: lastLine)
        let (body, end) = try parser.parseBody(until: [])
        if let end { throw ChatTemplateError.syntax("line \(end.line): Encountered unknown tag '\(end.name)'.") }
        return body
    }

    /// Line of the end of the template.
    private let lastLine: Int

    private init(pieces: [JinjaPiece], lastLine: Int) {
        self.pieces = pieces
        self.lastLine = lastLine
    }

    private func lookingFor() -> String {
        guard let open = openBlocks.last else { return "" }
        let tags = open.ends.map { "'\($0)'" }.joined(separator: " or ")
        return " Jinja was looking for the following tags: \(tags). The innermost block that needs to be closed is '\(open.name)'."
    }

    /// Parses nodes until one of `ends` (or the end of input when `ends` is empty); returns the
    /// end tag met, with a parser positioned after its name, or nil at end of input.
    private mutating func parseBody(until ends: [String]) throws
        -> ([JinjaNode], (name: String, parser: JinjaExpressionParser, line: Int)?)
    {
        var nodes: [JinjaNode] = []
        while index < pieces.count {
            let piece = pieces[index]
            index += 1
            switch piece {
            case .text(let text):
                nodes.append(.text(text))
            case .output(let tokens, let line):
                var p = JinjaExpressionParser(tokens: tokens, line: line, endName: "end of print statement")
                let expr = try p.parseExpression(allowTuple: true)
                if let extra = p.current {
                    throw ChatTemplateError.syntax("line \(extra.line): expected token 'end of print statement', got \(extra.describe)")
                }
                nodes.append(.output(expr))
            case .statement(let tokens, let line):
                var p = JinjaExpressionParser(tokens: tokens, line: line, endName: "end of statement block")
                guard let first = p.current, first.kind == .name else {
                    throw ChatTemplateError.syntax("line \(line): tag name expected")
                }
                p.index += 1
                if ends.contains(first.text) { return (nodes, (first.text, p, line)) }
                if let node = try parseStatement(first.text, &p, line: line) { nodes.append(node) }
            }
        }
        if !ends.isEmpty {
            throw ChatTemplateError.syntax("line \(lastLine): Unexpected end of template.\(lookingFor())")
        }
        return (nodes, nil)
    }

    /// Parses a nested body, requiring it to end with one of `ends`.
    private mutating func parseBlock(_ name: String, until ends: [String], line: Int) throws
        -> ([JinjaNode], (name: String, parser: JinjaExpressionParser, line: Int))
    {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxNesting else { throw ChatTemplateError.syntax("line \(line): blocks nested too deeply") }
        openBlocks.append((name, ends))
        defer { openBlocks.removeLast() }
        let (body, end) = try parseBody(until: ends)
        guard let end else { throw ChatTemplateError.syntax("line \(lastLine): Unexpected end of template.\(lookingFor())") }
        return (body, end)
    }

    private mutating func parseStatement(_ name: String, _ p: inout JinjaExpressionParser, line: Int) throws -> JinjaNode? {
        switch name {
        case "if":
            var branches: [(JinjaExpr, [JinjaNode])] = []
            var condition = try p.parseExpression(allowTuple: false)
            try p.expectEnd()
            while true {
                let (body, end) = try parseBlock("if", until: ["elif", "else", "endif"], line: line)
                branches.append((condition, body))
                var endParser = end.parser
                switch end.name {
                case "elif":
                    condition = try endParser.parseExpression()
                    try endParser.expectEnd()
                case "else":
                    try endParser.expectEnd()
                    let (otherwise, last) = try parseBlock("if", until: ["endif"], line: line)
                    try last.parser.expectEnd()
                    return .ifChain(branches, otherwise: otherwise)
                default:
                    try endParser.expectEnd()
                    return .ifChain(branches, otherwise: [])
                }
            }
        case "for":
            var targets: [String] = []
            let parenthesized = p.skipOp("(")
            repeat { targets.append(try p.expectName()) } while p.skipOp(",") && p.current?.isName("in") == false
            if parenthesized { try p.expectOp(")") }
            guard p.skipName("in") else { throw p.error("expected token 'in', got \(p.describeCurrent())") }
            let iterable = try p.parseExpression(allowTuple: true, allowConditional: false)
            let filter = p.skipName("if") ? try p.parseExpression() : nil
            if p.current?.isName("recursive") == true { throw p.error("recursive loops are not supported") }
            try p.expectEnd()
            let (body, end) = try parseBlock("for", until: ["endfor", "else"], line: line)
            try end.parser.expectEnd()
            var otherwise: [JinjaNode] = []
            if end.name == "else" {
                let (elseBody, last) = try parseBlock("for", until: ["endfor"], line: line)
                try last.parser.expectEnd()
                otherwise = elseBody
            }
            return .forLoop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise)
        case "set":
            let first = try p.expectName()
            var target = JinjaSetTarget.name(first)
            if p.skipOp(".") {
                target = .attribute(first, try p.expectName())
            } else if p.current?.isOp(",") == true {
                var names = [first]
                while p.skipOp(",") { names.append(try p.expectName()) }
                target = .names(names)
            }
            if p.skipOp("=") {
                let value = try p.parseExpression(allowTuple: true)
                try p.expectEnd()
                return .set(target, value)
            }
            guard case .name(let variable) = target else { throw p.error("expected token '=', got \(p.describeCurrent())") }
            try p.expectEnd()
            let (body, end) = try parseBlock("set", until: ["endset"], line: line)
            try end.parser.expectEnd()
            return .setBlock(variable, body)
        case "macro":
            let macroName = try p.expectName()
            try p.expectOp("(")
            var parameters: [String] = []
            var defaults: [String: JinjaExpr] = [:]
            while !p.skipOp(")") {
                if !parameters.isEmpty { try p.expectOp(",") }
                let parameter = try p.expectName()
                parameters.append(parameter)
                if p.skipOp("=") { defaults[parameter] = try p.parseExpression() }
            }
            try p.expectEnd()
            let (body, end) = try parseBlock("macro", until: ["endmacro"], line: line)
            try end.parser.expectEnd()
            return .macro(JinjaMacro(name: macroName, parameters: parameters, defaults: defaults, body: body))
        case "filter":
            let filterName = try p.expectName()
            guard JinjaFilters.known.contains(filterName) else { throw p.error("No filter named '\(filterName)'.") }
            let args = p.skipOp("(") ? try p.parseArguments() : JinjaArguments()
            try p.expectEnd()
            let (body, end) = try parseBlock("filter", until: ["endfilter"], line: line)
            try end.parser.expectEnd()
            return .filterBlock(filterName, args, body)
        case "generation":
            // transformers' AssistantTracker tag; it only marks spans, so the body renders as is.
            try p.expectEnd()
            let (body, end) = try parseBlock("generation", until: ["endgeneration"], line: line)
            try end.parser.expectEnd()
            return .ifChain([(.literal(.bool(true)), body)], otherwise: [])
        case "break", "continue":
            try p.expectEnd()
            guard openBlocks.contains(where: { $0.name == "for" }) else {
                throw ChatTemplateError.syntax("line \(line): Encountered unknown tag '\(name)'.")
            }
            return name == "break" ? .breakLoop : .continueLoop
        default:
            throw ChatTemplateError.syntax("line \(line): Encountered unknown tag '\(name)'.\(lookingFor())")
        }
    }
}
