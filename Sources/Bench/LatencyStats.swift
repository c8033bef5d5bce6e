/// What happened to one request in a benchmark run.
public struct RequestRecord: Sendable, Codable, Equatable {
    /// Model index in the run's model list.
    public let modelIndex: Int
    /// Seconds from run start.
    public let arrival: Double
    /// First token time, seconds from run start (nil if none).
    public var firstToken: Double?
    /// Finish time, seconds from run start (nil if unfinished).
    public var finish: Double?
    /// Tokens generated.
    public var outputTokens: Int
    /// Prompt tokens.
    public let promptTokens: Int
    /// Latency of the same request served alone (the SLO reference), seconds.
    public let soloLatency: Double
    /// The engine ended it with an error: it neither completes nor meets its SLO.
    public var failed = false
    /// Seconds between each of its output tokens and the one before (empty where a run did not
    /// time them: the simulator).
    public var tokenGaps: [Double] = []

    /// A record of a request that has arrived.
    public init(modelIndex: Int, arrival: Double, promptTokens: Int, soloLatency: Double) {
        self.modelIndex = modelIndex
        self.arrival = arrival
        self.promptTokens = promptTokens
        self.soloLatency = soloLatency
        self.outputTokens = 0
    }

    /// Time to first token.
    public var ttft: Double? { firstToken.map { $0 - arrival } }
    /// Mean time per output token after the first.
    public var tpot: Double? {
        guard let firstToken, let finish, outputTokens > 1 else { return nil }
        return (finish - firstToken) / Double(outputTokens - 1)
    }
    /// End-to-end latency.
    public var latency: Double? { finish.map { $0 - arrival } }
}

/// Throughput, latency percentiles and SLO attainment of a set of requests.
public struct LatencySummary: Sendable, Codable, Equatable {
    /// Requests counted.
    public let requests: Int
    /// Requests that finished.
    public let completed: Int
    /// Completed requests per second of run time.
    public let requestsPerSecond: Double
    /// Generated tokens per second of run time.
    public let tokensPerSecond: Double
    /// TTFT percentiles, seconds.
    public let ttftP50: Double, ttftP99: Double
    /// Time per output token percentiles, seconds (each request's mean after its first token).
    public let tpotP50: Double, tpotP99: Double
    /// Inter-token latency percentiles over every gap between two output tokens of a request,
    /// seconds: the stalls a request's mean (TPOT) hides. Nil where the gaps were not timed (the
    /// simulator, results written before they were).
    public let itlP50: Double?, itlP99: Double?
    /// Requests the engine ended with an error (counted neither as completed nor as within SLO).
    public let failed: Int
    /// Share of requests finished within 5× and 10× their solo latency (unfinished and failed ones miss).
    public let sloAttainment5: Double, sloAttainment10: Double

    /// Summarises `records` over a run of `duration` seconds.
    public init(_ records: [RequestRecord], duration: Double) {
        requests = records.count
        let done = records.filter { $0.finish != nil && !$0.failed }
        failed = records.count(where: \.failed)
        completed = done.count
        requestsPerSecond = duration > 0 ? Double(done.count) / duration : 0
        tokensPerSecond = duration > 0 ? Double(done.reduce(0) { $0 + $1.outputTokens }) / duration : 0
        let ttfts = records.compactMap(\.ttft)
        let tpots = records.compactMap(\.tpot)
        ttftP50 = percentile(ttfts, 0.5)
        ttftP99 = percentile(ttfts, 0.99)
        tpotP50 = percentile(tpots, 0.5)
        tpotP99 = percentile(tpots, 0.99)
        let gaps = records.flatMap(\.tokenGaps)
        itlP50 = gaps.isEmpty ? nil : percentile(gaps, 0.5)
        itlP99 = gaps.isEmpty ? nil : percentile(gaps, 0.99)
        func attainment(_ scale: Double) -> Double {
            guard !records.isEmpty else { return 0 }
            return Double(records.count { record in
                !record.failed && (record.latency.map { $0 <= scale * record.soloLatency } ?? false)
            }) / Double(records.count)
        }
        sloAttainment5 = attainment(5)
        sloAttainment10 = attainment(10)
    }
}

/// MuxServe's aggregate throughput (Duan et al. 2024; `benchmark/chatlmsys/plot.py` in
/// hao-ai-lab/MuxServe): each model's throughput is its completed requests over its last finish
/// time (seconds from run start), and the models' throughputs are averaged weighted by their
/// request rates, Σ rᵢ·tptᵢ / Σ rᵢ. Unlike requests over the whole run, a model whose requests
/// all end early is not charged for the time another model's last request takes. `rateShares`
/// holds each model's rate (or share of the total rate), by model index; models without a
/// completed request count as 0.
public func muxServeThroughput(_ records: [RequestRecord], rateShares: [Double]) -> Double {
    let totalRate = rateShares.reduce(0, +)
    guard totalRate > 0 else { return 0 }
    var weighted = 0.0
    for (model, rate) in rateShares.enumerated() {
        let done = records.filter { $0.modelIndex == model && !$0.failed }.compactMap(\.finish)
        guard let last = done.max(), last > 0 else { continue }
        weighted += rate * Double(done.count) / last
    }
    return weighted / totalRate
}

/// The p-th quantile by linear interpolation between order statistics (numpy's default); 0 for no data.
public func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let position = p * Double(sorted.count - 1)
    let lower = Int(position.rounded(.down))
    let upper = min(lower + 1, sorted.count - 1)
    return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
}
