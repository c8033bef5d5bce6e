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
    /// new measurement, so an idle gap is not read as a slow token. Each new measurement also
    /// moves the model's mixed prompt cap (`adjustMixedPromptCap`).
    mutating func noteDecodeLaunches(now: Double) {
        let launched = Set(chosen.compactMap { id -> ModelID? in
            guard let sequence = sequences[id], sequence.isDecoding, scheduledTokens[id] == 1 else { return nil }
            return sequence.model
        })
        for model in models {
            if launched.contains(model) {
                if let last = lastDecodeLaunch[model] {
                    decodeTokenInterval[model] = now - last
                    if limits.mixesMuxPhases { adjustMixedPromptCap(of: model, interval: now - last) }
                }
                lastDecodeLaunch[model] = now
            } else if !isBusy(limits.mixesMuxPhases ? .model(model) : .decode(model)) {
                lastDecodeLaunch[model] = nil
                decodeTokenInterval[model] = nil
            }
        }
    }

    /// The fewest prompt tokens a mixed job is held to while its model's tokens come slower than
    /// their target: about 1 ms of a Llama-3-8B job on an H100 (32,900 prompt tokens/s,
    /// BENCHMARKS "CUDA engine"), so prompts still move while the cap is at its floor.
    public static let minimumMixedPromptTokens = 32

    /// How many prompt tokens `model`'s mixed job may carry when planned at `now`: its cap
    /// (`mixedPromptTokenCap`), unless one of its prompts has waited past its first-token target
    /// by more than its tokens are behind their per-token target; then the whole budget, since
    /// that prompt is the further behind.
    ///
    /// In a mixed job every prompt token adds to the time the model's decoding sequences wait for
    /// their next token, so chunk size trades time to first token against time per output token;
    /// Sarathi-Serve (Agrawal et al., OSDI 2024) sizes its chunks for a per-token target in the
    /// same spirit, from an offline profile. This is the feedback form: no profile, the cap
    /// follows the measured launch-to-launch time (`adjustMixedPromptCap`).
    func mixedPromptAllowance(of model: ModelID, now: Double) -> Int {
        let budget = limits.maxTokensPerStep
        guard let cap = mixedPromptTokenCap[model] else { return budget }
        guard let target = limits.latencyTargets[model]?.timeToFirstToken, target > 0 else { return cap }
        let prompts = running.filter { sequences[$0]?.model == model } + Array(waiting[model] ?? [])
        var prefill = 0.0
        for id in prompts {
            guard let sequence = sequences[id], sequence.outputTokens.isEmpty else { continue }
            prefill = max(prefill, (now - sequence.arrivalTime) / target)
        }
        let decode = decodePressure(of: model) ?? 0
        return prefill > max(1, decode) ? budget : cap
    }

    /// A model's time per token over its per-token target; nil without either.
    private func decodePressure(of model: ModelID) -> Double? {
        guard let target = limits.latencyTargets[model]?.timePerOutputToken, target > 0,
              let interval = decodeTokenInterval[model] else { return nil }
        return interval / target
    }

    /// Moves `model`'s mixed prompt cap after a measured per-token time `interval`: halved (down
    /// to `minimumMixedPromptTokens`) when it is over the model's per-token target, raised by a
    /// quarter (at least the minimum; up to the whole budget, where the cap is dropped) when it
    /// is within. Halving reacts within a few jobs to a long prompt that slows every token; the
    /// slower rise keeps the chunk near the largest one the target allows instead of swinging
    /// between double and half of it. No per-token target: no cap.
    mutating func adjustMixedPromptCap(of model: ModelID, interval: Double) {
        let budget = limits.maxTokensPerStep
        guard let target = limits.latencyTargets[model]?.timePerOutputToken, target > 0 else {
            mixedPromptTokenCap[model] = nil
            return
        }
        let cap = mixedPromptTokenCap[model] ?? budget
        let floor = min(Self.minimumMixedPromptTokens, budget)
        let next = interval > target ? max(floor, cap / 2) : cap + max(floor, cap / 4)
        mixedPromptTokenCap[model] = next >= budget ? nil : next
    }
}
