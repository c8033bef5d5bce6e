import Foundation

/// A value parsed by `JSONSerialization` together with its key path, so that every type error can
/// name the exact key (`model.merges[3]`) in the file it came from.
struct JSONNode {
    /// The raw value; `nil` when the key is absent or JSON `null`.
    let value: Any?
    /// Dotted key path from the document root.
    let path: String
    /// File name used in error messages.
    let file: String

    /// Parses `data` whose top level must be an object.
    static func parse(_ data: Data, file: String) throws -> JSONNode {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw TokenizerError.invalidJSON(file: file, reason: "\(error.localizedDescription)")
        }
        guard object is [String: Any] else {
            throw TokenizerError.invalidJSON(file: file, reason: "top level is not an object")
        }
        return JSONNode(value: object, path: "", file: file)
    }

    /// The member `key`, or an absent node when this is not an object.
    subscript(key: String) -> JSONNode {
        let child = (value as? [String: Any])?[key]
        return JSONNode(value: child is NSNull ? nil : child, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    /// Whether the key is absent or null.
    var isNull: Bool { value == nil }

    func missing() -> TokenizerError { .missingKey(file: file, key: path) }
    func wrongType(_ expected: String) -> TokenizerError { .wrongType(file: file, key: path, expected: expected) }

    func string() throws -> String {
        guard let value else { throw missing() }
        guard let text = value as? String else { throw wrongType("a string") }
        return text
    }

    func optionalString() throws -> String? { isNull ? nil : try string() }

    func int() throws -> Int {
        guard let value else { throw missing() }
        if let number = value as? NSNumber, !Self.isBoolean(number), let exact = Int(exactly: number.doubleValue) {
            return exact
        }
        throw wrongType("an integer")
    }

    func bool(default fallback: Bool) throws -> Bool {
        guard let value else { return fallback }
        guard let number = value as? NSNumber, Self.isBoolean(number) else { throw wrongType("a boolean") }
        return number.boolValue
    }

    /// JSONSerialization yields NSNumber for numbers and booleans alike, and `as? Bool` / `as? Int`
    /// accept either; JSON booleans are the ones stored as C `char`.
    private static func isBoolean(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c"
    }

    func array() throws -> [JSONNode] {
        guard let value else { throw missing() }
        guard let items = value as? [Any] else { throw wrongType("an array") }
        return items.enumerated().map { index, item in
            JSONNode(value: item is NSNull ? nil : item, path: "\(path)[\(index)]", file: file)
        }
    }

    /// Members of an object, in no particular order.
    func members() throws -> [(key: String, node: JSONNode)] {
        guard let value else { throw missing() }
        guard let object = value as? [String: Any] else { throw wrongType("an object") }
        return object.keys.map { ($0, self[$0]) }
    }

    func unsupported(_ what: String) -> TokenizerError { .unsupported(file: file, key: path, value: what) }
    func invalid(_ reason: String) -> TokenizerError { .invalidValue(file: file, key: path, reason: reason) }
}
