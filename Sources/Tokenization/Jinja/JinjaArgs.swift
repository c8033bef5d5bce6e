/// Evaluated call arguments, read the way Python binds a signature: by position or by keyword.
struct JinjaArgs {
    let positional: [JinjaValue]
    let keyword: [(String, JinjaValue)]
    let function: String

    /// The argument at `position` or named `name`, or nil when not given.
    func value(_ position: Int, _ name: String) -> JinjaValue? {
        if position >= 0, position < positional.count { return positional[position] }
        return keyword.first { $0.0 == name }?.1
    }

    func string(_ position: Int, _ name: String, default fallback: String? = nil) throws -> String? {
        guard let v = value(position, name), v != .none else { return fallback }
        guard case .string(let s) = v else {
            throw ChatTemplateError.runtime("\(function)() argument '\(name)' must be str, not \(v.typeName)")
        }
        return s
    }

    func int(_ position: Int, _ name: String, default fallback: Int? = nil) throws -> Int? {
        guard let v = value(position, name), v != .none else { return fallback }
        guard let i = v.intValue else {
            throw ChatTemplateError.runtime("\(function)() argument '\(name)' must be int, not \(v.typeName)")
        }
        return i
    }

    func bool(_ position: Int, _ name: String, default fallback: Bool) -> Bool {
        value(position, name)?.isTruthy ?? fallback
    }

    func required(_ position: Int, _ name: String) throws -> JinjaValue {
        guard let v = value(position, name) else {
            throw ChatTemplateError.runtime("\(function)() missing required argument '\(name)'")
        }
        return v
    }
}
