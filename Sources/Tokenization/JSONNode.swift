import Foundation

/// A value parsed by `JSONSerialization` together with its key path, so that every type error can
/// name the exact key (`model.merges[3]`) in the file it came from.
struct JSONNode {
    /// One step from the parent: an object key or an array index.
    enum Step {
        case key(String)
        case index(Int)
    }

    /// The raw value; `nil` when the key is absent or JSON `null`.
    let value: Any?
    /// Path of the parent node; the full path is only spelled out when an error needs it, since
    /// building it for each of 100k vocabulary entries would dominate load time.
    let parentPath: String
    let step: Step?
    /// File name used in error messages.
    let file: String

    init(value: Any?, parentPath: String, step: Step?, file: String) {
        // An exact type test: `is NSNull` on an `Any` holding an NSNumber tries bridging casts,
        // which made loading a large vocabulary several times slower.
        if let value, type(of: value) != NSNull.self { self.value = value } else { self.value = nil }
        self.parentPath = parentPath
        self.step = step
        self.file = file
    }

    /// Dotted key path from the document root, e.g. `model.merges[3]`.
    var path: String {
        switch step {
        case nil: return parentPath
        case .key(let key)?: return parentPath.isEmpty ? key : "\(parentPath).\(key)"
        case .index(let index)?: return "\(parentPath)[\(index)]"
        }
    }

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
        return JSONNode(value: object, parentPath: "", step: nil, file: file)
    }

    /// The member `key`, or an absent node when this is not an object.
    subscript(key: String) -> JSONNode {
        JSONNode(value: (value as? [String: Any])?[key], parentPath: path, step: .key(key), file: file)
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
        let here = path
        return items.enumerated().map { JSONNode(value: $1, parentPath: here, step: .index($0), file: file) }
    }

    /// Members of an object, in no particular order.
    func members() throws -> [(key: String, node: JSONNode)] {
        guard let value else { throw missing() }
        guard let object = value as? [String: Any] else { throw wrongType("an object") }
        let here = path
        return object.map { ($0.key, JSONNode(value: $0.value, parentPath: here, step: .key($0.key), file: file)) }
    }

    func unsupported(_ what: String) -> TokenizerError { .unsupported(file: file, key: path, value: what) }
    func invalid(_ reason: String) -> TokenizerError { .invalidValue(file: file, key: path, reason: reason) }
}
