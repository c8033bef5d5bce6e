import Engine
import Foundation
import LLMuxCore
import OpenAIAPI
import Synchronization

/// Everything the routes share: the loaded models and their engine (once loading is done),
/// the admission queue, the metrics. Safe from any task.
public final class ServerState: Sendable {
    /// The models and the unit that serves them.
    public struct Loaded: Sendable {
        /// The engine (a unit or a `UnitGroup`) that runs every request.
        public let backend: any GenerationBackend
        /// The models the routes accept, by serving name, with their tokenizers and templates.
        public let models: [ServedModel]
        /// The result of loading: `models`, all served by `backend`.
        public init(backend: any GenerationBackend, models: [ServedModel]) {
            self.backend = backend
            self.models = models
        }
    }

    /// HTTP settings.
    public let configuration: ServerConfiguration
    /// Counters and histograms.
    public let metrics = ServerMetrics()
    private let loaded = Mutex<Loaded?>(nil)
    private let queued = Mutex(0)
    private let draining = Mutex(false)

    /// State with no models yet: generation routes and `/health` answer 503 until `ready`.
    public init(configuration: ServerConfiguration) {
        self.configuration = configuration
    }

    /// Makes the models servable.
    public func ready(_ value: Loaded) { loaded.withLock { $0 = value } }

    /// The models once loaded.
    public var current: Loaded? { loaded.withLock { $0 } }

    /// True once models are loaded and until shutdown begins.
    public var isServing: Bool { current != nil && !draining.withLock { $0 } }

    /// Marks the start of shutdown (`/health` answers 503).
    public func beginDrain() { draining.withLock { $0 = true } }

    /// The model named `name`, or 404 / 503.
    func model(_ name: String) throws(APIError) -> (any GenerationBackend, ServedModel) {
        guard let loaded = current else { throw APIError.unavailable("The models are still loading; retry in a moment.") }
        guard let model = loaded.models.first(where: { $0.name == name }) else { throw APIError.modelNotFound(name) }
        return (loaded.backend, model)
    }

    /// Reserves queue places for `count` sequences, or 429 when the queue would overflow.
    func admit(_ count: Int) throws(APIError) {
        let limit = configuration.maxQueue
        let admitted = queued.withLock { queued in
            guard queued + count <= limit else { return false }
            queued += count
            return true
        }
        guard admitted else { throw APIError.queueFull(limit: limit) }
    }

    /// Frees a queue place (a sequence got its first token or ended).
    func leaveQueue() { queued.withLock { $0 -= 1 } }

    /// Sequences waiting for their first token.
    var queuedCount: Int { queued.withLock { $0 } }
}
