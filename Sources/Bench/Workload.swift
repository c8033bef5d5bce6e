import LLMuxCore

/// One request of a synthetic workload.
public struct WorkloadRequest: Sendable, Equatable, Codable {
    /// Seconds from the start of the run.
    public let arrival: Double
    /// Index of the model in the workload's model list.
    public let modelIndex: Int
    /// Prompt tokens.
    public let promptLength: Int
    /// Tokens to generate (EOS ignored, so outputs have exactly this length).
    public let outputLength: Int

    /// A request.
    public init(arrival: Double, modelIndex: Int, promptLength: Int, outputLength: Int) {
        self.arrival = arrival
        self.modelIndex = modelIndex
        self.promptLength = promptLength
        self.outputLength = outputLength
    }
}

/// Settings of a synthetic multi-model workload (MuxServe §5.1: Poisson arrivals per model, rates
/// from a power law over the models, ShareGPT-like lengths).
public struct WorkloadSpec: Sendable, Equatable, Codable {
    /// Number of models.
    public var modelCount: Int
    /// Sum of all models' request rates (requests/s).
    public var totalRate: Double
    /// Power-law exponent: model i gets a rate proportional to (i + 1)^-alpha.
    public var alpha: Double
    /// Seconds of arrivals.
    public var duration: Double
    /// Mean prompt length (log-normal; ShareGPT's is about 160).
    public var meanPromptLength: Double
    /// Mean output length (log-normal; ShareGPT's is about 340).
    public var meanOutputLength: Double
    /// Upper bound of prompt plus output (the models' context).
    public var maxTotalLength: Int
    /// Random seed.
    public var seed: UInt64

    /// A workload spec.
    public init(modelCount: Int, totalRate: Double, alpha: Double, duration: Double, meanPromptLength: Double = 160,
                meanOutputLength: Double = 340, maxTotalLength: Int = 2048, seed: UInt64 = 0) {
        self.modelCount = modelCount
        self.totalRate = totalRate
        self.alpha = alpha
        self.duration = duration
        self.meanPromptLength = meanPromptLength
        self.meanOutputLength = meanOutputLength
        self.maxTotalLength = maxTotalLength
        self.seed = seed
    }

    /// Each model's share of the total rate: (i + 1)^-alpha, normalised.
    public var rateShares: [Double] {
        let raw = (0..<modelCount).map { pow(Double($0 + 1), -alpha) }
        let total = raw.reduce(0, +)
        return raw.map { $0 / total }
    }

    /// The requests, sorted by arrival.
    public func generate() -> [WorkloadRequest] {
        var random = WorkloadRandom(seed: seed)
        var requests: [WorkloadRequest] = []
        for (model, share) in rateShares.enumerated() {
            let rate = totalRate * share
            guard rate > 0 else { continue }
            var time = random.exponential(rate: rate)
            while time < duration {
                let prompt = random.logNormalLength(mean: meanPromptLength, sigma: 0.9)
                let output = random.logNormalLength(mean: meanOutputLength, sigma: 0.9)
                let promptLength = min(prompt, maxTotalLength / 2)
                let outputLength = max(1, min(output, maxTotalLength - promptLength))
                requests.append(WorkloadRequest(arrival: time, modelIndex: model, promptLength: promptLength, outputLength: outputLength))
                time += random.exponential(rate: rate)
            }
        }
        return requests.sorted { ($0.arrival, $0.modelIndex) < ($1.arrival, $1.modelIndex) }
    }
}

/// SplitMix64 with the draws a workload needs.
struct WorkloadRandom {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed &+ 0x1234_5678) }
    mutating func nextUInt64() -> UInt64 { generator.next() }

    /// Uniform in (0, 1).
    mutating func uniform() -> Double { (Double(nextUInt64() >> 11) + 0.5) / 9_007_199_254_740_992.0 }

    /// Exponential inter-arrival time of a Poisson process.
    mutating func exponential(rate: Double) -> Double { -log(uniform()) / rate }

    /// A positive integer from a log-normal with the given mean and log-space sigma.
    mutating func logNormalLength(mean: Double, sigma: Double) -> Int {
        let normal = (-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform())
        let mu = log(mean) - sigma * sigma / 2
        return max(1, Int(exp(mu + sigma * normal).rounded()))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
