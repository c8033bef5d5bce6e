import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling
import Testing

/// The CPU engine against transformers fp32 on random-weight checkpoints of every architecture
/// and stored dtype: greedy tokens identical, log-probabilities within 1e-3.
@Suite struct GoldenTests {
    static let greedyTop5 = SamplingParameters(logprobs: 5, maxTokens: 12, stopAtEOS: false)

    func expectMatches(_ outputs: [[SampledToken]], _ golden: GoldenFile) {
        for (output, reference) in zip(outputs, golden.cases) {
            let label = "\(golden.model), prompt of \(reference.promptTokenIDs.count) tokens"
            #expect(output.map(\.tokenID) == reference.steps.map(\.tokenID), "\(label): greedy tokens differ")
            for (step, (token, expected)) in zip(output, reference.steps).enumerated() {
                #expect(abs(token.logprob - expected.logprob) < 1e-3, "\(label), step \(step): logprob \(token.logprob) vs \(expected.logprob)")
                for entry in expected.top {
                    let mine = token.top.first { $0.tokenID == entry.tokenID }
                    #expect(mine != nil && abs(mine!.logprob - entry.logprob) < 1e-3,
                            "\(label), step \(step): top token \(entry.tokenID) logprob \(String(describing: mine?.logprob)) vs \(entry.logprob)")
                }
            }
        }
    }

    @Test(arguments: Golden.names)
    func batchedGreedyMatchesTransformers(_ name: String) throws {
        let (checkpoint, golden) = try Golden.load(name)
        let harness = try EngineHarness(checkpoint: checkpoint)
        let outputs = try harness.run(golden.cases.map(\.promptTokenIDs), parameters: Self.greedyTop5)
        expectMatches(outputs, golden)
    }

    @Test(arguments: Golden.names)
    func aloneAndChunkedPrefillMatchTransformers(_ name: String) throws {
        let (checkpoint, golden) = try Golden.load(name)
        // A 48-token step budget cuts the long prompts into chunks.
        let harness = try EngineHarness(checkpoint: checkpoint, limits: SchedulerLimits(maxTokensPerStep: 48, maxSequencesPerStep: 8))
        let outputs = try golden.cases.map { try harness.run([$0.promptTokenIDs], parameters: Self.greedyTop5)[0] }
        expectMatches(outputs, golden)
    }

    @Test func preemptionByRecomputeKeepsOutputs() throws {
        let (checkpoint, golden) = try Golden.load("llama-bf16")
        let prompts = golden.cases.map(\.promptTokenIDs)
        // 2 layers × 2 kv heads × 16 dims × 2 × 4 bytes = 512 bytes per token; 16 tokens a page.
        // 22 pages (352 tokens) cannot hold all four sequences (~400 tokens with the long one plus
        // decoders), so the newest are preempted and recomputed.
        let harness = try EngineHarness(checkpoint: checkpoint, kvCacheBytes: 22 * 16 * 512,
                                        limits: SchedulerLimits(maxTokensPerStep: 64, maxSequencesPerStep: 8))
        let many = prompts + prompts.map { Array($0.prefix(30)) } + prompts
        let outputs = try harness.run(many, parameters: Self.greedyTop5)
        let state = harness.engine.schedulerState
        #expect(state.kvCache.freePageCount == state.kvCache.pool.pageCount, "pages leaked")
        #expect(state.kvCache.isConsistent())
        #expect(state.preemptionTotal > 0, "the pool was meant to force preemption")
        expectMatches(Array(outputs.prefix(4)), golden)
        expectMatches(Array(outputs.suffix(4)), golden)
    }
}
