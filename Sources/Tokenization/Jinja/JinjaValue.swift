import Foundation

/// A value inside a chat template: the subset of Python values that Jinja templates handle.
///
/// Arrays also stand in for Python tuples, and objects keep their keys in insertion order because
/// Python dicts do, and templates print them (`tojson`, `items()`) in that order.
public enum JinjaValue: Sendable, Equatable {
    /// Jinja's default `Undefined`: prints as empty, is falsy, iterates as empty.
    case undefined
    /// Python `None`.
    case none
    /// Python `bool`.
    case bool(Bool)
    /// Python `int` (limited to 64 bits; overflow is a runtime error, not a crash).
    case int(Int)
    /// Python `float`.
    case double(Double)
    /// Python `str`.
    case string(String)
    /// Python `list` (or tuple).
    case array([JinjaValue])
    /// Python `dict` with string keys, in insertion order.
    case object(JinjaObject)

    /// Python truthiness: empty strings and containers, zero, `None` and undefined are false.
    public var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .object(let o): return o.count > 0
        }
    }

    /// Whether the value is anything but `.undefined`.
    public var isDefined: Bool {
        if case .undefined = self { return false }
        return true
    }

    /// The string payload, if this is a string.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// A number as a Double (bools count as 0/1, as in Python), else nil.
    var numberValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// An integral value (bools count, as in Python), else nil.
    var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// Python's type name, used in error messages the way Python words them.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array: return "list"
        case .object: return "dict"
        }
    }
}

/// A dict with string keys that remembers insertion order, like a Python dict.
public struct JinjaObject: Sendable, Equatable {
    /// Keys in insertion order.
    public private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    /// An empty object.
    public init() {}

    /// An object with `pairs` in order; a repeated key keeps its first position and last value,
    /// as a Python dict literal does.
    public init(_ pairs: [(String, JinjaValue)]) {
        for (key, value) in pairs { self[key] = value }
    }

    /// The value stored under `key`; assigning `nil` removes it.
    public subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// Number of keys.
    public var count: Int { keys.count }

    /// Key/value pairs in insertion order.
    public var pairs: [(key: String, value: JinjaValue)] {
        keys.map { ($0, storage[$0] ?? .none) }
    }

    /// Python dict equality ignores key order.
    public static func == (lhs: JinjaObject, rhs: JinjaObject) -> Bool {
        lhs.storage == rhs.storage
    }
}

extension JinjaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    /// A string literal is a `.string`.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An integer literal is an `.int`.
    public init(integerLiteral value: Int) { self = .int(value) }
    /// A float literal is a `.double`.
    public init(floatLiteral value: Double) { self = .double(value) }
    /// A boolean literal is a `.bool`.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// An array literal is an `.array`.
    public init(arrayLiteral elements: JinjaValue...) { self = .array(elements) }
    /// A dictionary literal is an `.object` that keeps the literal's key order.
    public init(dictionaryLiteral elements: (String, JinjaValue)...) { self = .object(JinjaObject(elements)) }
}
