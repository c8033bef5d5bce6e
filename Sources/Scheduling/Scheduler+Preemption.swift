import KVMemory
import LLMuxCore

/// Making room in the pool by preemption (recompute).
extension Scheduler {
    /// Which sequences may be preempted to make room.
    enum VictimRule {
        /// Only the same model's (spatial isolation).
        case sameModel
        /// Models over their quota first, then the newest of any model.
        case overQuotaFirst
        /// The newest of any model.
        case anyModel
    }

    /// Reserves pages for a running sequence, preempting others by `victims` until it fits.
    /// Returns false when it could not: then `id` itself was preempted, or, when pages may come
    /// free once jobs in flight end (their sequences become candidates, or were finished and
    /// give their pages back), it keeps its cache and waits a step: recomputing it would waste work.
    /// A waiting sequence holds back admissions (`pageWaiters`) until it has its page.
    mutating func reserveOrPreempt(_ id: SequenceID, tokens: Int, victims: VictimRule) -> Bool {
        let model = sequences[id]!.model
        while true {
            let withinShare = policy != .spatial
                || kvCache.usedPagesByModel[model, default: 0] + kvCache.additionalPagesNeeded(id, model: model, tokens: tokens) <= quotas.quota(model)
            if withinShare && kvCache.reserve(id, model: model, tokens: tokens) {
                pageWaiters.remove(id)
                return true
            }
            guard let victim = pickVictim(for: id, rule: victims, includeInFlight: false) else {
                let roomLater = !releaseOnCompletion.isEmpty || pickVictim(for: id, rule: victims, includeInFlight: true) != nil
                if roomLater {
                    pageWaiters.insert(id)
                    pageWaitsByModel[model, default: 0] += 1
                } else {
                    preempt(id)
                }
                return false
            }
            preempt(victim)
        }
    }

    /// The newest running sequence not chosen for this plan that `rule` allows; sequences in
    /// flight only with `includeInFlight` (they are never preempted: the question is only
    /// whether one could be once its job ends).
    private func pickVictim(for id: SequenceID, rule: VictimRule, includeInFlight: Bool) -> SequenceID? {
        let model = sequences[id]!.model
        let candidates = running.filter {
            $0 != id && scheduledTokens[$0] == nil && (includeInFlight || ticketBySequence[$0] == nil)
        }
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
}
