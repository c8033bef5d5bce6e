import Engine
import Foundation
import LLMuxCore
import OpenAIAPI

/// One sequence of a request: which choice it is and what the engine runs.
struct SequenceJob: Sendable {
    /// The choice index in the answer (prompt index × n + choice).
    let choice: Int
    /// The prompt it continues.
    let promptIndex: Int
    let request: GenerationRequest
}

/// An event of one choice, or its end.
enum ChoiceItem: Sendable {
    case event(choice: Int, SequenceEvent)
    /// The stream ended without a finish reason (cancelled).
    case ended(choice: Int)
    case failed(choice: Int, APIError)
}

/// Maps a stream error to what the client is told.
func apiError(_ error: any Error) -> APIError {
    switch error {
    case EngineStreamError.rejected(let reason):
        switch reason {
        case .unknownModel(let name): return .modelNotFound(name)
        case .invalidRequest(let message): return .invalidRequest(message)
        case .outOfMemory(let message): return .invalidRequest("out of memory: \(message)")
        default: return .internalError(reason.description)
        }
    case EngineStreamError.shuttingDown: return .unavailable("The server is shutting down.")
    case EngineStreamError.failed(let message): return .internalError("The engine failed this request: \(message)")
    case let error as APIError: return error
    default: return .internalError("\(error)")
    }
}

/// The OpenAI name of a finish reason.
func finishReasonName(_ reason: FinishReason?) -> String? {
    reason.map { $0.rawValue }
}

extension ServerState {
    /// Submits every job and calls `body` with their events as they come, interleaved across
    /// choices, until all have ended. Records queue places and metrics. When `body` throws (a
    /// write to a departed client failed), `connection` reports the client gone (it throws
    /// `APIError.clientClosedRequest` then), or the task is cancelled, every stream is
    /// cancelled, which aborts its sequence in the engine.
    func generate(_ jobs: [SequenceJob], backend: any GenerationBackend, model: String, connection: ClientConnection,
                  _ body: (ChoiceItem) async throws -> Void) async throws {
        try admit(jobs.count)
        /// What the merged stream carries: the choices' items, or the watcher's word that the
        /// client has gone.
        enum Merged: Sendable {
            case item(ChoiceItem)
            case clientGone
        }
        let (merged, continuation) = AsyncStream<Merged>.makeStream()
        let metrics = self.metrics
        // Not a child of the group below: a streamed answer stops it at its first token.
        let watcher = Task {
            try await connection.waitUntilGone()
            continuation.yield(.clientGone)
        }
        defer { watcher.cancel() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for job in jobs {
                let stream = backend.submit(job.request)
                group.addTask {
                    let clock = ContinuousClock()
                    let start = clock.now
                    var last = start
                    var inQueue = true
                    var generated = 0
                    var reason = "abort"
                    defer {
                        if inQueue { self.leaveQueue() }
                        let seconds = (clock.now - start).seconds
                        metrics.finished(model: model, reason: reason, promptTokens: job.request.promptTokens.count,
                                         generationTokens: generated, seconds: seconds)
                    }
                    do {
                        for try await event in stream {
                            if inQueue {
                                inQueue = false
                                self.leaveQueue()
                            }
                            if event.token != nil {
                                let now = clock.now
                                if generated == 0 {
                                    metrics.record(model: model) { $0.timeToFirstToken.observe((now - start).seconds) }
                                } else {
                                    metrics.record(model: model) { $0.interTokenLatency.observe((now - last).seconds) }
                                }
                                last = now
                                generated += 1
                            }
                            if let finish = event.finishReason { reason = finish.rawValue }
                            continuation.yield(.item(.event(choice: job.choice, event)))
                        }
                        if reason == "abort" { continuation.yield(.item(.ended(choice: job.choice))) }
                    } catch {
                        reason = "error"
                        continuation.yield(.item(.failed(choice: job.choice, apiError(error))))
                    }
                }
            }
            var open = jobs.count
            for await next in merged {
                guard case .item(let item) = next else { throw APIError.clientClosedRequest }
                switch item {
                case .event(_, let event):
                    if event.finishReason != nil { open -= 1 }
                    if !connection.watchesWholeAnswer { watcher.cancel() }
                case .ended, .failed: open -= 1
                }
                try await body(item)
                if open == 0 { break }
            }
            continuation.finish()
            group.cancelAll()
        }
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
