import Foundation
import LLMuxCore

/// Typed reads from a JSON object (as `JSONSerialization` returns it) whose failures name the
/// file and the key, for config files written by many different tools.
struct JSONFields {
    /// The object.
    let object: [String: Any]
    /// Path shown in errors.
    let file: String

    /// Parses `data` as a JSON object.
    init(data: Data, file: String) throws {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw LLMuxError.badCheckpoint(file: file, detail: "not valid JSON")
        }
        guard let object = parsed as? [String: Any] else {
            throw LLMuxError.badCheckpoint(file: file, detail: "not a JSON object")
        }
        self.init(object: object, file: file)
    }

    /// Wraps an object already parsed (a nested one, for example).
    init(object: [String: Any], file: String) {
        self.object = object
        self.file = file
    }

    /// An error about `key`.
    func error(_ key: String, _ detail: String) -> LLMuxError {
        .badCheckpoint(file: file, detail: "key '\(key)' \(detail)")
    }

    /// True when the key is absent or JSON null.
    func isMissing(_ key: String) -> Bool { object[key] == nil || object[key] is NSNull }

    /// An integer; nil when absent or null.
    func int(_ key: String) throws -> Int? {
        if isMissing(key) { return nil }
        guard let value = SafetensorsHeader.jsonInt(object[key]!) else { throw error(key, "is not an integer") }
        return value
    }

    /// An integer that must be present.
    func requiredInt(_ key: String) throws -> Int {
        guard let value = try int(key) else {
            throw LLMuxError.badCheckpoint(file: file, detail: "missing required key '\(key)'")
        }
        return value
    }

    /// A number; nil when absent or null.
    func double(_ key: String) throws -> Double? {
        if isMissing(key) { return nil }
        guard let value = object[key] as? Double else { throw error(key, "is not a number") }
        return value
    }

    /// A number that must be present.
    func requiredDouble(_ key: String) throws -> Double {
        guard let value = try double(key) else {
            throw LLMuxError.badCheckpoint(file: file, detail: "missing required key '\(key)'")
        }
        return value
    }

    /// A boolean; nil when absent or null.
    func bool(_ key: String) throws -> Bool? {
        if isMissing(key) { return nil }
        guard let value = object[key] as? Bool else { throw error(key, "is not a boolean") }
        return value
    }

    /// A string; nil when absent or null.
    func string(_ key: String) throws -> String? {
        if isMissing(key) { return nil }
        guard let value = object[key] as? String else { throw error(key, "is not a string") }
        return value
    }

    /// A nested object; nil when absent or null.
    func object(_ key: String) throws -> JSONFields? {
        if isMissing(key) { return nil }
        guard let value = object[key] as? [String: Any] else { throw error(key, "is not an object") }
        return JSONFields(object: value, file: file)
    }

    /// Token ids given either as one integer or as a list (`eos_token_id` is written both ways).
    func tokenIDs(_ key: String) throws -> [TokenID]? {
        if isMissing(key) { return nil }
        let value = object[key]!
        let items = (value as? [Any]) ?? [value]
        return try items.map { item in
            guard let id = SafetensorsHeader.jsonInt(item), id >= 0, id <= Int(Int32.max) else {
                throw error(key, "is not a token id or list of token ids")
            }
            return TokenID(id)
        }
    }
}

/// Serialises a JSON object with sorted keys and indentation, as Hugging Face tools write them.
func prettyJSON(_ object: [String: Any]) throws -> Data {
    var data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    data.append(UInt8(ascii: "\n"))
    return data
}
