import Foundation

/// Why a tokenizer could not be loaded; every message names the file and, where there is one,
/// the JSON key, so a user can fix the checkpoint.
public enum TokenizerError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file could not be read from disk.
    case unreadableFile(file: String, reason: String)
    /// The file is not valid JSON (or its top level is not an object).
    case invalidJSON(file: String, reason: String)
    /// A required key is absent or null.
    case missingKey(file: String, key: String)
    /// A key holds a value of the wrong JSON type.
    case wrongType(file: String, key: String, expected: String)
    /// A component type or option this implementation does not handle.
    case unsupported(file: String, key: String, value: String)
    /// A value of the right type that still makes no sense (a merge of unknown tokens…).
    case invalidValue(file: String, key: String, reason: String)

    /// A one-line message naming the file and key.
    public var description: String {
        switch self {
        case let .unreadableFile(file, reason): return "\(file): cannot be read (\(reason))"
        case let .invalidJSON(file, reason): return "\(file): not valid JSON (\(reason))"
        case let .missingKey(file, key): return "\(file): missing required key '\(key)'"
        case let .wrongType(file, key, expected): return "\(file): \(key) must be \(expected)"
        case let .unsupported(file, key, value): return "\(file): \(key) '\(value)' is not supported"
        case let .invalidValue(file, key, reason): return "\(file): \(key) is invalid: \(reason)"
        }
    }
}
