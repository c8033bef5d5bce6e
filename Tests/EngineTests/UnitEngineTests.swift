import Engine
import LLMuxCore
import Scheduling
import Testing

/// The engine loop thread: concurrent submissions, cancellation, refusal, draining shutdown.
@Suite struct UnitEngineTests {
    static let models: [(ModelID, tokensPerPage: Int)] = [(ModelID("a"), 4), (ModelID("b"), 8)]

    func collect(_ stream: AsyncThrowingStream<SequenceEvent, Error>) async throws -> [SequenceEvent] {
        var events: [SequenceEvent] = []
        for try await event in stream { events.append(event) }
        return events
    }

    @Test func concurrentRequestsMatchTheirSoloRuns() async throws {
        let unit = UnitEngine(core: EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 40), tokenizers: [:]))
        let requests = (0..<16).map { index in
            GenerationRequest(model: index % 2 == 0 ? "a" : "b", promptTokens: (0..<(3 + index)).map { TokenID($0 * 7 % 500 + 1) },
                              parameters: SamplingParameters(maxTokens: 5 + index))
        }
        let outputs = try await withThrowingTaskGroup(of: (Int, [TokenID]).self) { group in
            for (index, request) in requests.enumerated() {
                group.addTask { (index, try await collect(unit.submit(request)).compactMap { $0.token?.tokenID }) }
            }
            var results: [Int: [TokenID]] = [:]
            for try await (index, tokens) in group { results[index] = tokens }
            return results
        }
        for (index, request) in requests.enumerated() {
            let solo = UnitEngine(core: EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 40), tokenizers: [:]))
            let expected = try await collect(solo.submit(request)).compactMap { $0.token?.tokenID }
            solo.shutdown()
            #expect(outputs[index] == expected)
            #expect(expected.count == request.parameters.maxTokens)
        }
        unit.shutdown()
    }

    @Test func badRequestFailsItsStreamOnly() async throws {
        let unit = UnitEngine(core: EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 40), tokenizers: [:]))
        let bad = unit.submit(GenerationRequest(model: "nope", promptTokens: [1], parameters: SamplingParameters()))
        let good = unit.submit(GenerationRequest(model: "a", promptTokens: [1, 2], parameters: SamplingParameters(maxTokens: 3)))
        await #expect(throws: EngineStreamError.self) { _ = try await collect(bad) }
        let events = try await collect(good)
        #expect(events.count == 3 && events.last?.finishReason == .length)
        unit.shutdown()
    }

    @Test func cancellingAStreamAbortsTheRequest() async throws {
        let core = EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 400), tokenizers: [:])
        let unit = UnitEngine(core: core)
        let stream = unit.submit(GenerationRequest(model: "a", promptTokens: [1, 2, 3], parameters: SamplingParameters(maxTokens: 1000)))
        let task = Task {
            var count = 0
            for try await _ in stream {
                count += 1
                if count == 3 { break }  // leaving the loop cancels the stream
            }
            return count
        }
        #expect(try await task.value == 3)
        // Afterwards the unit still serves others and drains to idle.
        let after = try await collect(unit.submit(GenerationRequest(model: "b", promptTokens: [4], parameters: SamplingParameters(maxTokens: 2))))
        #expect(after.count == 2)
        unit.shutdown()
    }

    /// The published statistics count each model's preemptions and page waits: twelve requests
    /// that grow to 10 pages each on a 24-page pool cannot all keep their caches.
    @Test func statsCountPreemptionsByModel() async throws {
        let unit = UnitEngine(core: EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 24), tokenizers: [:]))
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<12 {
                let request = GenerationRequest(model: "a", promptTokens: (0..<10).map { TokenID($0 + index + 1) },
                                                parameters: SamplingParameters(maxTokens: 30))
                group.addTask { try await collect(unit.submit(request)).count }
            }
            for try await count in group { #expect(count == 30) }
        }
        let stats = unit.stats
        #expect((stats.preemptions[ModelID("a")] ?? 0) > 0, "the pool was meant to force preemption")
        #expect(stats.preemptions[ModelID("b")] == 0 && stats.pageWaits[ModelID("b")] == 0)
        unit.shutdown()
    }

    @Test func shutdownDrainsThenRefuses() async throws {
        let unit = UnitEngine(core: EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 40), tokenizers: [:]))
        let running = unit.submit(GenerationRequest(model: "a", promptTokens: [1], parameters: SamplingParameters(maxTokens: 20)))
        let drained = Task { try await collect(running) }
        try await Task.sleep(for: .milliseconds(5))
        unit.shutdown()
        #expect(try await drained.value.count == 20, "in-flight request completes")
        await #expect(throws: EngineStreamError.shuttingDown) {
            _ = try await collect(unit.submit(GenerationRequest(model: "a", promptTokens: [1], parameters: SamplingParameters())))
        }
    }
}
