/// Errors every module can raise, each with a message a user can act on.
public enum LLMuxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Input that can never be served (prompt too long, bad parameter…).
    case invalidRequest(String)
    /// A model name nobody serves.
    case unknownModel(String)
    /// A checkpoint that cannot be loaded; names the file and key.
    case badCheckpoint(file: String, detail: String)
    /// Memory or capacity exhausted.
    case outOfMemory(String)
    /// The engine shut down or failed.
    case engine(String)

    /// The message shown to users.
    public var description: String {
        switch self {
        case .invalidRequest(let message): return message
        case .unknownModel(let name): return "The model `\(name)` does not exist."
        case .badCheckpoint(let file, let detail): return "\(file): \(detail)"
        case .outOfMemory(let message): return "out of memory: \(message)"
        case .engine(let message): return "engine error: \(message)"
        }
    }
}
