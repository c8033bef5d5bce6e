import KVMemory
import LLMuxCore
import Scheduling
import Tokenization

/// The synchronous heart of a unit: owns the scheduler, the KV bookkeeping and the executor, and
/// advances every live sequence by one step per call (schedule, execute, postprocess, as in
/// nano-vllm). Whoever owns an `EngineCore` must call it from one thread at a time.
public final class EngineCore {
    private let executor: any ModelExecutor
    private var scheduler: Scheduler
    private let descriptors: [ModelID: ModelDescriptor]
    private let tokenizers: [ModelID: Tokenizer]
    private var trackers: [SequenceID: OutputTracker] = [:]
    private var nextSequence: UInt64 = 1
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant

    /// An engine over `executor`; `tokenizers` decode each model's output. `expectedRates`
    /// (requests/s by model) set the initial KV quotas and spatial shares.
    public init(executor: any ModelExecutor, tokenizers: [ModelID: Tokenizer], policy: SchedulingPolicy = .mux,
                limits: SchedulerLimits = SchedulerLimits(), expectedRates: [ModelID: Double] = [:]) {
        self.executor = executor
        self.tokenizers = tokenizers
        self.descriptors = Dictionary(uniqueKeysWithValues: executor.models.map { ($0.id, $0) })
        let perPage = Dictionary(uniqueKeysWithValues: executor.models.map { ($0.id, executor.tokensPerPage(for: $0.id)) })
        self.scheduler = Scheduler(policy: policy, limits: limits,
                                   kvCache: KVCacheManager(pageCount: executor.pageCount, tokensPerPageByModel: perPage),
                                   expectedRates: expectedRates)
        self.started = clock.now
    }

    /// Descriptors of the served models.
    public var models: [ModelDescriptor] { executor.models }

    /// True while any sequence is waiting or running.
    public var hasWork: Bool { scheduler.liveCount > 0 }

    /// The scheduler's state, for tests and metrics.
    public var schedulerState: Scheduler { scheduler }

    /// Validates and queues a request; throws a message a user can act on when it can never run.
    @discardableResult
    public func add(_ request: GenerationRequest) throws -> SequenceID {
        guard let model = descriptors[request.model] else { throw LLMuxError.unknownModel(request.model.name) }
        if let problem = request.validationError(for: model) { throw problem }
        var parameters = request.parameters
        if parameters.seed == nil { parameters.seed = UInt64.random(in: 0...UInt64.max) }
        let id = SequenceID(nextSequence)
        nextSequence += 1
        try scheduler.add(SequenceState(id: id, model: request.model, promptTokens: request.promptTokens, parameters: parameters))
        let detokenizer = tokenizers[request.model]?.makeDetokenizer(skipSpecialTokens: true)
        trackers[id] = OutputTracker(
            detokenizer: detokenizer, parameters: parameters, eosTokenIDs: model.eosTokenIDs,
            contextLength: model.contextLength, promptLength: request.promptTokens.count)
        return id
    }

    /// Aborts a sequence and frees its pages now; returns its final event.
    public func abort(_ id: SequenceID) -> SequenceEvent? {
        guard trackers.removeValue(forKey: id) != nil else { return nil }
        scheduler.finish(id, reason: .abort)
        return SequenceEvent(sequenceID: id, token: nil, textDelta: "", finishReason: .abort)
    }

    /// One engine step. A failing executor fails every sequence of the step (with the message),
    /// never the process.
    public func step() -> [SequenceEvent] {
        let elapsed = clock.now - started
        let plan = scheduler.schedule(now: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        guard !plan.isEmpty else { return [] }
        let result: StepResult
        do {
            result = try executor.execute(plan)
        } catch {
            let failed = plan.jobs.flatMap { $0.sequences.map(\.sequenceID) }
            return failed.map { id in
                trackers[id] = nil
                scheduler.finish(id, reason: .error)
                return SequenceEvent(sequenceID: id, token: nil, textDelta: "", finishReason: .error, errorMessage: "\(error)")
            }
        }
        var events: [SequenceEvent] = []
        for (id, token) in scheduler.commit(result) {
            guard var tracker = trackers[id], let state = scheduler.sequences[id] else { continue }
            let (delta, finish) = tracker.append(token.tokenID, outputCount: state.outputTokens.count)
            trackers[id] = tracker
            events.append(SequenceEvent(sequenceID: id, token: token, textDelta: delta, finishReason: finish))
            if let finish {
                trackers[id] = nil
                scheduler.finish(id, reason: finish)
            }
        }
        return events
    }
}
