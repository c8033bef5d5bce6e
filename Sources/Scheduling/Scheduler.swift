import Collections
import KVMemory
import LLMuxCore

/// Decides every step which tokens of which sequences of which models run, under one of three
/// policies (see `SchedulingPolicy`). Continuous batching with chunked prefill; when the pool is
/// full, the newest sequences are preempted by recompute. Owned by one engine loop; it sees only
/// integers.
///
/// Every job it plans gets a ticket and stays *in flight* until the engine reports it with
/// `complete(ticket:result:)` or `fail(ticket:)`. On a synchronous executor that happens within
/// the step; on an asynchronous one (jobs on SM partitions, finishing independently) jobs of
/// several steps overlap. A sequence in flight is not scheduled again (except by `scheduleAhead`,
/// one decode step further), not preempted, and keeps its pages until its last job ends (the
/// device may still be writing its KV). Each policy divides the
/// unit into lanes (`Lane`); a lane with a job in flight gets no new job.
public struct Scheduler: Sendable {
    /// The sharing policy.
    public let policy: SchedulingPolicy
    /// Step limits.
    public let limits: SchedulerLimits
    /// Page tables over the shared pool.
    public internal(set) var kvCache: KVCacheManager
    /// KV quotas per model (enforced for admission under `mux`, strictly under `spatial`).
    public internal(set) var quotas: QuotaController
    /// Every live sequence (an aborted one leaves at once, even while its job is in flight).
    public internal(set) var sequences: [SequenceID: SequenceState] = [:]
    /// The models, in a fixed order (sorted by name): round-robin, reports and `spatial`
    /// partition indexes follow it.
    public let models: [ModelID]
    /// The SM partitionings the executor granted (`PartitionLayout`); empty when the device is
    /// not partitioned, and then every job runs on partitioning 0, partition 0.
    public let partitionings: [[Int]]
    /// True when plans go to an asynchronous executor: `mux` then puts at most one prefill job
    /// in a plan, since the prefill lane holds one job at a time.
    public let asynchronous: Bool
    /// Share of every step's token budget per model under `spatial`.
    let spatialTokenBudget: [ModelID: Int]
    /// Admitted sequences in arrival order.
    var running: [SequenceID] = []
    /// Queued sequences per model; preempted ones go back to the front.
    var waiting: [ModelID: Deque<SequenceID>] = [:]
    /// Tokens each sequence runs in the plan being built (empty between calls to `schedule`).
    var scheduledTokens: [SequenceID: Int] = [:]
    /// Sequences chosen for the plan being built, in order (empty between calls to `schedule`).
    var chosen: [SequenceID] = []
    /// Where the sequences of the lane being planned start in `chosen` (0 when the whole plan
    /// runs as one step).
    var laneStart = 0
    /// Sequences the prefill lane took in the plan being built when `mux` mixes its phases (the
    /// prompts past `mixedPromptTokenLimit`); empty between calls to `schedule`.
    var prefillLaneSequences: Set<SequenceID> = []
    /// Where the next `mux` prefill round starts.
    var roundRobinStart = 0
    /// The ticket of the next job.
    var nextTicket = 1
    /// Jobs planned and not yet completed or failed, by ticket.
    var inFlight: [Int: InFlightJob] = [:]
    /// The in-flight ticket of every sequence in an in-flight job (the later one while a step
    /// planned ahead follows the one it is in).
    var ticketBySequence: [SequenceID: Int] = [:]
    /// Sequences finished while their job was in flight: their pages go back when it ends.
    var releaseOnCompletion: Set<SequenceID> = []
    /// Running sequences that found no free page for their next tokens and kept their cache to
    /// wait for one (jobs in flight will free pages or victims). New sequences are not admitted
    /// while any waits (under `spatial`, any of the same model): otherwise a prompt admitted
    /// beside a busy decode lane could take each page that comes free, and the waiting sequence
    /// would stall step after step.
    var pageWaiters: Set<SequenceID> = []
    /// Times a running sequence of each model waited a step for a page (for metrics and tests).
    public internal(set) var pageWaitsByModel: [ModelID: Int] = [:]
    /// Preemptions of each model's sequences since the scheduler was made (for metrics and tests).
    public internal(set) var preemptionsByModel: [ModelID: Int] = [:]
    /// Times a running sequence waited a step for a page, all models.
    public var pageWaitTotal: Int { pageWaitsByModel.values.reduce(0, +) }
    /// Preemptions since the scheduler was made, all models.
    public var preemptionTotal: Int { preemptionsByModel.values.reduce(0, +) }
    /// Tokens whose cache preemptions dropped (computed again when the sequences come back).
    public internal(set) var preemptedTokenTotal = 0
    /// When each model's last job with decode tokens launched under `mux` (a decode job, or a
    /// mixed job), while its decode work goes on.
    var lastDecodeLaunch: [ModelID: Double] = [:]
    /// Seconds between each model's last two launches of a job with decode tokens under `mux`:
    /// the time its sequences wait per token now (`latencyPressure`).
    public internal(set) var decodeTokenInterval: [ModelID: Double] = [:]
    /// Under `mux` with mixed jobs, what each model's mixed jobs cost its decoding sequences per
    /// token, by the prompt tokens they carry (`mixedPromptAllowance`).
    public internal(set) var mixedJobCosts: [ModelID: MixedJobCost] = [:]
    /// Steps planned ahead of the samples of the step before (`scheduleAhead`), for tests and traces.
    public internal(set) var plannedAheadTotal = 0

    /// A scheduler. `expectedRates` (requests/s per model, default 1 each) sets the initial quotas
    /// and the `spatial` shares together with each model's per-token KV size. `partitionings` are
    /// the SM partitionings the executor granted (empty: none); `asynchronous` says whether jobs
    /// are launched and collected rather than executed within the step.
    public init(policy: SchedulingPolicy = .mux, limits: SchedulerLimits, kvCache: KVCacheManager,
                expectedRates: [ModelID: Double] = [:], partitionings: [[Int]] = [], asynchronous: Bool = false) {
        self.policy = policy
        self.limits = limits
        self.kvCache = kvCache
        self.partitionings = partitionings
        self.asynchronous = asynchronous
        self.models = kvCache.tokensPerPageByModel.keys.sorted { $0.name < $1.name }
        // Per-token KV bytes are inversely proportional to tokens per page.
        let weights = Dictionary(uniqueKeysWithValues: models.map {
            ($0, (expectedRates[$0] ?? 1) / Double(kvCache.tokensPerPage($0)))
        })
        self.quotas = QuotaController(pageCount: kvCache.pool.pageCount, weights: weights)
        let totalWeight = weights.values.reduce(0, +)
        self.spatialTokenBudget = Dictionary(uniqueKeysWithValues: models.map {
            ($0, max(1, Int(Double(limits.maxTokensPerStep) * weights[$0]! / totalWeight)))
        })
        for model in models { waiting[model] = [] }
    }

    /// Queues a sequence. Throws when it can never fit (in the pool, or in its model's fixed share
    /// under `spatial`).
    public mutating func add(_ sequence: SequenceState) throws {
        guard waiting[sequence.model] != nil else { throw LLMuxError.unknownModel(sequence.model.name) }
        let maxTokens = sequence.promptTokens.count + sequence.parameters.maxTokens
        let pages = kvCache.pagesNeeded(tokens: maxTokens, model: sequence.model)
        let limit = policy == .spatial ? quotas.quota(sequence.model) : kvCache.pool.pageCount
        if pages > limit {
            throw LLMuxError.invalidRequest(
                "prompt (\(sequence.promptTokens.count) tokens) plus max_tokens (\(sequence.parameters.maxTokens)) needs \(pages) KV pages but \(policy == .spatial ? "this model's share" : "the pool") has \(limit); lower max_tokens or raise --kv-cache-memory")
        }
        sequences[sequence.id] = sequence
        waiting[sequence.model]!.append(sequence.id)
    }

    /// Sequences waiting or running.
    public var liveCount: Int { sequences.count }
    /// Sequences holding pages.
    public var runningCount: Int { running.count }
    /// Sequences queued.
    public var waitingCount: Int { waiting.values.reduce(0) { $0 + $1.count } }
    /// Running sequences of one model.
    public func runningCount(_ model: ModelID) -> Int { running.count { sequences[$0]?.model == model } }
    /// Waiting sequences of one model.
    public func waitingCount(_ model: ModelID) -> Int { waiting[model]?.count ?? 0 }

    /// Ends a sequence (finished, aborted or failed). Its pages are freed at once, unless it is in
    /// a job still in flight: the device may still write its KV there, so they are freed when
    /// that job ends (until then they count as used, and no other sequence can get them).
    public mutating func finish(_ id: SequenceID, reason: FinishReason) {
        guard let sequence = sequences.removeValue(forKey: id) else { return }
        if ticketBySequence[id] != nil {
            releaseOnCompletion.insert(id)
        } else {
            kvCache.release(id)
        }
        running.removeAll { $0 == id }
        waiting[sequence.model]?.removeAll { $0 == id }
        pageWaiters.remove(id)
        scheduledTokens[id] = nil
        chosen.removeAll { $0 == id }
    }

    /// Drops a running sequence's cache and queues it again at the front of its model's queue.
    /// Never called for a sequence in flight.
    mutating func preempt(_ id: SequenceID) {
        precondition(ticketBySequence[id] == nil, "preempting a sequence whose job is in flight")
        kvCache.release(id)
        running.removeAll { $0 == id }
        pageWaiters.remove(id)
        scheduledTokens[id] = nil
        chosen.removeAll { $0 == id }
        preemptedTokenTotal += sequences[id]!.computedCount
        sequences[id]!.computedCount = 0
        sequences[id]!.status = .waiting
        sequences[id]!.preemptionCount += 1
        preemptionsByModel[sequences[id]!.model, default: 0] += 1
        waiting[sequences[id]!.model]!.prepend(id)
    }
}
