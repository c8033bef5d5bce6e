import Bench
import Testing

@Suite struct WorkloadTests {
    @Test func powerLawSharesFollowTheExponent() {
        let spec = WorkloadSpec(modelCount: 4, totalRate: 10, alpha: 2, duration: 1)
        let shares = spec.rateShares
        #expect(abs(shares.reduce(0, +) - 1) < 1e-12)
        // (i+1)^-2: 1, 1/4, 1/9, 1/16
        #expect(abs(shares[0] / shares[1] - 4) < 1e-9 && abs(shares[0] / shares[3] - 16) < 1e-9)
    }

    @Test func poissonArrivalsMatchRatesAndLengthsMatchMeans() {
        let spec = WorkloadSpec(modelCount: 2, totalRate: 50, alpha: 0, duration: 200, meanPromptLength: 160,
                                meanOutputLength: 340, maxTotalLength: 100_000, seed: 3)
        let requests = spec.generate()
        // 10,000 expected arrivals: the count is within 4 standard deviations (sqrt(10000) = 100).
        #expect(abs(requests.count - 10_000) < 400)
        #expect(zip(requests, requests.dropFirst()).allSatisfy { $0.arrival <= $1.arrival })
        let perModel = requests.filter { $0.modelIndex == 0 }.count
        #expect(abs(perModel - 5_000) < 300)
        let meanPrompt = Double(requests.map(\.promptLength).reduce(0, +)) / Double(requests.count)
        let meanOutput = Double(requests.map(\.outputLength).reduce(0, +)) / Double(requests.count)
        #expect(abs(meanPrompt - 160) < 8 && abs(meanOutput - 340) < 17)
        #expect(spec.generate() == requests, "same seed, same workload")
    }

    @Test func summaryCountsSLOAttainment() {
        var fast = RequestRecord(modelIndex: 0, arrival: 0, promptTokens: 4, soloLatency: 1)
        fast.firstToken = 0.5
        fast.finish = 4
        fast.outputTokens = 8
        var slow = RequestRecord(modelIndex: 0, arrival: 1, promptTokens: 4, soloLatency: 1)
        slow.firstToken = 3
        slow.finish = 9
        slow.outputTokens = 4
        let unfinished = RequestRecord(modelIndex: 1, arrival: 2, promptTokens: 4, soloLatency: 1)
        let summary = LatencySummary([fast, slow, unfinished], duration: 10)
        #expect(summary.completed == 2)
        #expect(abs(summary.sloAttainment5 - 1.0 / 3) < 1e-12)  // latencies 4 and 8: only 4 <= 5
        #expect(abs(summary.sloAttainment10 - 2.0 / 3) < 1e-12)
        #expect(abs(summary.tokensPerSecond - 1.2) < 1e-12)
        #expect(abs(summary.ttftP50 - 1.25) < 1e-12)  // ttfts 0.5 and 2.0
        #expect(summary.itlP50 == nil && summary.itlP99 == nil, "no gaps timed")
        #expect(abs(percentile([1, 2, 3, 4], 0.5) - 2.5) < 1e-12)
    }

    /// Inter-token latency: percentiles over every gap of every request, so one long stall
    /// shows in the p99 where it hides in its request's mean (TPOT).
    @Test func interTokenLatencyCountsEveryGap() throws {
        var steady = RequestRecord(modelIndex: 0, arrival: 0, promptTokens: 4, soloLatency: 1)
        steady.tokenGaps = Array(repeating: 0.01, count: 98)
        var stalled = RequestRecord(modelIndex: 0, arrival: 0, promptTokens: 4, soloLatency: 1)
        stalled.tokenGaps = [0.01, 0.5]
        let summary = LatencySummary([steady, stalled], duration: 1)
        #expect(try #require(summary.itlP50) == 0.01)
        // 100 gaps pooled, one of them 0.5 s: the 99th percentile sits 0.01 of the way from the
        // 99th smallest (0.01) to the largest, 0.01 + 0.0049.
        #expect(abs(try #require(summary.itlP99) - 0.0149) < 1e-12)
    }

    /// MuxServe's metric: per model, completed requests over that model's last finish, weighted
    /// by rate; computed by hand for three models.
    @Test func muxServeThroughputWeighsEachModelsOwnMakespanByRate() {
        func record(_ model: Int, finish: Double?, failed: Bool = false) -> RequestRecord {
            var record = RequestRecord(modelIndex: model, arrival: 0, promptTokens: 4, soloLatency: 1)
            record.finish = finish
            record.failed = failed
            return record
        }
        let records = [
            record(0, finish: 2), record(0, finish: 4), record(0, finish: 8),  // 3 requests / 8 s
            record(1, finish: 1), record(1, finish: 2), record(1, finish: 30, failed: true),  // 2 / 2 s; the failed one does not count
            record(2, finish: nil),  // nothing completed: 0
        ]
        let perModel: [Double] = [3.0 / 8, 2.0 / 2, 0]
        let expected: Double = (3 * perModel[0] + 1 * perModel[1] + 1 * perModel[2]) / 5
        #expect(abs(muxServeThroughput(records, rateShares: [3, 1, 1]) - expected) < 1e-12)
        // Only the ratio of the rates matters.
        #expect(abs(muxServeThroughput(records, rateShares: [0.6, 0.2, 0.2]) - expected) < 1e-12)
        // Requests over the whole run would give 5 / 30 for the same records: a different figure.
        #expect(abs(muxServeThroughput(records, rateShares: [3, 1, 1]) - 5.0 / 30) > 0.1)
    }
}
