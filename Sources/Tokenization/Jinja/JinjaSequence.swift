/// Python sequence protocol helpers: iteration, length and slice index arithmetic.
enum JinjaSequence {
    /// Items of an iterable: list elements, dict keys, string characters (code points);
    /// undefined iterates as empty, like Jinja's Undefined.
    static func items(_ value: JinjaValue) throws -> [JinjaValue] {
        switch value {
        case .array(let array): return array
        case .object(let object): return object.keys.map { .string($0) }
        case .string(let text): return text.unicodeScalars.map { .string(String(Character($0))) }
        case .undefined: return []
        default: throw ChatTemplateError.runtime("'\(value.typeName)' object is not iterable")
        }
    }

    /// `len(value)`, or nil for values without a length. Strings count code points, as Python.
    static func length(_ value: JinjaValue) throws -> Int? {
        switch value {
        case .array(let array): return array.count
        case .object(let object): return object.count
        case .string(let text): return text.unicodeScalars.count
        case .undefined: return 0
        default: return nil
        }
    }

    /// The indices `range(count)[start:stop:step]` selects, following Python's rules for
    /// negative and out-of-range bounds.
    static func sliceIndices(count: Int, start: Int?, stop: Int?, step: Int?) throws -> [Int] {
        let step = step ?? 1
        guard step != 0 else { throw ChatTemplateError.runtime("slice step cannot be zero") }
        func clamp(_ value: Int?, default fallback: Int, low: Int, high: Int) -> Int {
            guard var v = value else { return fallback }
            if v < 0 { v = v &+ count }
            return min(max(v, low), high)
        }
        var result: [Int] = []
        if step > 0 {
            var i = clamp(start, default: 0, low: 0, high: count)
            let end = clamp(stop, default: count, low: 0, high: count)
            while i < end {
                result.append(i)
                let (next, overflow) = i.addingReportingOverflow(step)
                if overflow { break }
                i = next
            }
        } else {
            var i = clamp(start, default: count - 1, low: -1, high: count - 1)
            let end = clamp(stop, default: -1, low: -1, high: count - 1)
            while i > end {
                result.append(i)
                let (next, overflow) = i.addingReportingOverflow(step)
                if overflow { break }
                i = next
            }
        }
        return result
    }
}

extension JinjaInterpreter {
    /// Items of an iterable value, bounded so a template cannot exhaust memory.
    func iterate(_ value: JinjaValue) throws -> [JinjaValue] {
        if case .none = value { throw ChatTemplateError.runtime("'NoneType' object is not iterable") }
        return try JinjaSequence.items(value)
    }
}
