import Foundation
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

/// `whileConnected`: a whole (non-streamed) answer stops being generated once its client is gone.
@Suite struct DisconnectTests {
    @Test func aDepartedClientCancelsTheWorkAndGets499() async throws {
        let connected = Flag(true)
        let cancelled = Flag(false)
        let started = ContinuousClock.now
        let work: @Sendable () async throws(APIError) -> APIAnswer = { () async throws(APIError) -> APIAnswer in
            // Ten seconds of "generation", unless cancelled.
            for _ in 0..<1000 {
                if Task.isCancelled {
                    cancelled.set(true)
                    throw APIError.internalError("cancelled")
                }
                try? await Task.sleep(for: .milliseconds(10))
            }
            return .json(status: 200, Data("{}".utf8))
        }
        Task {
            try? await Task.sleep(for: .milliseconds(150))
            connected.set(false)
        }
        await #expect(throws: APIError.clientClosedRequest) {
            _ = try await whileConnected({ connected.isSet }, work)
        }
        // The group waits for the cancelled work, so it has seen the cancellation by now.
        #expect(cancelled.isSet)
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func aConnectedClientGetsTheAnswerAndItsErrors() async throws {
        let answer = try await whileConnected({ true }) { () async throws(APIError) -> APIAnswer in
            try? await Task.sleep(for: .milliseconds(250))
            return .json(status: 201, Data("{\"ok\":1}".utf8))
        }
        guard case .json(let status, let body) = answer else { Issue.record("not JSON: \(answer)"); return }
        #expect(status == 201 && body == Data("{\"ok\":1}".utf8))
        await #expect(throws: APIError.queueFull(limit: 3)) {
            _ = try await whileConnected({ true }) { () async throws(APIError) -> APIAnswer in throw APIError.queueFull(limit: 3) }
        }
    }
}
