import KVMemory
import LLMuxCore

/// Step planning under each policy.
extension Scheduler {
    /// Plans the next step at time `now` (seconds, any origin); empty when nothing can run.
    public mutating func schedule(now: Double = 0) -> StepPlan {
        scheduledTokens = [:]
        chosen = []
        var budget = limits.maxTokensPerStep
        switch policy {
        case .temporal:
            // First come first served across models: the model of the oldest live sequence runs alone.
            guard let oldest = sequences.keys.min(), let model = sequences[oldest]?.model else { return StepPlan(jobs: []) }
            scheduleDecodes(of: model, budget: &budget, victims: .anyModel)
            schedulePrefills(of: model, budget: &budget, admission: .pool, victims: .anyModel)
        case .spatial:
            for model in models {
                var share = spatialTokenBudget[model]!
                scheduleDecodes(of: model, budget: &share, victims: .sameModel)
                schedulePrefills(of: model, budget: &share, admission: .strictQuota, victims: .sameModel)
            }
        case .mux:
            quotas.adapt(now: now, interval: limits.quotaInterval, usedPages: kvCache.usedPagesByModel)
            for model in models { scheduleDecodes(of: model, budget: &budget, victims: .overQuotaFirst) }
            // Prefill budget goes round-robin: the first model with prompt work gets first call on it.
            let rotated = models.indices.map { models[($0 + roundRobinStart) % models.count] }
            var first: Int?
            for model in rotated where budget > 0 {
                let before = chosen.count
                schedulePrefills(of: model, budget: &budget, admission: .quota, victims: .overQuotaFirst)
                if first == nil && chosen.count > before { first = models.firstIndex(of: model) }
            }
            if let first { roundRobinStart = (first + 1) % models.count }
        }
        return makePlan(splitPhases: policy == .mux)
    }

    /// Which sequences may be preempted to make room.
    enum VictimRule {
        /// Only the same model's (spatial isolation).
        case sameModel
        /// Models over their quota first, then the newest of any model.
        case overQuotaFirst
        /// The newest of any model.
        case anyModel
    }

    /// How a waiting sequence is admitted.
    enum AdmissionRule {
        /// Whenever the pool has room.
        case pool
        /// When the model stays within its quota, or holds nothing (so no model starves).
        case quota
        /// Only within the model's fixed share.
        case strictQuota
    }

    /// One token for each decoding sequence of `model`, in arrival order.
    private mutating func scheduleDecodes(of model: ModelID, budget: inout Int, victims: VictimRule) {
        for id in running where sequences[id]?.model == model && sequences[id]!.isDecoding {
            guard budget > 0, chosen.count < limits.maxSequencesPerStep else { return }
            guard sequences[id]?.status == .running else { continue }  // preempted meanwhile
            guard reserveOrPreempt(id, tokens: sequences[id]!.computedCount + 1, victims: victims) else { continue }
            choose(id, tokens: 1)
            budget -= 1
        }
    }

    /// Prompt chunks of `model`: running sequences mid-prompt first, then waiting ones in order.
    private mutating func schedulePrefills(of model: ModelID, budget: inout Int, admission: AdmissionRule, victims: VictimRule) {
        let prefilling = running.filter { sequences[$0]?.model == model && !sequences[$0]!.isDecoding }
        for id in prefilling + Array(waiting[model]!) {
            guard budget > 0, chosen.count < limits.maxSequencesPerStep else { return }
            guard let sequence = sequences[id], scheduledTokens[id] == nil else { continue }
            let chunk = min(sequence.pendingCount, budget)
            let tokens = sequence.computedCount + chunk
            if sequence.status == .running {
                guard reserveOrPreempt(id, tokens: tokens, victims: victims) else { continue }
            } else {
                guard admits(sequence, tokens: tokens, rule: admission),
                      kvCache.reserve(id, model: model, tokens: tokens) else { return }
                waiting[model]!.removeAll { $0 == id }
                running.append(id)
                sequences[id]!.status = .running
            }
            choose(id, tokens: chunk)
            budget -= chunk
        }
    }

    /// Whether a waiting sequence may take pages now; notes quota refusals for the controller.
    private mutating func admits(_ sequence: SequenceState, tokens: Int, rule: AdmissionRule) -> Bool {
        let model = sequence.model
        let used = kvCache.usedPagesByModel[model] ?? 0
        // Like vLLM, admission looks at the pages of this chunk only; growth past the share is
        // handled by preemption, which keeps memory busy at the price of occasional recompute.
        let need = kvCache.pagesNeeded(tokens: tokens, model: model)
        switch rule {
        case .pool:
            return true
        case .strictQuota:
            return used + need <= quotas.quota(model)
        case .quota:
            if used == 0 || used + need <= quotas.quota(model) { return true }
            quotas.noteBlocked(model)
            return false
        }
    }

    private mutating func choose(_ id: SequenceID, tokens: Int) {
        chosen.append(id)
        scheduledTokens[id] = tokens
    }

    /// Reserves pages for a running sequence, preempting others by `victims` until it fits.
    /// Returns false when `id` itself had to be preempted.
    private mutating func reserveOrPreempt(_ id: SequenceID, tokens: Int, victims: VictimRule) -> Bool {
        let model = sequences[id]!.model
        while true {
            let withinShare = policy != .spatial
                || kvCache.usedPagesByModel[model, default: 0] + kvCache.additionalPagesNeeded(id, model: model, tokens: tokens) <= quotas.quota(model)
            if withinShare && kvCache.reserve(id, model: model, tokens: tokens) { return true }
            guard let victim = pickVictim(for: id, rule: victims) else {
                preempt(id)
                return false
            }
            preempt(victim)
        }
    }

    /// The newest running sequence not chosen this step that `rule` allows.
    private func pickVictim(for id: SequenceID, rule: VictimRule) -> SequenceID? {
        let model = sequences[id]!.model
        let candidates = running.filter { $0 != id && scheduledTokens[$0] == nil }
        switch rule {
        case .sameModel:
            return candidates.last { sequences[$0]!.model == model }
        case .anyModel:
            return candidates.last
        case .overQuotaFirst:
            let overQuota = candidates.last {
                let other = sequences[$0]!.model
                return (kvCache.usedPagesByModel[other] ?? 0) > quotas.quota(other)
            }
            return overQuota ?? candidates.last
        }
    }

    /// Builds the plan: one job per model (per model and phase when `splitPhases`), prefill
    /// jobs first.
    private func makePlan(splitPhases: Bool) -> StepPlan {
        var jobs: [String: JobPlan] = [:]
        var order: [String] = []
        for id in chosen {
            let sequence = sequences[id]!
            let count = scheduledTokens[id]!
            let start = sequence.computedCount
            let phase: JobPhase = count == 1 && sequence.isDecoding ? .decode : .prefill
            let key = splitPhases ? "\(sequence.model.name)/\(phase.rawValue)" : sequence.model.name
            if jobs[key] == nil {
                order.append(key)
                jobs[key] = JobPlan(model: sequence.model, partition: splitPhases && phase == .decode ? 1 : 0,
                                    phase: phase, tokenIDs: [], positions: [], slotMapping: [], sequences: [])
            }
            var job = jobs[key]!
            let queryStart = job.tokenIDs.count
            for position in start..<(start + count) {
                job.tokenIDs.append(sequence.token(at: position))
                job.positions.append(Int32(position))
                job.slotMapping.append(kvCache.slot(id, model: sequence.model, position: position))
            }
            if phase == .prefill { job.phase = .prefill }
            let needsHistory = sequence.parameters.needsHistory
            let sample = start + count == sequence.tokenCount ? SampleRequest(
                parameters: sequence.parameters, generatedCount: sequence.outputTokens.count,
                promptTokens: needsHistory ? sequence.promptTokens : [],
                outputTokens: needsHistory ? sequence.outputTokens : []) : nil
            job.sequences.append(SequencePlan(
                sequenceID: id, queryStart: queryStart, queryCount: count, contextLength: start + count,
                pageTable: kvCache.pageTable(id), sample: sample))
            jobs[key] = job
        }
        let prefillFirst = order.filter { jobs[$0]!.phase == .prefill } + order.filter { jobs[$0]!.phase == .decode }
        return StepPlan(jobs: prefillFirst.map { jobs[$0]! })
    }
}
