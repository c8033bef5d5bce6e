/// A token id as stored in vocabularies and sent to kernels.
public typealias TokenID = Int32

/// Names one model served by a unit (its `--model NAME=…` name).
public struct ModelID: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The model's serving name.
    public let name: String
    /// Wraps a serving name.
    public init(_ name: String) { self.name = name }
    /// Allows `"llama"` where a `ModelID` is expected.
    public init(stringLiteral value: String) { self.name = value }
    /// The serving name.
    public var description: String { name }
}

/// Identifies one sequence (one request, or one of its `n` choices) inside a unit.
public struct SequenceID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// A unit-wide unique number.
    public let value: UInt64
    /// Wraps a number.
    public init(_ value: UInt64) { self.value = value }
    /// Orders by number (which is arrival order when numbers come from a counter).
    public static func < (lhs: SequenceID, rhs: SequenceID) -> Bool { lhs.value < rhs.value }
    /// `seq-N`.
    public var description: String { "seq-\(value)" }
}

/// Why a sequence stopped generating.
public enum FinishReason: String, Sendable, Codable, Equatable {
    /// A stop token or stop string was produced.
    case stop
    /// `max_tokens` or the context window was reached.
    case length
    /// The client cancelled (or disconnected).
    case abort
    /// The engine failed the request; the event carries the message.
    case error
}
