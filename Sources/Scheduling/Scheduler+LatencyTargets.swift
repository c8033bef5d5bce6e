import LLMuxCore

/// How far the unit is behind its models' latency targets (`SchedulerLimits.latencyTargets`),
/// which `mux` weighs when it splits the SMs between prefill and decode, and, with mixed jobs,
/// when it sizes each model's prompt chunk (`mixedPromptAllowance`).
///
/// A prompt waiting past its model's time-to-first-token target asks for a larger prefill
/// partition; a model whose decode steps come slower than its time-per-output-token target asks
/// for a larger decode partition. Queue lengths alone cannot see either: a few long-waiting
/// prompts of a small model weigh as little as a few fresh ones, and a decode partition that is
/// too small for one large model looks the same as one that suits a small model. MuxWise
/// (arXiv 2504.14489) and Bullet (arXiv 2504.19516) steer their prefill/decode SM splits by SLO
/// slack in the same spirit; this is the cheap form: a multiplier on each term of
/// `PartitionLayout.muxSplitCost`, 1 while every target is met, so without targets (or within
/// them) the split is the queue-length rule unchanged.
extension Scheduler {
    /// The prefill and decode weights of the split cost at time `now`: each is the worst ratio
    /// of observed to target latency over the work it serves, at least 1.
    ///
    /// - prefill: over prompts that can start now (`runnablePromptWork`) and have no token yet,
    ///   their wait so far (`now - arrivalTime`) over their model's first-token target;
    /// - decode: over models with decoding sequences, the time between their last two launches
    ///   of a job with decode tokens (`decodeTokenInterval`, what each of their sequences waits
    ///   per token) over their per-token target.
    func latencyPressure(now: Double, runnable: [SequenceID]) -> (prefill: Double, decode: Double) {
        let targets = limits.latencyTargets
        guard !targets.isEmpty else { return (1, 1) }
        var prefill = 1.0
        for id in runnable {
            guard let sequence = sequences[id], sequence.outputTokens.isEmpty,
                  let target = targets[sequence.model]?.timeToFirstToken, target > 0 else { continue }
            prefill = max(prefill, (now - sequence.arrivalTime) / target)
        }
        var decode = 1.0
        for (model, interval) in decodeTokenInterval {
            guard let target = targets[model]?.timePerOutputToken, target > 0 else { continue }
            decode = max(decode, interval / target)
        }
        return (prefill, decode)
    }

    /// Notes when each model's job with decode tokens launched (the sequences of `chosen` that
    /// take their next token: a decode job under split `mux`, a mixed job with decoding sequences
    /// under mixed `mux`), and the time since its previous one (its per-token time). A model whose
    /// lane for those jobs is free and gets none has no decode work now; its next launch starts a
    /// new measurement, so an idle gap is not read as a slow token. Under mixed `mux` it also
    /// notes the prompt tokens of the job of a model with a per-token target, for
    /// `measureMixedJob`.
    mutating func noteDecodeLaunches(now: Double) {
        var promptTokens: [ModelID: Int] = [:]
        var launched: Set<ModelID> = []
        for id in chosen where !prefillLaneSequences.contains(id) {   // hybrid's long prompts run in a job of their own
            guard let sequence = sequences[id], let count = scheduledTokens[id] else { continue }
            if sequence.isDecoding && count == 1 {
                launched.insert(sequence.model)
            } else {
                promptTokens[sequence.model, default: 0] += count
            }
        }
        let mixed = limits.mixesMuxPhases
        for model in models {
            if launched.contains(model) {
                if let last = lastDecodeLaunch[model] { decodeTokenInterval[model] = now - last }
                lastDecodeLaunch[model] = now
                if mixed && limits.latencyTargets[model]?.timePerOutputToken != nil {
                    mixedJobCosts[model, default: MixedJobCost()].promptTokensInFlight = promptTokens[model] ?? 0
                }
            } else if !isBusy(mixed ? .model(model) : .decode(model)) {
                lastDecodeLaunch[model] = nil
                decodeTokenInterval[model] = nil
                mixedJobCosts[model]?.promptTokensInFlight = nil
                mixedJobCosts[model]?.lastMeasured = nil
            }
        }
    }

    /// Adds the last mixed job of `model` to its `MixedJobCost` once its lane is free: the time
    /// from its launch to `now`, the first planning after it ended, is what its decoding
    /// sequences waited for their token. Measured here rather than at the next launch so that
    /// the job planned next already sizes its prompt chunk by it.
    mutating func measureMixedJob(of model: ModelID, now: Double) {
        guard !isBusy(.model(model)), let prompt = mixedJobCosts[model]?.promptTokensInFlight,
              let launch = lastDecodeLaunch[model] else { return }
        mixedJobCosts[model]!.add(promptTokens: prompt, interval: now - launch)
        mixedJobCosts[model]!.promptTokensInFlight = nil
    }

    /// The fewest prompt tokens a mixed job is held to for its model's per-token target: about
    /// 1 ms of a Llama-3-8B job on an H100 (32,900 prompt tokens/s, BENCHMARKS "CUDA engine"), so
    /// prompts still move when the decode tokens alone take longer than the target.
    public static let minimumMixedPromptTokens = 32

    /// How many prompt tokens `model`'s mixed job may carry when planned at `now`, for its
    /// per-token target `T` (none: the whole budget), stretched while a prompt waits: the
    /// model's tokens may fall behind `T` by as much as its most delayed prompt is behind its
    /// first-token target (`T' = T × max(1, wait / first-token target)`), so neither target is
    /// given up for the other.
    ///
    /// - From the model's `MixedJobCost` line: the most prompt tokens with `base + perToken ×
    ///   tokens ≤ T'` (the whole budget when a budget of prompt tokens adds under 5 % to `base`).
    /// - Before the line is known: half the prompt tokens of the last job timed if it ran over
    ///   `T'` (so the chunks start to differ and the line can be fitted), else the whole budget.
    /// - At least `minimumMixedPromptTokens`, at most the budget.
    ///
    /// In a mixed job every prompt token adds to the time the model's decoding sequences wait for
    /// their next token, so the chunk size trades time to first token against time per output
    /// token.
    func mixedPromptAllowance(of model: ModelID, now: Double) -> Int {
        let budget = limits.maxTokensPerStep
        guard let targets = limits.latencyTargets[model], let tokenTarget = targets.timePerOutputToken, tokenTarget > 0 else { return budget }
        var promptBehind = 1.0
        if let firstTokenTarget = targets.timeToFirstToken, firstTokenTarget > 0 {
            func note(_ id: SequenceID) {
                guard let sequence = sequences[id], sequence.model == model, sequence.outputTokens.isEmpty else { return }
                promptBehind = max(promptBehind, (now - sequence.arrivalTime) / firstTokenTarget)
            }
            // Planned every step: no arrays built.
            running.forEach(note)
            waiting[model]?.forEach(note)
        }
        let target = tokenTarget * promptBehind
        let cost = mixedJobCosts[model] ?? MixedJobCost()
        var allowance = budget
        if let line = cost.line {
            // A whole budget of prompt tokens that adds under 5 % to the token time counts as
            // free: that is within the spread of the measurements.
            if line.perToken * Double(budget) > 0.05 * line.base {
                allowance = Int(min(Double(budget), max(0, (target - line.base) / line.perToken)))
            }
        } else if let last = cost.lastMeasured, last.interval > target {
            allowance = last.promptTokens / 2
        }
        return min(budget, max(Self.minimumMixedPromptTokens, allowance))
    }
}
