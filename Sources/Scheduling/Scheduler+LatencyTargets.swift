import LLMuxCore

/// How far the unit is behind its models' latency targets (`SchedulerLimits.latencyTargets`),
/// which `mux` weighs when it splits the SMs between prefill and decode.
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
    /// - decode: over models with decoding sequences, the time between their last two decode
    ///   job launches (`decodeTokenInterval`, what each of their sequences waits per token) over
    ///   their per-token target.
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

    /// Notes when each model's decode job of `plan` launched, and the time since its previous
    /// one (its per-token time). A model whose decode lane is free and gets no job has no decode
    /// work now; its next launch starts a new measurement, so an idle gap is not read as a slow
    /// token.
    mutating func noteDecodeLaunches(_ plan: StepPlan, now: Double) {
        let launched = Set(plan.jobs.filter { $0.phase == .decode }.map(\.model))
        for model in models {
            if launched.contains(model) {
                if let last = lastDecodeLaunch[model] { decodeTokenInterval[model] = now - last }
                lastDecodeLaunch[model] = now
            } else if !isBusy(.decode(model)) {
                lastDecodeLaunch[model] = nil
                decodeTokenInterval[model] = nil
            }
        }
    }
}
