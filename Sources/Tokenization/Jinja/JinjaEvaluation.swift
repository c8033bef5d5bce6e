import Foundation

/// Expression evaluation.
extension JinjaInterpreter {
    /// Names that resolve to callables rather than values; `is defined` treats them as defined,
    /// which Llama 3.2's template relies on (`strftime_now is defined`).
    static let builtinNames: Set<String> = ["range", "namespace", "raise_exception", "strftime_now", "dict", "lipsum", "cycler", "joiner"]

    func evaluate(_ expr: JinjaExpr) throws -> JinjaValue {
        switch expr {
        case .literal(let value):
            return value
        case .name(let name):
            return lookup(name) ?? .undefined
        case .list(let items):
            return .array(try items.map(evaluate))
        case .dict(let pairs):
            var object = JinjaObject()
            for (keyExpr, valueExpr) in pairs {
                let key = try evaluate(keyExpr)
                guard case .string(let text) = key else {
                    throw ChatTemplateError.runtime("only string keys are supported in dict literals, got \(key.typeName)")
                }
                object[text] = try evaluate(valueExpr)
            }
            return .object(object)
        case .attribute(let base, let name):
            return try attribute(of: try evaluate(base), name, describe: base)
        case .item(let base, let key):
            return try item(of: try evaluate(base), try evaluate(key), describe: base)
        case .slice(let base, let start, let stop, let step):
            return try slice(try evaluate(base), start: try start.map(evaluate), stop: try stop.map(evaluate),
                             step: try step.map(evaluate))
        case .call(let callee, let args):
            return try call(callee, args)
        case .filter(let base, let name, let args):
            let value = try evaluate(base)
            let (positional, keyword) = try evaluate(args)
            return try applyFilter(name, to: value, positional, keyword)
        case .test(let base, let name, let args, let negated):
            var value: JinjaValue
            if case .name(let variable) = base, lookup(variable) == nil,
               Self.builtinNames.contains(variable) || macros[variable] != nil
            {
                value = .string("<callable>")
                if name == "callable" { return .bool(!negated) }
            } else {
                value = try evaluate(base)
            }
            let (positional, _) = try evaluate(args)
            let result = try JinjaTests.run(name, value, positional)
            return .bool(result != negated)
        case .not(let inner):
            return .bool(!(try evaluate(inner)).isTruthy)
        case .negate(let inner):
            return try JinjaOperators.binary("-", .int(0), try evaluate(inner))
        case .plus(let inner):
            return try JinjaOperators.binary("+", .int(0), try evaluate(inner))
        case .binary(let op, let lhs, let rhs):
            return try JinjaOperators.binary(op, try evaluate(lhs), try evaluate(rhs))
        case .and(let lhs, let rhs):
            let left = try evaluate(lhs)
            return left.isTruthy ? try evaluate(rhs) : left
        case .or(let lhs, let rhs):
            let left = try evaluate(lhs)
            return left.isTruthy ? left : try evaluate(rhs)
        case .compare(let first, let rest):
            var left = try evaluate(first)
            for (op, rhs) in rest {
                let right = try evaluate(rhs)
                guard try JinjaOperators.compare(op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let condition, let then, let otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(then) }
            return try otherwise.map(evaluate) ?? .undefined
        }
    }

    func evaluate(_ args: JinjaArguments) throws -> ([JinjaValue], [(String, JinjaValue)]) {
        (try args.positional.map(evaluate), try args.keyword.map { ($0.0, try evaluate($0.1)) })
    }

    /// How Jinja names an undefined value in errors: `'x' is undefined` for a variable.
    private func undefinedError(_ expr: JinjaExpr, _ what: String) -> ChatTemplateError {
        switch expr {
        case .name(let name): return .runtime("'\(name)' is undefined")
        case .attribute(let base, let name):
            if case .name(let owner) = base, case .object? = lookup(owner) {
                return .runtime("'dict object' has no attribute '\(name)'")
            }
            return .runtime("'\(name)' is undefined")
        default: return .runtime("undefined value has no \(what)")
        }
    }

    /// `value.name`: object keys; attribute access on undefined is an error, as in Jinja.
    func attribute(of value: JinjaValue, _ name: String, describe: JinjaExpr) throws -> JinjaValue {
        switch value {
        case .object(let object): return object[name] ?? .undefined
        case .undefined: throw undefinedError(describe, "attribute '\(name)'")
        default: return .undefined
        }
    }

    /// `value[key]`: list and string indices (negative from the end), object keys.
    func item(of value: JinjaValue, _ key: JinjaValue, describe: JinjaExpr) throws -> JinjaValue {
        switch (value, key) {
        case (.undefined, _):
            throw undefinedError(describe, "item")
        case (.object(let object), .string(let name)):
            return object[name] ?? .undefined
        case (.array(let array), _):
            guard let i = key.intValue else { return .undefined }
            let index = i < 0 ? array.count + i : i
            return array.indices.contains(index) ? array[index] : .undefined
        case (.string(let text), _):
            guard let i = key.intValue else { return .undefined }
            let scalars = Array(text.unicodeScalars)
            let index = i < 0 ? scalars.count + i : i
            return scalars.indices.contains(index) ? .string(String(Character(scalars[index]))) : .undefined
        default:
            return .undefined
        }
    }

    /// Python slicing for lists and strings.
    func slice(_ value: JinjaValue, start: JinjaValue?, stop: JinjaValue?, step: JinjaValue?) throws -> JinjaValue {
        func bound(_ v: JinjaValue?) throws -> Int? {
            guard let v, v != .none else { return nil }
            guard let i = v.intValue else { throw ChatTemplateError.runtime("slice indices must be integers or None") }
            return i
        }
        let indices = try JinjaSequence.sliceIndices(count: try JinjaSequence.length(value) ?? 0, start: try bound(start),
                                                     stop: try bound(stop), step: try bound(step))
        switch value {
        case .array(let array): return .array(indices.map { array[$0] })
        case .string(let text):
            let scalars = Array(text.unicodeScalars)
            var view = String.UnicodeScalarView()
            view.append(contentsOf: indices.map { scalars[$0] })
            return .string(String(view))
        case .undefined: throw ChatTemplateError.runtime("undefined value is not subscriptable")
        default: throw ChatTemplateError.runtime("'\(value.typeName)' object is not subscriptable")
        }
    }

    /// Calls: methods on strings/dicts/lists, macros, and global functions.
    private func call(_ callee: JinjaExpr, _ args: JinjaArguments) throws -> JinjaValue {
        let (positional, keyword) = try evaluate(args)
        switch callee {
        case .attribute(let base, let name):
            let receiver = try evaluate(base)
            if case .object(let object) = receiver, name == "cycle", object["index0"] != nil, object["revindex0"] != nil {
                // `loop.cycle(a, b, …)` picks by iteration index.
                guard let i = object["index0"]?.intValue, !positional.isEmpty else {
                    throw ChatTemplateError.runtime("no items for cycling given")
                }
                return positional[i % positional.count]
            }
            if let result = try JinjaMethods.call(name, on: receiver, positional, keyword) { return result }
            if case .undefined = receiver { throw undefinedError(base, "attribute '\(name)'") }
            throw ChatTemplateError.runtime("'\(receiver.typeName) object' has no callable attribute '\(name)'")
        case .name(let name):
            if lookup(name) == nil {
                if let macro = macros[name] { return try callMacro(macro, positional, keyword) }
                if let result = try callGlobal(name, positional, keyword) { return result }
            }
            throw ChatTemplateError.runtime(lookup(name) == nil ? "'\(name)' is undefined" : "'\(name)' is not callable")
        default:
            throw ChatTemplateError.runtime("object is not callable")
        }
    }
}
