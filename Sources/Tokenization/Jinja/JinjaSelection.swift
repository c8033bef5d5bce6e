/// The higher-order filters: `map`, `select`/`reject`, `selectattr`/`rejectattr`, and ordering.
extension JinjaInterpreter {
    func selection(_ name: String, _ value: JinjaValue, _ args: JinjaArgs) throws -> JinjaValue {
        let items = try JinjaSequence.items(value)
        switch name {
        case "map":
            if let attribute = try args.string(-1, "attribute") {
                let fallback = args.keyword.first { $0.0 == "default" }?.1
                return .array(try items.map { item in
                    let v = try path(item, attribute)
                    return v.isDefined ? v : (fallback ?? v)
                })
            }
            guard case .string(let filter)? = args.positional.first else {
                throw ChatTemplateError.runtime("map() needs a filter name or attribute=")
            }
            guard JinjaFilters.known.contains(filter) else { throw ChatTemplateError.runtime("No filter named '\(filter)'.") }
            let rest = Array(args.positional.dropFirst())
            return .array(try items.map { try applyFilter(filter, to: $0, rest, args.keyword) })
        case "select", "reject":
            let keep = name == "select"
            return .array(try items.filter { item in
                try passes(item, testAt: 0, args) == keep
            })
        default:
            guard case .string(let attribute)? = args.positional.first else {
                throw ChatTemplateError.runtime("\(name)() needs an attribute name")
            }
            let keep = name == "selectattr"
            return .array(try items.filter { item in
                try passes(try path(item, attribute), testAt: 1, args) == keep
            })
        }
    }

    /// Applies the test named at `position` (with the following arguments), or truthiness.
    private func passes(_ value: JinjaValue, testAt position: Int, _ args: JinjaArgs) throws -> Bool {
        guard position < args.positional.count else { return value.isTruthy }
        guard case .string(let test) = args.positional[position], JinjaTests.known.contains(test) else {
            throw ChatTemplateError.runtime("No test named \(args.positional[position].pythonRepr).")
        }
        return try JinjaTests.run(test, value, Array(args.positional.dropFirst(position + 1)))
    }

    func ordering(_ name: String, _ value: JinjaValue, _ args: JinjaArgs) throws -> JinjaValue {
        let caseSensitive = args.bool(name == "sort" ? 1 : name == "dictsort" ? 0 : 0, "case_sensitive", default: false)
        func key(_ v: JinjaValue) -> JinjaValue {
            if !caseSensitive, case .string(let s) = v { return .string(s.lowercased()) }
            return v
        }
        switch name {
        case "dictsort":
            guard case .object(let object) = value else { throw ChatTemplateError.runtime("dictsort needs a mapping") }
            let byValue = try args.string(1, "by") == "value"
            let reverse = args.bool(2, "reverse", default: false)
            let pairs = try sorted(object.pairs.map { JinjaValue.array([.string($0.key), $0.value]) }, reverse: reverse) { pair in
                key((try? self.item(of: pair, .int(byValue ? 1 : 0), describe: .literal(pair))) ?? .undefined)
            }
            return .array(pairs)
        case "sort":
            let reverse = args.bool(0, "reverse", default: false)
            let attribute = try args.string(2, "attribute")
            return .array(try sorted(try JinjaSequence.items(value), reverse: reverse) { item in
                key(attribute.flatMap { try? self.path(item, $0) } ?? item)
            })
        default:
            let attribute = try args.string(1, "attribute")
            let items = try sorted(try JinjaSequence.items(value), reverse: false) { item in
                key(attribute.flatMap { try? self.path(item, $0) } ?? item)
            }
            return (name == "min" ? items.first : items.last) ?? .undefined
        }
    }

    /// A stable sort by Python ordering of `key(item)`; incomparable items are an error.
    private func sorted(_ items: [JinjaValue], reverse: Bool, key: (JinjaValue) -> JinjaValue) throws -> [JinjaValue] {
        let keyed = items.map { (key($0), $0) }
        var failure: ChatTemplateError?
        let result = keyed.enumerated().sorted { a, b in
            do {
                if try JinjaOperators.less(a.element.0, b.element.0, "<") { return !reverse }
                if try JinjaOperators.less(b.element.0, a.element.0, "<") { return reverse }
            } catch {
                failure = error as? ChatTemplateError
            }
            return a.offset < b.offset
        }
        if let failure { throw failure }
        return result.map { $0.element.1 }
    }
}
