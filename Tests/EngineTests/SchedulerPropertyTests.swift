import Engine
import KVMemory
import LLMuxCore
import Scheduling
import Testing

/// Random workloads against the scheduler and KV bookkeeping through the real engine core with a
/// fake model: no page leaks, every request ends with a reason, outputs equal solo runs even with
/// preemption and cancellation.
@Suite struct SchedulerPropertyTests {
    struct Workload {
        var prompts: [[TokenID]] = []
        var maxTokens: [Int] = []
        var models: [ModelID] = []
    }

    static let models: [(ModelID, tokensPerPage: Int)] = [(ModelID("a"), 4), (ModelID("b"), 7)]

    static func workload(seed: UInt64, count: Int) -> Workload {
        var random = TestRandom(seed: seed)
        var workload = Workload()
        for _ in 0..<count {
            let length = 1 + Int(random.next() % 60)
            workload.prompts.append((0..<length).map { _ in TokenID(1 + random.next() % 900) })
            workload.maxTokens.append(1 + Int(random.next() % 30))
            workload.models.append(models[Int(random.next() % 2)].0)
        }
        return workload
    }

    /// Runs requests one at a time on a roomy pool: the reference outputs.
    static func solo(_ workload: Workload) -> [[TokenID]] {
        workload.prompts.indices.map { index in
            let engine = EngineCore(executor: FakeExecutor(models: models, pageCount: 200), tokenizers: [:])
            let id = try! engine.add(GenerationRequest(model: workload.models[index], promptTokens: workload.prompts[index],
                                                       parameters: SamplingParameters(maxTokens: workload.maxTokens[index])))
            var tokens: [TokenID] = []
            while engine.hasWork {
                for event in engine.step() where event.sequenceID == id { if let token = event.token { tokens.append(token.tokenID) } }
            }
            return tokens
        }
    }

    /// `pipelined`: each step is collected by the next call, which plans the next decode step
    /// ahead (`Scheduler.scheduleAhead`) before the samples it depends on are booked.
    @Test(arguments: SchedulingPolicy.allCases, [(1, false), (2, false), (3, false), (4, false), (1, true), (2, true), (5, true)])
    func randomWorkloadsNeverLeakAndMatchSoloRuns(policy: SchedulingPolicy, run: (seed: UInt64, pipelined: Bool)) throws {
        try checkRandomWorkload(policy: policy, seed: run.seed, pipelined: run.pipelined,
                                limits: SchedulerLimits(maxTokensPerStep: 32, maxSequencesPerStep: 6, quotaInterval: 0))
    }

    /// `mux` with mixed jobs (`mux-mixed`), and with prompts past 16 tokens on the prefill lane
    /// (`mux-hybrid`): the same invariants.
    @Test(arguments: [nil, 16] as [Int?], [(1, false), (2, false), (3, true)])
    func randomWorkloadsUnderMixedMuxNeverLeakAndMatchSoloRuns(promptLimit: Int?, run: (seed: UInt64, pipelined: Bool)) throws {
        try checkRandomWorkload(policy: .mux, seed: run.seed, pipelined: run.pipelined,
                                limits: SchedulerLimits(maxTokensPerStep: 32, maxSequencesPerStep: 6, quotaInterval: 0,
                                                        mixesMuxPhases: true, mixedPromptTokenLimit: promptLimit))
    }

    private func checkRandomWorkload(policy: SchedulingPolicy, seed: UInt64, pipelined: Bool, limits: SchedulerLimits) throws {
        let workload = Self.workload(seed: seed, count: 24)
        let expected = Self.solo(workload)
        var random = TestRandom(seed: seed &* 77)
        // 30 pages: the largest single request (60 + 30 tokens at 4 a page) needs 23, so it fits
        // alone, while the whole workload needs far more: preemption is forced. Under `spatial`
        // each model only has its share, so the pool is doubled for every request to fit its share.
        let executor = FakeExecutor(models: Self.models, pageCount: policy == .spatial ? 60 : 30)
        let engine = EngineCore(executor: executor, tokenizers: [:], policy: policy, limits: limits, pipelining: pipelined)
        var idsByIndex: [SequenceID: Int] = [:]
        var outputs: [Int: [TokenID]] = [:]
        var finished: [Int: FinishReason] = [:]
        var cancelled: Set<Int> = []
        var next = 0
        var steps = 0
        while next < workload.prompts.count || engine.hasWork {
            // Arrivals trickle in between steps.
            for _ in 0..<Int(random.next() % 3) where next < workload.prompts.count {
                let id = try engine.add(GenerationRequest(model: workload.models[next], promptTokens: workload.prompts[next],
                                                          parameters: SamplingParameters(maxTokens: workload.maxTokens[next])))
                idsByIndex[id] = next
                next += 1
            }
            // Occasionally a client goes away.
            if random.next() % 10 == 0, let victim = idsByIndex.sorted(by: { $0.key < $1.key }).first(where: { finished[$0.value] == nil })?.key {
                let event = engine.abort(victim)
                #expect(event?.finishReason == .abort)
                finished[idsByIndex[victim]!] = .abort
                cancelled.insert(idsByIndex[victim]!)
            }
            for event in engine.step() {
                let index = idsByIndex[event.sequenceID]!
                if let token = event.token { outputs[index, default: []].append(token.tokenID) }
                if let reason = event.finishReason {
                    #expect(finished[index] == nil, "finished twice")
                    finished[index] = reason
                }
            }
            let state = engine.schedulerState
            #expect(state.kvCache.isConsistent(), "page accounting broke at step \(steps)")
            #expect(state.quotas.isConsistent, "quotas no longer sum to the pool")
            if policy == .spatial {
                for model in state.models {
                    #expect(state.kvCache.usedPagesByModel[model, default: 0] <= state.quotas.quota(model), "spatial share exceeded")
                }
            }
            steps += 1
            try #require(steps < 10_000, "no progress")
        }
        let kv = engine.schedulerState.kvCache
        #expect(kv.freePageCount == kv.pool.pageCount, "pages leaked")
        #expect(finished.count == workload.prompts.count, "every request ends with a reason")
        #expect(engine.schedulerState.preemptionTotal > 0, "the workload was meant to force preemption")
        #expect((engine.schedulerState.plannedAheadTotal > 0) == pipelined, "steps planned ahead only when pipelined")
        for index in workload.prompts.indices where !cancelled.contains(index) {
            #expect(outputs[index] ?? [] == expected[index], "request \(index) differs from its solo run")
            #expect(finished[index] == .length)
        }
    }

    @Test func requestLargerThanPoolFailsAtOnce() throws {
        let engine = EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 3), tokenizers: [:])
        #expect(throws: LLMuxError.self) {
            try engine.add(GenerationRequest(model: "a", promptTokens: Array(repeating: 5, count: 10), parameters: SamplingParameters(maxTokens: 10)))
        }
        #expect(throws: LLMuxError.self) {
            try engine.add(GenerationRequest(model: "zzz", promptTokens: [1], parameters: SamplingParameters()))
        }
        #expect(throws: LLMuxError.self) {
            try engine.add(GenerationRequest(model: "a", promptTokens: [], parameters: SamplingParameters()))
        }
        #expect(!engine.hasWork)
    }

    @Test func promptPlusMaxTokensOverContextIsRejectedWithNumbers() {
        let engine = EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 100, contextLength: 16), tokenizers: [:])
        do {
            try engine.add(GenerationRequest(model: "a", promptTokens: Array(repeating: 5, count: 10), parameters: SamplingParameters(maxTokens: 10)))
            Issue.record("expected an error")
        } catch {
            let message = "\(error)"
            #expect(message.contains("16") && message.contains("20") && message.contains("10"))
        }
    }

    @Test func cancellationFreesPagesImmediately() throws {
        let engine = EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 50), tokenizers: [:])
        let id = try engine.add(GenerationRequest(model: "a", promptTokens: Array(repeating: 3, count: 20), parameters: SamplingParameters(maxTokens: 50)))
        _ = engine.step()
        #expect(engine.schedulerState.kvCache.freePageCount < 50)
        _ = engine.abort(id)
        #expect(engine.schedulerState.kvCache.freePageCount == 50)
        #expect(!engine.hasWork)
    }

    @Test func eosAndStopTokensEndWithStop() throws {
        let engine = EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 50), tokenizers: [:])
        // The fake model's first greedy token for this prompt becomes a stop token.
        let probe = EngineCore(executor: FakeExecutor(models: Self.models, pageCount: 50), tokenizers: [:])
        _ = try probe.add(GenerationRequest(model: "a", promptTokens: [9, 9], parameters: SamplingParameters(maxTokens: 1)))
        let first = probe.step()[0].token!.tokenID
        _ = try engine.add(GenerationRequest(model: "a", promptTokens: [9, 9], parameters: SamplingParameters(maxTokens: 10, stopTokenIDs: [first])))
        let events = engine.step()
        #expect(events.count == 1 && events[0].finishReason == .stop)
        #expect(engine.schedulerState.kvCache.freePageCount == 50)
    }
}

/// Reproducible random workloads.
typealias TestRandom = SplitMix64

/// Pipelined steps against unpipelined ones on the same requests: seeded sampling whose draws
/// hit EOS at random (so sequences end while a step planned ahead holds them), stop tokens,
/// different lengths, an abort while two steps of the sequence are in flight.
@Suite struct PipelinedEngineTests {
    static let models: [(ModelID, tokensPerPage: Int)] = [(ModelID("a"), 4), (ModelID("b"), 7)]

    struct Outcome: Equatable {
        var tokens: [TokenID] = []
        var reason: FinishReason?
    }

    /// Runs 12 requests to the end; `abortAfterTokens` aborts request 3 once it has that many tokens.
    static func run(pipelined: Bool, abortAfterTokens: Int? = nil) throws -> (outcomes: [Outcome], state: Scheduler) {
        // A 16-token vocabulary: seeded draws hit EOS (0) and the stop tokens now and then.
        let engine = EngineCore(executor: FakeExecutor(models: models, pageCount: 80, vocabulary: 16), tokenizers: [:],
                                limits: SchedulerLimits(maxTokensPerStep: 64, maxSequencesPerStep: 16), pipelining: pipelined)
        var random = TestRandom(seed: 99)
        var ids: [SequenceID] = []
        for index in 0..<12 {
            let prompt = (0..<(3 + Int(random.next() % 20))).map { _ in TokenID(1 + random.next() % 15) }
            var parameters = SamplingParameters(temperature: index % 3 == 0 ? 0 : 0.8, seed: UInt64(index),
                                                maxTokens: 5 + Int(random.next() % 25))
            if index % 4 == 1 { parameters.stopTokenIDs = [TokenID(1 + random.next() % 15)] }
            ids.append(try engine.add(GenerationRequest(model: models[index % 2].0, promptTokens: prompt, parameters: parameters)))
        }
        var outcomes: [SequenceID: Outcome] = [:]
        var steps = 0
        while engine.hasWork {
            for event in engine.step() {
                if let token = event.token { outcomes[event.sequenceID, default: Outcome()].tokens.append(token.tokenID) }
                if let reason = event.finishReason { outcomes[event.sequenceID, default: Outcome()].reason = reason }
            }
            if let limit = abortAfterTokens, let count = outcomes[ids[3]]?.tokens.count, count >= limit,
               outcomes[ids[3]]?.reason == nil {
                outcomes[ids[3]]!.reason = engine.abort(ids[3])?.finishReason
            }
            #expect(engine.schedulerState.kvCache.isConsistent(), "page accounting broke at step \(steps)")
            steps += 1
            try #require(steps < 10_000)
        }
        return (ids.map { outcomes[$0] ?? Outcome() }, engine.schedulerState)
    }

    @Test func pipelinedStepsGiveTheSameOutputs() throws {
        let plain = try Self.run(pipelined: false)
        let pipelined = try Self.run(pipelined: true)
        #expect(pipelined.outcomes == plain.outcomes)
        #expect(plain.outcomes.contains { $0.reason == .stop }, "some sequence was meant to stop early")
        #expect(plain.outcomes.allSatisfy { $0.reason != nil })
        #expect(pipelined.state.plannedAheadTotal > 0 && plain.state.plannedAheadTotal == 0)
        #expect(pipelined.state.kvCache.freePageCount == pipelined.state.kvCache.pool.pageCount, "pages leaked")
    }

    @Test func abortWhileTwoStepsAreInFlightFreesItsPages() throws {
        let pipelined = try Self.run(pipelined: true, abortAfterTokens: 2)
        let plain = try Self.run(pipelined: false)
        #expect(pipelined.outcomes[3].reason == .abort)
        // The others are untouched by the abort.
        for index in plain.outcomes.indices where index != 3 { #expect(pipelined.outcomes[index] == plain.outcomes[index]) }
        #expect(pipelined.state.kvCache.freePageCount == pipelined.state.kvCache.pool.pageCount, "pages leaked")
        #expect(pipelined.state.inFlightCount == 0)
    }
}
