/// Jinja's built-in tests (`x is defined`, `x is divisibleby 3`, …).
enum JinjaTests {
    /// Test names the parser accepts; anything else is a syntax error, as in Jinja.
    static let known: Set<String> = [
        "defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number", "string",
        "mapping", "iterable", "sequence", "callable", "lower", "upper", "odd", "even", "divisibleby",
        "eq", "equalto", "==", "ne", "!=", "gt", "greaterthan", ">", "ge", ">=", "lt", "lessthan", "<", "le", "<=",
        "in", "sameas", "escaped",
    ]

    static func run(_ name: String, _ value: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
        func arg() throws -> JinjaValue {
            guard let first = args.first else { throw ChatTemplateError.runtime("test '\(name)' needs an argument") }
            return first
        }
        switch name {
        case "defined": return value.isDefined
        case "undefined": return !value.isDefined
        case "none": return value == .none
        case "boolean": if case .bool = value { return true } else { return false }
        case "false": return value == .bool(false)
        case "true": return value == .bool(true)
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return value.numberValue != nil
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .object = value { return true } else { return false }
        case "iterable", "sequence":
            switch value {
            case .array, .object, .string: return true
            // Jinja's Undefined has __iter__ (so it is iterable) but no __getitem__.
            case .undefined: return name == "iterable"
            default: return false
            }
        case "callable": return false
        case "lower": return value.stringValue.map { $0 == $0.lowercased() } ?? false
        case "upper": return value.stringValue.map { $0 == $0.uppercased() } ?? false
        case "odd", "even":
            guard let i = value.intValue else { throw ChatTemplateError.runtime("test '\(name)' needs an integer") }
            return (i % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard let i = value.intValue, let d = try arg().intValue, d != 0 else {
                throw ChatTemplateError.runtime("divisibleby needs non-zero integers")
            }
            return i % d == 0
        case "eq", "equalto", "==": return JinjaOperators.equal(value, try arg())
        case "ne", "!=": return !JinjaOperators.equal(value, try arg())
        case "gt", "greaterthan", ">": return try JinjaOperators.compare(">", value, try arg())
        case "ge", ">=": return try JinjaOperators.compare(">=", value, try arg())
        case "lt", "lessthan", "<": return try JinjaOperators.compare("<", value, try arg())
        case "le", "<=": return try JinjaOperators.compare("<=", value, try arg())
        case "in": return try JinjaOperators.contains(try arg(), value)
        case "sameas":
            // Identity only holds for singletons here: None, True, False.
            let other = try arg()
            switch (value, other) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            // CPython caches small ints, so `1 is 1` holds there.
            case (.int(let a), .int(let b)): return a == b && (-5...256).contains(a)
            default: return false
            }
        case "escaped": return false
        default: throw ChatTemplateError.runtime("No test named '\(name)'.")
        }
    }
}
