import Compute
import Foundation
import LLMuxCore

/// `llmux gpu-check --sampling`: seeded draws of a backend against the exact distribution. For
/// each setting, 8,192 rows of one logits row (vocabulary 8,192; the likely tokens scattered
/// through the vocabulary) are sampled with 8,192 seeds of a SplitMix64 sequence; the drawn tokens must lie in the set
/// that the `Sampler`'s rules keep (temperature, top-k, top-p over the top-k mass, min-p), fit the
/// kept probabilities (Pearson's chi-square below df + 6·sqrt(2·df), a false alarm about once in
/// 10^5 runs; a wrong temperature or cut fails it by far), come out the same when drawn again, and
/// carry their raw log-probabilities (and the top ones asked for) within 1e-4 of the exact ones.
enum SamplingCheck {
    struct Setting {
        let temperature: Float
        var topK = 0
        var topP: Float = 1
        var minP: Float = 0
        /// Top log-probabilities asked for besides the draw (checked against the exact ones).
        var logprobs: Int?
        var label: String { "T=\(temperature) top_k=\(topK) top_p=\(topP) min_p=\(minP)" + (logprobs.map { " logprobs=\($0)" } ?? "") }
    }

    static let settings = [
        Setting(temperature: 0.8),
        Setting(temperature: 0.8, topK: 10),
        Setting(temperature: 1.3, topP: 0.8),
        Setting(temperature: 0.8, minP: 0.05),
        Setting(temperature: 1, topK: 50, topP: 0.9, minP: 0.01),
        Setting(temperature: 0.8, topP: 0.95, logprobs: 5),
    ]

    /// Runs every setting; prints a line each and returns whether all passed.
    static func run(backend: any ComputeBackend) throws -> Bool {
        let vocabulary = 8192, rows = 8192
        var generator = SplitMix64(seed: 5)
        // 300 likely tokens with distinct logits decaying slowly, the rest far below; spread over
        // the vocabulary by a fixed permutation so that vocabulary order is not probability order.
        var order = Array(0..<vocabulary)
        for index in stride(from: vocabulary - 1, to: 0, by: -1) { order.swapAt(index, Int(generator.next() % UInt64(index + 1))) }
        var row = [Float](repeating: 0, count: vocabulary)
        for (rank, token) in order.enumerated() { row[token] = rank < 300 ? -0.05 * Float(rank) : -40 - 0.001 * Float(rank) }
        let single = try backend.upload(floats: row)
        // Every row reads the same logits (row stride 0).
        let logits = Tensor(buffer: single.buffer, offset: single.offset, dtype: .f32, rows: rows, columns: vocabulary, rowStride: 0)
        var passed = true
        print("setting | kept tokens | chi-square | limit | outside kept | same when drawn again | max |logprob error| | ms for 8,192 rows | verdict")
        for setting in settings {
            var seeds = SplitMix64(seed: 11)
            let requests = (0..<rows).map { _ in
                SampleRequest(parameters: SamplingParameters(temperature: setting.temperature, topP: setting.topP, topK: setting.topK,
                                                             minP: setting.minP, seed: seeds.next(), logprobs: setting.logprobs),
                              generatedCount: 3)
            }
            let started = Date()
            let samples = try backend.sample(logits: logits, requests: requests)
            let milliseconds = Date().timeIntervalSince(started) * 1000
            let first = samples.map { Int($0.tokenID) }
            // Raw log-probabilities: the drawn token's and the top ones asked for.
            let logSoftmax = exactLogSoftmax(row)
            var logprobError = samples.map { Double(abs($0.logprob - Float(logSoftmax[Int($0.tokenID)]))) }.max() ?? 0
            if let wanted = setting.logprobs {
                let exactTop = logSoftmax.indices.sorted { logSoftmax[$0] > logSoftmax[$1] }.prefix(wanted)
                for sample in samples {
                    guard sample.top.map({ Int($0.tokenID) }) == Array(exactTop) else { logprobError = .infinity; break }
                    for entry in sample.top {
                        logprobError = max(logprobError, Double(abs(entry.logprob - Float(logSoftmax[Int(entry.tokenID)]))))
                    }
                }
            }
            let again = try backend.sample(logits: logits, requests: requests).map { Int($0.tokenID) }
            let expected = keptProbabilities(row, setting)
            var counts: [Int: Int] = [:]
            for token in first { counts[token, default: 0] += 1 }
            let outside = first.count { expected[$0] == nil }
            let (statistic, degrees) = chiSquare(counts: counts, expected: expected, draws: rows)
            let limit = Double(degrees) + 6 * (2 * Double(degrees)).squareRoot()
            let ok = outside == 0 && first == again && statistic < limit && logprobError < 1e-4
            passed = passed && ok
            print(String(format: "%@ | %d | %.1f | %.1f | %d | %@ | %.2g | %.1f | %@", setting.label, expected.count, statistic, limit,
                         outside, first == again ? "yes" : "no", logprobError, milliseconds, ok ? "PASS" : "FAIL"))
        }
        return passed
    }

    /// Natural-log softmax of the raw logits in double precision.
    static func exactLogSoftmax(_ logits: [Float]) -> [Double] {
        let top = Double(logits.max()!)
        let logSum = log(logits.reduce(0.0) { $0 + exp(Double($1) - top) }) + top
        return logits.map { Double($0) - logSum }
    }

    /// The kept tokens and their probabilities, in double precision, by the host `Sampler`'s rules.
    static func keptProbabilities(_ logits: [Float], _ setting: Setting) -> [Int: Double] {
        var ranked = logits.indices.map { (token: $0, score: Double(logits[$0]) / Double(setting.temperature)) }
        ranked.sort { $0.score > $1.score }
        if setting.topK > 0 { ranked = Array(ranked.prefix(setting.topK)) }
        let top = ranked[0].score
        var masses = ranked.map { exp($0.score - top) }
        if setting.topP < 1 {
            let total = masses.reduce(0, +)
            var cumulative = 0.0
            var keep = masses.count
            for (rank, mass) in masses.enumerated() {
                cumulative += mass / total
                if cumulative >= Double(setting.topP) { keep = rank + 1; break }
            }
            masses = Array(masses.prefix(keep))
        }
        if setting.minP > 0 { masses = masses.filter { $0 >= Double(setting.minP) } }
        let total = masses.reduce(0, +)
        return Dictionary(uniqueKeysWithValues: masses.indices.map { (ranked[$0].token, masses[$0] / total) })
    }

    /// Pearson's statistic over the kept tokens, those expected fewer than 5 times pooled into one
    /// cell; returns it with its degrees of freedom.
    static func chiSquare(counts: [Int: Int], expected: [Int: Double], draws: Int) -> (Double, Int) {
        var statistic = 0.0, cells = 0
        var pooledObserved = 0.0, pooledExpected = 0.0
        for (token, probability) in expected {
            let wanted = probability * Double(draws), seen = Double(counts[token] ?? 0)
            if wanted < 5 {
                pooledObserved += seen
                pooledExpected += wanted
            } else {
                statistic += (seen - wanted) * (seen - wanted) / wanted
                cells += 1
            }
        }
        if pooledExpected > 0 {
            statistic += (pooledObserved - pooledExpected) * (pooledObserved - pooledExpected) / pooledExpected
            cells += 1
        }
        return (statistic, max(1, cells - 1))
    }
}
