import Foundation

/// Runs a parsed template. One interpreter serves one render, so it can hold mutable state
/// (scopes, output) without any sharing across threads.
final class JinjaInterpreter {
    /// Variable scopes, outermost first. A `for` iteration or macro call pushes one, so that
    /// `{% set %}` inside it does not leak out, as in Jinja.
    var scopes: [[String: JinjaValue]]
    var macros: [String: JinjaMacro] = [:]
    let now: @Sendable () -> Date
    private var callDepth = 0
    /// Loop iterations so far; nested loops could otherwise run for practically forever.
    private var steps = 0
    static let maxSteps = 1_000_000
    /// Limits that turn runaway templates into errors instead of exhausted memory or stack.
    static let maxCallDepth = 50
    static let maxOutput = 64 << 20
    static let maxSequence = 1 << 20

    /// Result of running statements: whether a loop control interrupted them.
    enum Flow { case normal, breakLoop, continueLoop }

    init(globals: [String: JinjaValue], now: @escaping @Sendable () -> Date) {
        scopes = [globals]
        self.now = now
    }

    /// Renders `nodes` into a string.
    func render(_ nodes: [JinjaNode]) throws -> String {
        var out = ""
        _ = try run(nodes, into: &out)
        return out
    }

    func lookup(_ name: String) -> JinjaValue? {
        for scope in scopes.reversed() {
            if let value = scope[name] { return value }
        }
        return nil
    }

    func assign(_ name: String, _ value: JinjaValue) {
        scopes[scopes.count - 1][name] = value
    }

    func run(_ nodes: [JinjaNode], into out: inout String) throws -> Flow {
        for node in nodes {
            let flow = try run(node, into: &out)
            if flow != .normal { return flow }
            if out.utf8.count > Self.maxOutput { throw ChatTemplateError.runtime("template output too large") }
        }
        return .normal
    }

    private func run(_ node: JinjaNode, into out: inout String) throws -> Flow {
        switch node {
        case .text(let text):
            out += text
        case .output(let expr):
            out += try evaluate(expr).pythonString
        case .ifChain(let branches, let otherwise):
            for (condition, body) in branches where try evaluate(condition).isTruthy {
                return try run(body, into: &out)
            }
            return try run(otherwise, into: &out)
        case .forLoop(let targets, let iterable, let filter, let body, let otherwise):
            return try runLoop(targets: targets, iterable: iterable, filter: filter, body: body,
                               otherwise: otherwise, into: &out)
        case .set(let target, let expr):
            try runSet(target, try evaluate(expr))
        case .setBlock(let name, let body):
            var captured = ""
            _ = try run(body, into: &captured)
            assign(name, .string(captured))
        case .macro(let macro):
            macros[macro.name] = macro
        case .filterBlock(let name, let args, let body):
            var captured = ""
            _ = try run(body, into: &captured)
            let (positional, keyword) = try evaluate(args)
            out += try applyFilter(name, to: .string(captured), positional, keyword).pythonString
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    private func runSet(_ target: JinjaSetTarget, _ value: JinjaValue) throws {
        switch target {
        case .name(let name):
            assign(name, value)
        case .names(let names):
            let items = try unpack(value, count: names.count)
            for (name, item) in zip(names, items) { assign(name, item) }
        case .attribute(let name, let attribute):
            // A namespace is shared by reference in Jinja; updating it in the scope that owns it
            // gives the same effect for the way templates use it (`ns` set outside a loop).
            guard let index = scopes.lastIndex(where: { $0[name] != nil }),
                  case .object(var object)? = scopes[index][name]
            else { throw ChatTemplateError.runtime("cannot assign attribute on non-namespace object") }
            object[attribute] = value
            scopes[index][name] = .object(object)
        }
    }

    func unpack(_ value: JinjaValue, count: Int) throws -> [JinjaValue] {
        let items = try iterate(value)
        guard items.count == count else {
            let problem = items.count > count ? "too many values to unpack (expected \(count))"
                : "not enough values to unpack (expected \(count), got \(items.count))"
            throw ChatTemplateError.runtime(problem)
        }
        return items
    }

    private func runLoop(targets: [String], iterable: JinjaExpr, filter: JinjaExpr?, body: [JinjaNode],
                         otherwise: [JinjaNode], into out: inout String) throws -> Flow {
        var items = try iterate(try evaluate(iterable))
        // The `if` clause filters before loop variables are computed, so `loop.length` and
        // `loop.last` count only the kept items, as in Jinja.
        if let filter {
            items = try items.filter { item in
                scopes.append(try bind(targets, item))
                defer { scopes.removeLast() }
                return try evaluate(filter).isTruthy
            }
        }
        if items.isEmpty { return try run(otherwise, into: &out) }
        let count = items.count
        for (i, item) in items.enumerated() {
            steps += 1
            guard steps <= Self.maxSteps else { throw ChatTemplateError.runtime("template ran too many loop iterations") }
            var scope = try bind(targets, item)
            scope["loop"] = .object(JinjaObject([
                ("index", .int(i + 1)), ("index0", .int(i)), ("revindex", .int(count - i)),
                ("revindex0", .int(count - i - 1)), ("first", .bool(i == 0)), ("last", .bool(i == count - 1)),
                ("length", .int(count)), ("depth", .int(1)), ("depth0", .int(0)),
                ("previtem", i > 0 ? items[i - 1] : .undefined),
                ("nextitem", i + 1 < count ? items[i + 1] : .undefined),
            ]))
            scopes.append(scope)
            let flow = try run(body, into: &out)
            scopes.removeLast()
            if flow == .breakLoop { break }
        }
        return .normal
    }

    private func bind(_ targets: [String], _ item: JinjaValue) throws -> [String: JinjaValue] {
        if targets.count == 1 { return [targets[0]: item] }
        let values = try unpack(item, count: targets.count)
        return Dictionary(zip(targets, values), uniquingKeysWith: { $1 })
    }

    /// Calls a macro: parameters bind positionally then by keyword; missing ones take their
    /// defaults or stay undefined, as Jinja allows.
    func callMacro(_ macro: JinjaMacro, _ positional: [JinjaValue], _ keyword: [(String, JinjaValue)]) throws -> JinjaValue {
        guard callDepth < Self.maxCallDepth else { throw ChatTemplateError.runtime("maximum macro recursion depth exceeded") }
        guard positional.count <= macro.parameters.count else {
            throw ChatTemplateError.runtime("macro '\(macro.name)' takes not more than \(macro.parameters.count) argument(s)")
        }
        callDepth += 1
        defer { callDepth -= 1 }
        var scope: [String: JinjaValue] = [:]
        for (name, value) in zip(macro.parameters, positional) { scope[name] = value }
        for (name, value) in keyword {
            guard macro.parameters.contains(name) else {
                throw ChatTemplateError.runtime("macro '\(macro.name)' was invoked with unknown keyword argument '\(name)'")
            }
            scope[name] = value
        }
        // Macros see the template's top-level variables, not the caller's locals.
        // Namespace updates made inside land in the top-level scope and must survive the call.
        let saved = scopes
        scopes = [scopes[0], scope]
        defer {
            let globals = scopes[0]
            scopes = saved
            scopes[0] = globals
        }
        for name in macro.parameters where scope[name] == nil {
            assign(name, try macro.defaults[name].map { try evaluate($0) } ?? .undefined)
        }
        var out = ""
        _ = try run(macro.body, into: &out)
        return .string(out)
    }
}
