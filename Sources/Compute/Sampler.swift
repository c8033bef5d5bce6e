import CLLMuxKernels
import Foundation
import LLMuxCore

/// Turns one row of logits into a token, following vLLM's order: penalties, then temperature,
/// then top-k, top-p and min-p filtering, then a seeded draw. Reported log-probabilities are those
/// of the raw model output (vLLM's default `raw_logprobs`), so they do not depend on sampling
/// settings.
public enum Sampler {
    /// Samples one token.
    public static func sample(logits: UnsafeBufferPointer<Float>, request: SampleRequest) -> SampledToken {
        let parameters = request.parameters
        let vocabulary = logits.count
        var logprobs = [Float](repeating: 0, count: vocabulary)
        logprobs.withUnsafeMutableBufferPointer { llmux_log_softmax(logits.baseAddress!, $0.baseAddress!, Int32(vocabulary)) }

        let chosen: Int
        if parameters.isGreedy && !parameters.needsHistory {
            chosen = argmax(logits)
        } else {
            var scores = Array(logits)
            applyPenalties(&scores, request: request)
            chosen = parameters.isGreedy ? argmax(scores) : draw(scores, parameters: parameters, generatedCount: request.generatedCount)
        }
        let top = topLogprobs(logprobs, count: parameters.logprobs ?? 0)
        return SampledToken(tokenID: TokenID(chosen), logprob: logprobs[chosen], top: top)
    }

    /// Index of the largest value (the first one on ties, as `torch.argmax`).
    static func argmax<C: Collection>(_ values: C) -> Int where C.Element == Float, C.Index == Int {
        var best = values.startIndex
        var bestValue = -Float.infinity
        for index in values.indices where values[index] > bestValue {
            bestValue = values[index]
            best = index
        }
        return best
    }

    /// HF repetition penalty over prompt and output (divide positive logits, multiply negative),
    /// then OpenAI presence and frequency penalties over the output only.
    static func applyPenalties(_ scores: inout [Float], request: SampleRequest) {
        let parameters = request.parameters
        if parameters.repetitionPenalty != 1 {
            var seen = Set<TokenID>()
            for token in request.promptTokens + request.outputTokens where seen.insert(token).inserted && Int(token) < scores.count {
                let value = scores[Int(token)]
                scores[Int(token)] = value > 0 ? value / parameters.repetitionPenalty : value * parameters.repetitionPenalty
            }
        }
        if parameters.presencePenalty != 0 || parameters.frequencyPenalty != 0 {
            var counts: [TokenID: Int] = [:]
            for token in request.outputTokens { counts[token, default: 0] += 1 }
            for (token, count) in counts where Int(token) < scores.count {
                scores[Int(token)] -= parameters.frequencyPenalty * Float(count) + parameters.presencePenalty
            }
        }
    }

    /// Temperature, top-k, top-p and min-p, then one draw from the remaining distribution.
    static func draw(_ scores: [Float], parameters: SamplingParameters, generatedCount: Int) -> Int {
        let inverseTemperature = 1 / parameters.temperature
        var candidates = scores.indices.map { (index: $0, score: scores[$0] * inverseTemperature) }
        candidates.sort { $0.score > $1.score || ($0.score == $1.score && $0.index < $1.index) }
        if parameters.topK > 0 && parameters.topK < candidates.count {
            candidates.removeSubrange(parameters.topK...)
        }
        let maxScore = candidates[0].score
        var probabilities = candidates.map { exp(Double($0.score - maxScore)) }
        var total = probabilities.reduce(0, +)
        if parameters.topP < 1 {
            // Keep the smallest prefix whose mass reaches top_p (always at least one token).
            var cumulative = 0.0
            var keep = probabilities.count
            for (rank, probability) in probabilities.enumerated() {
                cumulative += probability / total
                if cumulative >= Double(parameters.topP) {
                    keep = rank + 1
                    break
                }
            }
            probabilities.removeSubrange(keep...)
            candidates.removeSubrange(keep...)
            total = probabilities.reduce(0, +)
        }
        if parameters.minP > 0 {
            let threshold = Double(parameters.minP) * probabilities[0]
            let keep = probabilities.firstIndex { $0 < threshold } ?? probabilities.count
            probabilities.removeSubrange(keep...)
            candidates.removeSubrange(keep...)
            total = probabilities.reduce(0, +)
        }
        let target = SeededRandom.uniform(seed: parameters.seed ?? 0, counter: UInt64(generatedCount)) * total
        var cumulative = 0.0
        for (rank, probability) in probabilities.enumerated() {
            cumulative += probability
            if target < cumulative { return candidates[rank].index }
        }
        return candidates[candidates.count - 1].index
    }

    /// The `count` most likely tokens by log-probability, most likely first.
    static func topLogprobs(_ logprobs: [Float], count: Int) -> [TokenLogprob] {
        guard count > 0 else { return [] }
        var top: [TokenLogprob] = []
        top.reserveCapacity(count + 1)
        for (index, value) in logprobs.enumerated() where top.count < count || value > top[top.count - 1].logprob {
            let entry = TokenLogprob(tokenID: TokenID(index), logprob: value)
            let position = top.firstIndex { $0.logprob < value } ?? top.count
            top.insert(entry, at: position)
            if top.count > count { top.removeLast() }
        }
        return top
    }
}

/// Counter-based random numbers: the draw for a sequence's n-th token depends only on the seed
/// and n, so a recomputed (preempted) sequence draws exactly the same numbers.
public enum SeededRandom {
    /// A uniform number in [0, 1) from SplitMix64 of (seed, counter).
    public static func uniform(seed: UInt64, counter: UInt64) -> Double {
        var z = seed &+ (counter &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }
}
