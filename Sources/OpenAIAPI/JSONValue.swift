import Foundation

/// A JSON document decoded without a schema, so that request fields can be checked one by one
/// with messages that name the field ("'temperature' must be a number") and unknown fields are
/// simply never read.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number written without a fraction or exponent that fits in 64 bits.
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses `data`; malformed JSON becomes a 400 that quotes the parser.
    public static func parse(_ data: Data) throws(APIError) -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: data)
        } catch let DecodingError.dataCorrupted(context) {
            let detail = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
                ?? context.debugDescription
            throw APIError.invalidRequest("We could not parse the JSON body of your request: \(detail)")
        } catch {
            throw APIError.invalidRequest("We could not parse the JSON body of your request: \(error)")
        }
    }

    /// The name of the JSON type, for messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer, .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The value as a Double when it is a number.
    public var doubleValue: Double? {
        switch self {
        case .integer(let value): return Double(value)
        case .number(let value): return value
        default: return nil
        }
    }

    /// The value as an integer when it is a number without a fractional part.
    public var integerValue: Int64? {
        switch self {
        case .integer(let value): return value
        case .number(let value):
            guard value.rounded() == value, abs(value) < 9.2e18 else { return nil }
            return Int64(value)
        default: return nil
        }
    }
}

extension JSONValue: Decodable {
    /// Decodes any JSON document; a number that decodes as `Int64` becomes `.integer`, any other `.number`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}

/// Reads the fields of one JSON object with messages naming each bad field. A field given as
/// `null` reads as absent.
public struct FieldReader: Sendable {
    /// The object's members.
    public let members: [String: JSONValue]
    /// Prefix for field names in messages (`messages[0].`).
    public let path: String

    /// A reader over `value`, which must be an object.
    public init(_ value: JSONValue, path: String = "", what: String = "The request body") throws(APIError) {
        guard case .object(let members) = value else {
            throw APIError.invalidRequest("\(what) must be a JSON object, got \(value.typeName)", param: path.isEmpty ? nil : String(path.dropLast()))
        }
        self.members = members
        self.path = path
    }

    /// The value of `key` unless absent or null.
    public func value(_ key: String) -> JSONValue? {
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    private func name(_ key: String) -> String { path + key }

    private func mismatch(_ key: String, _ expected: String, _ got: JSONValue) -> APIError {
        APIError.invalidRequest("'\(name(key))' must be \(expected), got \(got.typeName)", param: name(key))
    }

    /// A required string.
    public func requiredString(_ key: String) throws(APIError) -> String {
        guard let value = try string(key) else {
            throw APIError.invalidRequest("'\(name(key))' is required", param: name(key))
        }
        return value
    }

    /// An optional string.
    public func string(_ key: String) throws(APIError) -> String? {
        guard let value = value(key) else { return nil }
        guard case .string(let text) = value else { throw mismatch(key, "a string", value) }
        return text
    }

    /// An optional number.
    public func double(_ key: String) throws(APIError) -> Double? {
        guard let value = value(key) else { return nil }
        guard let number = value.doubleValue else { throw mismatch(key, "a number", value) }
        return number
    }

    /// An optional integer (a number with no fractional part).
    public func integer(_ key: String) throws(APIError) -> Int? {
        guard let value = value(key) else { return nil }
        guard let number = value.integerValue, let int = Int(exactly: number) else { throw mismatch(key, "an integer", value) }
        return int
    }

    /// An optional boolean.
    public func bool(_ key: String) throws(APIError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard case .bool(let flag) = value else { throw mismatch(key, "a boolean", value) }
        return flag
    }

    /// An optional string or list of strings (as `stop` takes).
    public func stringOrStrings(_ key: String) throws(APIError) -> [String]? {
        guard let value = value(key) else { return nil }
        switch value {
        case .string(let text): return [text]
        case .array(let items):
            var strings: [String] = []
            for item in items {
                guard case .string(let text) = item else { throw mismatch(key, "a string or a list of strings", value) }
                strings.append(text)
            }
            return strings
        default: throw mismatch(key, "a string or a list of strings", value)
        }
    }

    /// An optional list of integers.
    public func integers(_ key: String) throws(APIError) -> [Int]? {
        guard let value = value(key) else { return nil }
        guard case .array(let items) = value else { throw mismatch(key, "a list of integers", value) }
        var numbers: [Int] = []
        for item in items {
            guard let number = item.integerValue, let int = Int(exactly: number) else { throw mismatch(key, "a list of integers", value) }
            numbers.append(int)
        }
        return numbers
    }

    /// An optional nested object.
    public func object(_ key: String) throws(APIError) -> FieldReader? {
        guard let value = value(key) else { return nil }
        guard case .object = value else { throw mismatch(key, "an object", value) }
        return try FieldReader(value, path: name(key) + ".")
    }
}
