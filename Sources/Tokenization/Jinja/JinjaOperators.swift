import Foundation

/// Arithmetic, concatenation and comparison with Python's semantics: bools act as ints, `/`
/// always yields a float, `//` and `%` round toward negative infinity.
enum JinjaOperators {
    static func unsupported(_ op: String, _ a: JinjaValue, _ b: JinjaValue) -> ChatTemplateError {
        if case .undefined = a { return .runtime("undefined value used in '\(op)'") }
        if case .undefined = b { return .runtime("undefined value used in '\(op)'") }
        return .runtime("unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
    }

    static func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        if op == "~" { return .string(a.pythonString + b.pythonString) }
        switch (op, a, b) {
        case ("+", .string(let x), .string(let y)): return .string(x + y)
        case ("+", .array(let x), .array(let y)): return .array(x + y)
        case ("*", .string(let x), _) where b.intValue != nil && !isBool(b): return .string(try repeated(x, b.intValue ?? 0))
        case ("*", _, .string(let y)) where a.intValue != nil && !isBool(a): return .string(try repeated(y, a.intValue ?? 0))
        case ("*", .array(let x), _) where b.intValue != nil:
            let n = max(0, b.intValue ?? 0)
            guard n <= JinjaInterpreter.maxSequence / max(x.count, 1) else {
                throw ChatTemplateError.runtime("sequence too large")
            }
            return .array(Array(repeating: x, count: n).flatMap { $0 })
        default: break
        }
        if let x = a.intValue, let y = b.intValue { return try integer(op, x, y, a, b) }
        guard let x = a.numberValue, let y = b.numberValue else { throw unsupported(op, a, b) }
        switch op {
        case "+": return .double(x + y)
        case "-": return .double(x - y)
        case "*": return .double(x * y)
        case "/":
            guard y != 0 else { throw ChatTemplateError.runtime("float division by zero") }
            return .double(x / y)
        case "//":
            guard y != 0 else { throw ChatTemplateError.runtime("float floor division by zero") }
            return .double((x / y).rounded(.down))
        case "%":
            guard y != 0 else { throw ChatTemplateError.runtime("float modulo") }
            let r = x.truncatingRemainder(dividingBy: y)
            return .double(r != 0 && (r < 0) != (y < 0) ? r + y : r)
        case "**": return .double(pow(x, y))
        default: throw unsupported(op, a, b)
        }
    }

    private static func isBool(_ v: JinjaValue) -> Bool {
        if case .bool = v { return true }
        return false
    }

    private static func repeated(_ text: String, _ n: Int) throws -> String {
        guard n > 0 else { return "" }
        guard n <= JinjaInterpreter.maxOutput / max(text.utf8.count, 1) else {
            throw ChatTemplateError.runtime("string too large")
        }
        return String(repeating: text, count: n)
    }

    private static func integer(_ op: String, _ x: Int, _ y: Int, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        func checked(_ r: (partialValue: Int, overflow: Bool)) throws -> JinjaValue {
            guard !r.overflow else { throw ChatTemplateError.runtime("integer overflow") }
            return .int(r.partialValue)
        }
        switch op {
        case "+": return try checked(x.addingReportingOverflow(y))
        case "-": return try checked(x.subtractingReportingOverflow(y))
        case "*": return try checked(x.multipliedReportingOverflow(by: y))
        case "/":
            guard y != 0 else { throw ChatTemplateError.runtime("division by zero") }
            return .double(Double(x) / Double(y))
        case "//", "%":
            guard y != 0 else { throw ChatTemplateError.runtime("integer division or modulo by zero") }
            guard !(x == .min && y == -1) else { throw ChatTemplateError.runtime("integer overflow") }
            var q = x / y
            var r = x % y
            if r != 0 && (r < 0) != (y < 0) { q -= 1; r += y }
            return .int(op == "//" ? q : r)
        case "**":
            if y < 0 { return .double(pow(Double(x), Double(y))) }
            var result = 1
            for _ in 0..<min(y, 64) {
                let (p, overflow) = result.multipliedReportingOverflow(by: x)
                guard !overflow else { throw ChatTemplateError.runtime("integer overflow") }
                result = p
            }
            if y > 64, abs(x) > 1 { throw ChatTemplateError.runtime("integer overflow") }
            if y > 64, x == -1 { return .int(y % 2 == 0 ? 1 : -1) }
            return .int(result)
        default: throw unsupported(op, a, b)
        }
    }

    /// Python `==`: numbers compare by value across int/float/bool; undefined equals undefined.
    static func equal(_ a: JinjaValue, _ b: JinjaValue) -> Bool {
        if let x = a.numberValue, let y = b.numberValue { return x == y }
        switch (a, b) {
        case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
        case (.none, .none), (.undefined, .undefined): return true
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.pairs.allSatisfy { pair in y[pair.key].map { equal(pair.value, $0) } ?? false }
        default: return false
        }
    }

    /// Python ordering for numbers, strings (by code point) and lists.
    static func less(_ a: JinjaValue, _ b: JinjaValue, _ op: String) throws -> Bool {
        if let x = a.numberValue, let y = b.numberValue { return x < y }
        switch (a, b) {
        case (.string(let x), .string(let y)):
            return x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars)
        case (.array(let x), .array(let y)):
            for (u, v) in zip(x, y) where !equal(u, v) { return try less(u, v, op) }
            return x.count < y.count
        default:
            throw ChatTemplateError.runtime("'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    static func contains(_ container: JinjaValue, _ item: JinjaValue) throws -> Bool {
        switch container {
        case .string(let text):
            guard case .string(let needle) = item else {
                throw ChatTemplateError.runtime("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return JinjaStrings.find(needle, in: text) != nil
        case .array(let array): return array.contains { equal($0, item) }
        case .object(let object):
            guard case .string(let key) = item else { return false }
            return object[key] != nil
        case .undefined: return false
        default: throw ChatTemplateError.runtime("argument of type '\(container.typeName)' is not iterable")
        }
    }

    static func compare(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> Bool {
        switch op {
        case "==": return equal(a, b)
        case "!=": return !equal(a, b)
        case "<": return try less(a, b, op)
        case ">": return try less(b, a, op)
        case "<=": return try !less(b, a, op)
        case ">=": return try !less(a, b, op)
        case "in": return try contains(b, a)
        case "notin": return try !contains(b, a)
        default: throw ChatTemplateError.runtime("unknown comparison '\(op)'")
        }
    }
}
