import KVMemory
import LLMuxCore

/// Step planning under each policy.
extension Scheduler {
    /// Plans the next step at time `now` (seconds, any origin): new jobs for the lanes that have
    /// none in flight, each with its ticket and partition, recorded as in flight. Empty when
    /// nothing can start.
    public mutating func schedule(now: Double = 0) -> StepPlan {
        scheduledTokens = [:]
        chosen = []
        laneStart = 0
        var budget = limits.maxTokensPerStep
        switch policy {
        case .temporal:
            // One lane: the job in flight has the whole device, nothing starts beside it. Models
            // take turns step by step (round robin over the models with live sequences), the
            // time-slicing baseline of MuxServe's evaluation; letting the model of the oldest
            // sequence keep the device until that sequence ends would starve the others.
            guard !isBusy(.unit) else { return StepPlan(jobs: []) }
            let live = Set(sequences.values.map(\.model))
            for offset in models.indices {
                let model = models[(offset + roundRobinStart) % models.count]
                guard live.contains(model) else { continue }
                scheduleDecodes(of: model, budget: &budget, victims: .anyModel)
                schedulePrefills(of: model, budget: &budget, admission: .pool, victims: .anyModel)
                if !chosen.isEmpty {
                    roundRobinStart = (models.firstIndex(of: model)! + 1) % models.count
                    break
                }
            }
        case .spatial:
            // A lane per model: one model's long job never holds back another's.
            for model in models where !isBusy(.model(model)) {
                startLane()
                var share = spatialTokenBudget[model]!
                scheduleDecodes(of: model, budget: &share, victims: .sameModel)
                schedulePrefills(of: model, budget: &share, admission: .strictQuota, victims: .sameModel)
            }
        case .mux where limits.mixesMuxPhases:
            quotas.adapt(now: now, interval: limits.quotaInterval, usedPages: kvCache.usedPagesByModel)
            // A lane per model with its own budget, as temporal's one job has: the jobs run side by
            // side. Its prompt tokens are held to what the model's per-token target allows.
            let limit = limits.mixedPromptTokenLimit
            for model in models where !isBusy(.model(model)) {
                measureMixedJob(of: model, now: now)
                startLane()
                var share = limits.maxTokensPerStep
                scheduleDecodes(of: model, budget: &share, victims: .overQuotaFirst)
                var promptShare = min(share, mixedPromptAllowance(of: model, now: now))
                schedulePrefills(of: model, budget: &promptShare, admission: .quota, victims: .overQuotaFirst,
                                 pendingTokens: limit.map { 0...$0 })
            }
            // Prompts past the limit: the prefill lane, on a split beside the mixed jobs.
            if let limit, limit < Int.max, !isBusy(.prefill) {
                startLane()
                let start = chosen.count
                var share = limits.maxTokensPerStep
                scheduleMuxPrefills(budget: &share, pendingTokens: (limit + 1)...Int.max)
                prefillLaneSequences = Set(chosen[start...])
            }
        case .mux:
            quotas.adapt(now: now, interval: limits.quotaInterval, usedPages: kvCache.usedPagesByModel)
            // A decode lane per model: decode steps go on while the prefill lane is busy.
            for model in models where !isBusy(.decode(model)) {
                startLane()
                scheduleDecodes(of: model, budget: &budget, victims: .overQuotaFirst)
            }
            startLane()
            if !isBusy(.prefill) { scheduleMuxPrefills(budget: &budget) }
        }
        let splitPhases = policy == .mux ? !limits.mixesMuxPhases : policy == .temporal && limits.separatesTemporalPhases
        var plan = makePlan(splitPhases: splitPhases)
        assignPartitions(&plan, now: now)
        register(&plan)
        if policy == .mux { noteDecodeLaunches(now: now) }
        scheduledTokens = [:]
        chosen = []
        prefillLaneSequences = []
        return plan
    }

    /// Marks where the next lane's sequences start in `chosen`. On an asynchronous executor each
    /// lane's job runs on its own, so the sequence limit holds per job: a full decode job of one
    /// model must not leave the other lanes planned in the same call empty. A synchronous
    /// executor runs the whole plan as one step, which the limit then bounds.
    private mutating func startLane() {
        if asynchronous { laneStart = chosen.count }
    }

    /// Whether the job being planned can take another sequence.
    private var jobHasRoom: Bool { chosen.count - laneStart < limits.maxSequencesPerStep }

    /// The prefill lane of `mux`: the budget goes round-robin, the first model with prompt work
    /// gets first call on it. On an asynchronous executor only that model's job is planned (the
    /// lane holds one job; the next model's turn comes when it ends); a synchronous one runs the
    /// step's prefill jobs back to back anyway, so it takes as many models as the budget allows.
    /// `pendingTokens` (when given) limits it to prompts with that many tokens left to compute.
    private mutating func scheduleMuxPrefills(budget: inout Int, pendingTokens: ClosedRange<Int>? = nil) {
        let rotated = models.indices.map { models[($0 + roundRobinStart) % models.count] }
        var first: Int?
        for model in rotated where budget > 0 {
            let before = chosen.count
            schedulePrefills(of: model, budget: &budget, admission: .quota, victims: .overQuotaFirst, pendingTokens: pendingTokens)
            guard chosen.count > before else { continue }
            if first == nil { first = models.firstIndex(of: model) }
            if asynchronous { break }
        }
        if let first { roundRobinStart = (first + 1) % models.count }
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

    /// One token for each decoding sequence of `model` not in flight, in arrival order.
    private mutating func scheduleDecodes(of model: ModelID, budget: inout Int, victims: VictimRule) {
        for id in running where sequences[id]?.model == model && sequences[id]!.isDecoding {
            guard budget > 0, jobHasRoom else { return }
            guard sequences[id]?.status == .running, ticketBySequence[id] == nil else { continue }  // preempted meanwhile, or busy
            guard reserveOrPreempt(id, tokens: sequences[id]!.computedCount + 1, victims: victims) else { continue }
            choose(id, tokens: 1)
            budget -= 1
        }
    }

    /// Prompt chunks of `model`: running sequences mid-prompt first, then waiting ones in order;
    /// with `pendingTokens`, only prompts with that many tokens left to compute (the others are
    /// passed over, not waited for).
    private mutating func schedulePrefills(of model: ModelID, budget: inout Int, admission: AdmissionRule, victims: VictimRule,
                                           pendingTokens: ClosedRange<Int>? = nil) {
        let prefilling = running.filter { sequences[$0]?.model == model && !sequences[$0]!.isDecoding }
        for id in prefilling + Array(waiting[model]!) {
            guard budget > 0, jobHasRoom else { return }
            guard let sequence = sequences[id], scheduledTokens[id] == nil, ticketBySequence[id] == nil else { continue }
            if let pendingTokens, !pendingTokens.contains(sequence.pendingCount) { continue }
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
        guard admissionOpen(model), runningCount(model) < limits.maxSequencesPerStep else { return false }
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

    /// Whether `model` may admit a sequence at all now (`admits`, and the prompt work the `mux`
    /// split counts). Pages that come free go to running sequences waiting for one first (under
    /// `spatial`, to those of the same model). Callers also hold a model to fewer running
    /// sequences than one job carries: decode jobs take them oldest first, so beyond that the
    /// newest would get no token until older ones end. (A mixed step admits only within its own
    /// sequence limit anyway; `mux`'s prefill lane admitted past it beside the decode lane: 8B
    /// TPOT p99 125 ms at 60 requests/s on an H100.)
    func admissionOpen(_ model: ModelID) -> Bool {
        policy == .spatial ? !pageWaiters.contains { sequences[$0]?.model == model } : pageWaiters.isEmpty
    }

    private mutating func choose(_ id: SequenceID, tokens: Int) {
        chosen.append(id)
        scheduledTokens[id] = tokens
    }
}
