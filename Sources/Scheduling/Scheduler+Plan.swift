import KVMemory
import LLMuxCore

/// Turning the chosen sequences into jobs, and placing the jobs on SM partitions.
extension Scheduler {
    /// Builds the plan: one job per model (per model and phase when `splitPhases`), prefill
    /// jobs first. Tickets and partitions are filled in afterwards.
    func makePlan(splitPhases: Bool) -> StepPlan {
        // Jobs are grown in place in an array: a copy taken out of a dictionary and appended to
        // would copy its arrays at every sequence (quadratic in the batch: 2.4 ms of planning per
        // step at 256 decoding sequences on an H100 host).
        var jobs: [JobPlan] = []
        var indexByKey: [JobKey: Int] = [:]
        for id in chosen {
            let sequence = sequences[id]!
            let count = scheduledTokens[id]!
            let start = sequence.computedCount
            let phase: JobPhase = count == 1 && sequence.isDecoding ? .decode : .prefill
            let key = JobKey(model: sequence.model, phase: splitPhases || prefillLaneSequences.contains(id) ? phase : nil)
            let index: Int
            if let existing = indexByKey[key] {
                index = existing
            } else {
                index = jobs.count
                indexByKey[key] = index
                jobs.append(JobPlan(model: sequence.model, phase: phase, tokenIDs: [], positions: [], slotMapping: [], sequences: []))
            }
            let queryStart = jobs[index].tokenIDs.count
            for position in start..<(start + count) {
                jobs[index].tokenIDs.append(sequence.token(at: position))
                jobs[index].positions.append(Int32(position))
                jobs[index].slotMapping.append(kvCache.slot(id, model: sequence.model, position: position))
            }
            if phase == .prefill { jobs[index].phase = .prefill }
            let needsHistory = sequence.parameters.needsHistory
            let sample = start + count == sequence.tokenCount ? SampleRequest(
                parameters: sequence.parameters, generatedCount: sequence.outputTokens.count,
                promptTokens: needsHistory ? sequence.promptTokens : [],
                outputTokens: needsHistory ? sequence.outputTokens : []) : nil
            jobs[index].sequences.append(SequencePlan(
                sequenceID: id, queryStart: queryStart, queryCount: count, contextLength: start + count,
                pageTable: kvCache.pageTable(id), sample: sample))
        }
        return StepPlan(jobs: jobs.filter { $0.phase == .prefill } + jobs.filter { $0.phase == .decode })
    }

    /// Sets every job's partitioning and partition. Without granted partitionings everything
    /// runs on (0, 0), the whole device.
    ///
    /// - `temporal`: (0, 0): one job at a time, on the whole device.
    /// - `spatial`: (1, model index): each model on its fixed slice (`PartitionLayout`).
    /// - `mux`: prefill and decode of colocated models on different SM shares at once, as in
    ///   MuxServe (Duan et al. 2024). A prefill job launched while there is decode work takes
    ///   partition 0 of the split that `PartitionLayout.bestMuxSplit` picks for the prompt work
    ///   that can start (`runnablePromptWork`); decode jobs launched while it runs (or
    ///   planned with it) take partition 1 of the same split, so the split stays fixed until the
    ///   prefill job ends. With no decode work the
    ///   prefill job gets the whole device, and with no prefill job in flight decode jobs do too:
    ///   a partition nobody uses would be wasted SMs. (A decode job already running on the whole
    ///   device when a prefill job starts on a split overlaps it until it ends; the next decode
    ///   jobs take the split's decode partition.) With `mixesMuxPhases`: `assignMixedPartitions`.
    ///
    /// With latency targets (`SchedulerLimits.latencyTargets`) the split's cost also weighs how
    /// far prompts and decode steps are behind them at `now` (`latencyPressure`).
    mutating func assignPartitions(_ plan: inout StepPlan, now: Double) {
        for index in plan.jobs.indices { (plan.jobs[index].partitioning, plan.jobs[index].partition) = (0, 0) }
        guard partitionings.count > 1 else { return }
        switch policy {
        case .temporal:
            return
        case .spatial:
            guard partitionings[1].count >= models.count else { return }
            for index in plan.jobs.indices {
                plan.jobs[index].partitioning = 1
                plan.jobs[index].partition = models.firstIndex(of: plan.jobs[index].model)!
            }
        case .mux where limits.mixesMuxPhases:
            assignMixedPartitions(&plan, now: now)
        case .mux:
            var split = currentMuxSplit
            if plan.jobs.contains(where: { $0.phase == .prefill }) {
                let decodeInFlight = inFlight.values.contains { $0.phase == .decode }
                let decodeWork = decodeInFlight || plan.jobs.contains { $0.phase == .decode } || decodingCount > 0
                if decodeWork {
                    let runnable = runnablePromptWork
                    let pressure = latencyPressure(now: now, runnable: runnable)
                    split = PartitionLayout.bestMuxSplit(partitionings: partitionings, waitingPrefillRequests: runnable.count,
                                                         decodingSequences: decodingCount,
                                                         prefillWeight: pressure.prefill, decodeWeight: pressure.decode)
                } else {
                    split = nil
                }
                for index in plan.jobs.indices where plan.jobs[index].phase == .prefill {
                    if let split { (plan.jobs[index].partitioning, plan.jobs[index].partition) = (split, 0) }
                }
            }
            guard let split else { return }
            for index in plan.jobs.indices where plan.jobs[index].phase == .decode {
                (plan.jobs[index].partitioning, plan.jobs[index].partition) = (split, 1)
            }
        }
    }

    /// `mux` with mixed phases: every job on the whole device, except while a prefill-lane job
    /// (a prompt past `mixedPromptTokenLimit`) runs beside other work: then it takes partition 0
    /// of the split of least cost for the long prompts that can start (weighed by how far they and
    /// the decoding models are behind their latency targets, as `split`'s is), and the mixed jobs
    /// launched meanwhile take partition 1, as `split`'s decode jobs do.
    private mutating func assignMixedPartitions(_ plan: inout StepPlan, now: Double) {
        var split = currentMuxSplit
        if let index = plan.jobs.firstIndex(where: { lane(for: $0) == .prefill }) {
            let otherWork = inFlight.values.contains { $0.lane != .prefill } || plan.jobs.count > 1 || decodingCount > 0
            split = nil
            if otherWork, let limit = limits.mixedPromptTokenLimit {
                let longPrompts = runnablePromptWork.filter { (sequences[$0]?.pendingCount ?? 0) > limit }
                let pressure = latencyPressure(now: now, runnable: longPrompts)
                split = PartitionLayout.bestMuxSplit(partitionings: partitionings, waitingPrefillRequests: max(1, longPrompts.count),
                                                     decodingSequences: decodingCount,
                                                     prefillWeight: pressure.prefill, decodeWeight: pressure.decode)
            }
            if let split { (plan.jobs[index].partitioning, plan.jobs[index].partition) = (split, 0) }
        }
        guard let split else { return }
        for index in plan.jobs.indices where lane(for: plan.jobs[index]) != .prefill {
            (plan.jobs[index].partitioning, plan.jobs[index].partition) = (split, 1)
        }
    }

    /// Running sequences past their prompt (in flight or not): the decode load.
    var decodingCount: Int { running.count { sequences[$0]?.isDecoding == true } }

    /// The prompt work that a larger prefill partition would serve sooner: sequences admitted
    /// mid-prompt (those of the prefill job being planned included) and the waiting ones that
    /// `admits` would take now, in each model's queue order: while their whole prompts fit in
    /// the pages still free, their model runs fewer sequences than a job carries, and no running
    /// sequence waits for a page (`admissionOpen`). Requests that cannot start do not count: more
    /// SMs would not start them sooner, and under a full pool a queue of hundreds of them would
    /// move every decode job onto the smallest decode partition.
    var runnablePromptWork: [SequenceID] {
        var free = kvCache.freePageCount
        var work = sequences.values.filter { $0.status == .running && !$0.isDecoding }.map(\.id)
        for model in models where admissionOpen(model) {
            var admitted = runningCount(model)
            for id in waiting[model] ?? [] {
                guard let sequence = sequences[id], admitted < limits.maxSequencesPerStep else { break }
                let need = kvCache.pagesNeeded(tokens: sequence.tokenCount, model: model)
                guard need <= free else { break }
                free -= need
                admitted += 1
                work.append(id)
            }
        }
        return work
    }
}

/// Which job a sequence's tokens go to: its model, and its phase when phases run apart.
private struct JobKey: Hashable {
    let model: ModelID
    let phase: JobPhase?
}
