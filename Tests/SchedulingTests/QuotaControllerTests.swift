import LLMuxCore
import Scheduling
import Testing

@Suite struct QuotaControllerTests {
    let a = ModelID("a"), b = ModelID("b"), c = ModelID("c")

    @Test func initialQuotasFollowRateTimesKVSize() {
        // Weights 3 : 1 : 0 ... plus rounding: quotas sum to the pool.
        let quotas = QuotaController(pageCount: 100, weights: [a: 3, b: 1, c: 1])
        #expect(quotas.quota(a) == 60 && quotas.quota(b) == 20 && quotas.quota(c) == 20)
        #expect(quotas.isConsistent)
    }

    @Test func unusedQuotaMovesToBlockedModelsAfterTheInterval() {
        var quotas = QuotaController(pageCount: 100, weights: [a: 1, b: 1])
        quotas.adapt(now: 0, interval: 2, usedPages: [:])  // starts the clock
        quotas.noteBlocked(b)
        quotas.adapt(now: 1, interval: 2, usedPages: [a: 10, b: 50])
        #expect(quotas.quota(b) == 50, "nothing moves before the interval")
        quotas.adapt(now: 2.5, interval: 2, usedPages: [a: 10, b: 50])
        // a keeps what it uses plus half its slack: 10 + 40 / 2 = 30; b gets the other 20.
        #expect(quotas.quota(a) == 30 && quotas.quota(b) == 70)
        #expect(quotas.isConsistent && quotas.moveCount == 1)
        // Without new refusals nothing moves.
        quotas.adapt(now: 5, interval: 2, usedPages: [a: 10, b: 70])
        #expect(quotas.quota(b) == 70)
    }

    @Test func donorsKeepAFloor() {
        var quotas = QuotaController(pageCount: 80, weights: [a: 1, b: 1])
        quotas.adapt(now: 0, interval: 1, usedPages: [:])
        for step in 1...20 {
            quotas.noteBlocked(b)
            quotas.adapt(now: Double(step), interval: 1, usedPages: [a: 0, b: quotas.quota(b)])
        }
        #expect(quotas.quota(a) >= 5, "a keeps its floor of pageCount / (8 × models)")
        #expect(quotas.isConsistent)
    }
}
