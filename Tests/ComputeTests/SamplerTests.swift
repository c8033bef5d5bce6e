import Compute
import Foundation
import LLMuxCore
import Testing

/// The sampler against distributions computed here in Double: filters keep exactly the tokens
/// they should, draws follow the filtered distribution, seeds reproduce.
@Suite struct SamplerTests {
    /// Logits whose softmax is exactly `probabilities`.
    func logits(_ probabilities: [Double]) -> [Float] { probabilities.map { Float(log($0)) } }

    func sample(_ logits: [Float], _ parameters: SamplingParameters, counter: Int = 0,
                prompt: [TokenID] = [], output: [TokenID] = []) -> SampledToken {
        logits.withUnsafeBufferPointer {
            Sampler.sample(logits: $0, request: SampleRequest(parameters: parameters, generatedCount: counter,
                                                             promptTokens: prompt, outputTokens: output))
        }
    }

    /// Empirical frequencies over `draws` counters.
    func frequencies(_ logits: [Float], _ parameters: SamplingParameters, draws: Int = 20_000) -> [Double] {
        var counts = [Double](repeating: 0, count: logits.count)
        for counter in 0..<draws { counts[Int(sample(logits, parameters, counter: counter).tokenID)] += 1 }
        return counts.map { $0 / Double(draws) }
    }

    @Test func greedyPicksArgmaxAndReportsRawLogprobs() {
        let values: [Float] = [0.1, 2.5, -1, 2.4]
        let token = sample(values, SamplingParameters(logprobs: 3))
        #expect(token.tokenID == 1)
        let logNormalizer = log(values.map { exp(Double($0)) }.reduce(0, +))
        #expect(abs(Double(token.logprob) - (2.5 - logNormalizer)) < 1e-5)
        #expect(token.top.map(\.tokenID) == [1, 3, 0])
        #expect(abs(Double(token.top[1].logprob) - (2.4 - logNormalizer)) < 1e-5)
    }

    @Test func seedsReproduceAndDiffer() {
        let values = logits([0.25, 0.25, 0.25, 0.25])
        let a = (0..<50).map { sample(values, SamplingParameters(temperature: 1, seed: 7), counter: $0).tokenID }
        let b = (0..<50).map { sample(values, SamplingParameters(temperature: 1, seed: 7), counter: $0).tokenID }
        let c = (0..<50).map { sample(values, SamplingParameters(temperature: 1, seed: 8), counter: $0).tokenID }
        #expect(a == b)
        #expect(a != c)
    }

    @Test func temperatureDrawsFollowTheScaledSoftmax() {
        let probabilities = [0.5, 0.3, 0.2]
        let temperature = 2.0
        let scaled = probabilities.map { pow($0, 1 / temperature) }
        let expected = scaled.map { $0 / scaled.reduce(0, +) }
        let observed = frequencies(logits(probabilities), SamplingParameters(temperature: Float(temperature), seed: 1))
        // 20,000 draws: standard error below 0.004; 0.015 is about 4 of them.
        for (o, e) in zip(observed, expected) { #expect(abs(o - e) < 0.015) }
    }

    @Test func topPKeepsTheSmallestPrefixReachingTheMass() {
        let observed = frequencies(logits([0.5, 0.3, 0.15, 0.05]), SamplingParameters(temperature: 1, topP: 0.75, seed: 2))
        #expect(observed[2] == 0 && observed[3] == 0)
        #expect(abs(observed[0] - 0.625) < 0.015)
    }

    @Test func topKAndMinPFilter() {
        let values = logits([0.4, 0.3, 0.2, 0.1])
        let topK = frequencies(values, SamplingParameters(temperature: 1, topK: 2, seed: 3), draws: 5_000)
        #expect(topK[2] == 0 && topK[3] == 0 && abs(topK[0] - 4.0 / 7) < 0.03)
        // min_p 0.6: keep tokens with p >= 0.24 → tokens 0 and 1.
        let minP = frequencies(values, SamplingParameters(temperature: 1, minP: 0.6, seed: 4), draws: 5_000)
        #expect(minP[2] == 0 && minP[3] == 0 && minP[1] > 0.3)
    }

    @Test func penaltiesFollowHuggingFaceAndOpenAI() {
        // Repetition penalty 2: token 0 (logit 3, seen in the prompt) becomes 1.5 < token 1's 2.
        #expect(sample([3, 2, 0], SamplingParameters(repetitionPenalty: 2), prompt: [0]).tokenID == 1)
        // A negative logit is multiplied: token 2 (-1) seen becomes -2, so token 1 (-1.5) wins.
        #expect(sample([-3, -1.5, -1], SamplingParameters(repetitionPenalty: 2), output: [2]).tokenID == 1)
        // Frequency 0.6 per occurrence twice plus presence 0.5: 3 - 1.7 = 1.3 < 2.
        #expect(sample([3, 2, 0], SamplingParameters(presencePenalty: 0.5, frequencyPenalty: 0.6), output: [0, 0]).tokenID == 1)
        // Presence alone (0.5) leaves token 0 ahead: 2.5 > 2.
        #expect(sample([3, 2, 0], SamplingParameters(presencePenalty: 0.5), output: [0, 0]).tokenID == 0)
        // Penalties change the choice but not the reported (raw) log-probability.
        let raw = sample([3, 2, 0], SamplingParameters()).logprob
        let penalised = sample([3, 2, 0], SamplingParameters(repetitionPenalty: 2), prompt: [0])
        #expect(penalised.tokenID == 1 && penalised.logprob < raw)
    }
}
