import Collections
import KVMemory
import LLMuxCore

/// Limits of one step.
public struct SchedulerLimits: Sendable, Equatable {
    /// Tokens per step over all jobs (prefill chunks are cut to fit).
    public var maxTokensPerStep: Int
    /// Sequences per step.
    public var maxSequencesPerStep: Int
    /// Defaults suited to the CPU backend.
    public init(maxTokensPerStep: Int = 512, maxSequencesPerStep: Int = 64) {
        self.maxTokensPerStep = maxTokensPerStep
        self.maxSequencesPerStep = maxSequencesPerStep
    }
}

/// Continuous batching with chunked prefill, first come first served: every step first gives each
/// running decoder its next token, preempting (by recompute) the newest sequences when the pool is
/// full, then fills the remaining token budget with prefill chunks in arrival order.
/// Owned by one engine loop; it sees only integers.
public struct Scheduler: Sendable {
    /// Step limits.
    public let limits: SchedulerLimits
    /// Page tables over the shared pool.
    public private(set) var kvCache: KVCacheManager
    /// Every live sequence.
    public private(set) var sequences: [SequenceID: SequenceState] = [:]
    /// Admitted sequences in arrival order.
    private var running: [SequenceID] = []
    /// Queued sequences; preempted ones go back to the front.
    private var waiting: Deque<SequenceID> = []
    /// Tokens each sequence runs in the step being executed.
    private var scheduledTokens: [SequenceID: Int] = [:]
    /// Preemptions since the scheduler was made (for metrics and tests).
    public private(set) var preemptionTotal = 0

    /// A scheduler over a KV cache.
    public init(limits: SchedulerLimits, kvCache: KVCacheManager) {
        self.limits = limits
        self.kvCache = kvCache
    }

    /// Queues a sequence. Throws when it can never fit in the whole pool.
    public mutating func add(_ sequence: SequenceState) throws {
        let maxTokens = sequence.promptTokens.count + sequence.parameters.maxTokens
        let pages = kvCache.pagesNeeded(tokens: maxTokens, model: sequence.model)
        if pages > kvCache.pool.pageCount {
            throw LLMuxError.invalidRequest(
                "prompt (\(sequence.promptTokens.count) tokens) plus max_tokens (\(sequence.parameters.maxTokens)) needs \(pages) KV pages but the pool has \(kvCache.pool.pageCount); lower max_tokens or raise --kv-cache-memory")
        }
        sequences[sequence.id] = sequence
        waiting.append(sequence.id)
    }

    /// Sequences waiting or running.
    public var liveCount: Int { running.count + waiting.count }
    /// Sequences holding pages.
    public var runningCount: Int { running.count }
    /// Sequences queued.
    public var waitingCount: Int { waiting.count }

    /// Plans the next step; empty when nothing can run.
    public mutating func schedule() -> StepPlan {
        scheduledTokens = [:]
        var budget = limits.maxTokensPerStep
        var chosen: [SequenceID] = []

        // Decoders first, one token each, in arrival order.
        for id in running where sequences[id]!.isDecoding {
            guard budget > 0, chosen.count < limits.maxSequencesPerStep else { break }
            guard sequences[id]?.status == .running else { continue }  // preempted as a victim below
            guard reserveOrPreempt(id, tokens: sequences[id]!.computedCount + 1, chosen: chosen) else { continue }
            chosen.append(id)
            scheduledTokens[id] = 1
            budget -= 1
        }
        // Then prefill chunks: running sequences mid-prompt, then waiting ones in order.
        let prefilling = running.filter { !sequences[$0]!.isDecoding }
        for id in prefilling + Array(waiting) {
            guard budget > 0, chosen.count < limits.maxSequencesPerStep else { break }
            guard let sequence = sequences[id], !chosen.contains(id) else { continue }
            let chunk = min(sequence.pendingCount, budget)
            if sequence.status == .running {
                guard reserveOrPreempt(id, tokens: sequence.computedCount + chunk, chosen: chosen) else { continue }
            } else {
                // Waiting sequences never preempt: admission stops at the first that does not fit.
                guard kvCache.reserve(id, model: sequence.model, tokens: sequence.computedCount + chunk) else { break }
                waiting.removeAll { $0 == id }
                running.append(id)
                sequences[id]!.status = .running
            }
            chosen.append(id)
            scheduledTokens[id] = chunk
            budget -= chunk
        }
        return makePlan(chosen)
    }

    /// Reserves pages for a running sequence, preempting the newest running sequences not yet
    /// chosen this step until it fits. Returns false when `id` itself had to be preempted.
    private mutating func reserveOrPreempt(_ id: SequenceID, tokens: Int, chosen: [SequenceID]) -> Bool {
        let model = sequences[id]!.model
        while !kvCache.reserve(id, model: model, tokens: tokens) {
            guard let victim = running.last(where: { $0 != id && !chosen.contains($0) }) else {
                preempt(id)
                return false
            }
            preempt(victim)
        }
        return true
    }

    /// Drops a running sequence's cache and queues it again at the front.
    private mutating func preempt(_ id: SequenceID) {
        kvCache.release(id)
        running.removeAll { $0 == id }
        scheduledTokens[id] = nil
        sequences[id]!.computedCount = 0
        sequences[id]!.status = .waiting
        sequences[id]!.preemptionCount += 1
        preemptionTotal += 1
        waiting.prepend(id)
    }

    /// Groups the chosen sequences into one job per model.
    private func makePlan(_ chosen: [SequenceID]) -> StepPlan {
        var jobs: [ModelID: JobPlan] = [:]
        var order: [ModelID] = []
        for id in chosen {
            let sequence = sequences[id]!
            let count = scheduledTokens[id]!
            let start = sequence.computedCount
            if jobs[sequence.model] == nil {
                order.append(sequence.model)
                jobs[sequence.model] = JobPlan(model: sequence.model, phase: .decode, tokenIDs: [], positions: [], slotMapping: [], sequences: [])
            }
            var job = jobs[sequence.model]!
            let queryStart = job.tokenIDs.count
            for position in start..<(start + count) {
                job.tokenIDs.append(sequence.token(at: position))
                job.positions.append(Int32(position))
                job.slotMapping.append(kvCache.slot(id, model: sequence.model, position: position))
            }
            if count > 1 || !sequence.isDecoding { job.phase = .prefill }
            let samples = start + count == sequence.tokenCount
            let needsHistory = sequence.parameters.needsHistory
            let sample = samples ? SampleRequest(
                parameters: sequence.parameters, generatedCount: sequence.outputTokens.count,
                promptTokens: needsHistory ? sequence.promptTokens : [],
                outputTokens: needsHistory ? sequence.outputTokens : []) : nil
            job.sequences.append(SequencePlan(
                sequenceID: id, queryStart: queryStart, queryCount: count, contextLength: start + count,
                pageTable: kvCache.pageTable(id), sample: sample))
            jobs[sequence.model] = job
        }
        return StepPlan(jobs: order.map { jobs[$0]! })
    }

    /// Records the step's work: scheduled tokens are now cached and sampled tokens appended.
    /// Returns the sequences that received a token, in step order.
    public mutating func commit(_ result: StepResult) -> [(SequenceID, SampledToken)] {
        var appended: [(SequenceID, SampledToken)] = []
        for id in running where scheduledTokens[id] != nil {
            sequences[id]!.computedCount += scheduledTokens[id]!
            if let sample = result.samples[id] {
                sequences[id]!.outputTokens.append(sample.tokenID)
                appended.append((id, sample))
            }
        }
        scheduledTokens = [:]
        return appended
    }

    /// Ends a sequence (finished, aborted or failed) and frees its pages at once.
    public mutating func finish(_ id: SequenceID, reason: FinishReason) {
        guard sequences[id] != nil else { return }
        kvCache.release(id)
        running.removeAll { $0 == id }
        waiting.removeAll { $0 == id }
        scheduledTokens[id] = nil
        sequences[id] = nil
    }
}
