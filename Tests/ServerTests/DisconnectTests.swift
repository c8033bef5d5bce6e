import Foundation
import Hummingbird
import OpenAIAPI
@testable import Server
import Synchronization
import Testing

/// A flag shared between tasks.
final class Flag: Sendable {
    private let value: Mutex<Bool>
    init(_ value: Bool) { self.value = Mutex(value) }
    var isSet: Bool { value.withLock { $0 } }
    func set(_ new: Bool) { value.withLock { $0 = new } }
}

/// A request whose client has gone is aborted even when nothing is written to it: queued, or
/// generating a whole (non-streamed) answer.
@Suite struct DisconnectTests {
    static let body = #"{"model":"alpha","prompt":"hi","max_tokens":50}"#

    @Test func waitingForTheClientToGoEndsWhenItGoesAndWhenCancelled() async throws {
        let connected = Flag(true)
        let clock = ContinuousClock()
        let start = clock.now
        Task {
            try? await Task.sleep(for: .milliseconds(100))
            connected.set(false)
        }
        try await ClientConnection { connected.isSet }.waitUntilGone()
        #expect(clock.now - start >= .milliseconds(100))

        let waiter = Task { try await ClientConnection.always.waitUntilGone() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
    }

    @Test(.timeLimit(.minutes(1))) func aWholeAnswerIsAbortedWhenItsClientHasGone() async throws {
        // The engine is held before its first step, so the request cannot end before the
        // watcher sees its client gone, however late the watcher runs.
        let gate = StepGate()
        gate.close()
        let harness = try Harness(gate: gate)
        guard case .deferred(let abandoned) = try harness.state.completions(CompletionRequest(json: Data(Self.body.utf8))) else {
            Issue.record("not deferred")
            return
        }
        await #expect(throws: APIError.clientClosedRequest) { _ = try await abandoned(ClientConnection { false }) }
        gate.open()

        // The same request with its client still there gets the whole answer.
        guard case .deferred(let kept) = try harness.state.completions(CompletionRequest(json: Data(Self.body.utf8))),
              case .json(200, let data) = try await kept(.always) else {
            Issue.record("no whole answer")
            return
        }
        let choice = try #require((try json(ByteBuffer(bytes: data))["choices"] as? [[String: Any]])?.first)
        #expect((choice["text"] as? String)?.count == 50)
        let metrics = harness.state.metrics.render(models: ["alpha"], stats: nil)
        #expect(metrics.contains(#"llmux_requests_total{model="alpha",finish_reason="abort"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"llmux_requests_total{model="alpha",finish_reason="length"} 1"#), "\(metrics)")
        harness.engine.shutdown()
    }

    @Test(.timeLimit(.minutes(1))) func aStreamIsAbortedBeforeItsFirstTokenWhenItsClientHasGone() async throws {
        let gate = StepGate()
        gate.close()
        let harness = try Harness(gate: gate)
        let body = #"{"model":"alpha","prompt":"hi","max_tokens":50,"stream":true}"#
        guard case .stream(let produce) = try harness.state.completions(CompletionRequest(json: Data(body.utf8))) else {
            Issue.record("not a stream")
            return
        }
        let written = Flag(false)
        await #expect(throws: APIError.clientClosedRequest) {
            try await produce({ _ in written.set(true) }, ClientConnection { false })
        }
        // Aborted while queued: nothing was written.
        #expect(!written.isSet)
        gate.open()
        harness.engine.shutdown()
    }
}
