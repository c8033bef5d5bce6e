import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Testing
import Tokenization

/// What scripts/train/train_demo_model.py recorded with transformers (fp32 on the CPU, from the
/// saved bf16 checkpoint) in Models/demo-python/reference.json.
struct DemoReference: Decodable {
    struct Perplexity: Decodable {
        let context: Int
        let text: String
        let tokenIDs: [TokenID]
        let scoredTokens: Int
        let meanNLL: Double
        let perplexity: Double
        enum CodingKeys: String, CodingKey {
            case context, text, tokenIDs = "token_ids", scoredTokens = "scored_tokens", meanNLL = "mean_nll", perplexity
        }
    }
    struct Step: Decodable {
        let tokenID: TokenID
        let logprob: Double
        let topTwoGap: Double
        enum CodingKeys: String, CodingKey { case tokenID = "token_id", logprob, topTwoGap = "top_two_gap" }
    }
    struct Completion: Decodable {
        let prompt: String
        let promptTokenIDs: [TokenID]
        let steps: [Step]
        enum CodingKeys: String, CodingKey { case prompt, promptTokenIDs = "prompt_token_ids", steps }
    }
    let perplexity: Perplexity
    let greedy: [Completion]

    /// The committed demo model's directory (Models/demo-python at the repository root).
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Models/demo-python")

    static func load() throws -> (Checkpoint, DemoReference) {
        let data = try Data(contentsOf: directory.appendingPathComponent("reference.json"))
        return (try Checkpoint(directory: directory), try JSONDecoder().decode(DemoReference.self, from: data))
    }

    /// LLMux's perplexity of the reference ids on `backend`.
    static func perplexity(on backend: any ComputeBackend) throws -> (PerplexityResult, DemoReference.Perplexity) {
        let (checkpoint, reference) = try load()
        let model = ModelID("demo")
        let runner = try ModelRunner(checkpoints: [(model, checkpoint)], backend: backend, kvCacheBytes: 32 << 20)
        let result = try PerplexityResult.evaluate(runner: runner, model: model, tokens: reference.perplexity.tokenIDs,
                                                   context: reference.perplexity.context)
        return (result, reference.perplexity)
    }
}

/// The demo model served by `llmux serve --demo` agrees with PyTorch: held-out perplexity within
/// 0.5 %, the tokenizer's ids, and greedy completions up to the reference's first near tie.
@Suite struct DemoModelTests {
    @Test func heldOutPerplexityOnTheCPUEqualsPyTorch() throws {
        let (result, reference) = try DemoReference.perplexity(on: CPUBackend())
        #expect(result.scoredTokens == reference.scoredTokens)
        #expect(abs(result.perplexity / reference.perplexity - 1) < 0.005,
                "LLMux \(result.perplexity) against PyTorch \(reference.perplexity)")
    }

    @Test func tokenizerGivesTransformersIDs() throws {
        let tokenizer = try Tokenizer(directory: DemoReference.directory)
        let (_, reference) = try DemoReference.load()
        #expect(tokenizer.encode(reference.perplexity.text, addSpecialTokens: true) == reference.perplexity.tokenIDs)
        for completion in reference.greedy {
            #expect(tokenizer.encode(completion.prompt, addSpecialTokens: true) == completion.promptTokenIDs, "\(completion.prompt)")
        }
        let template = try #require(tokenizer.chatTemplate)
        #expect(template.contains("<|im_start|>"))
    }

    @Test func greedyCompletionsMatchPyTorch() throws {
        let (checkpoint, reference) = try DemoReference.load()
        let harness = try EngineHarness(checkpoint: checkpoint)
        let parameters = SamplingParameters(maxTokens: reference.greedy[0].steps.count, stopAtEOS: false)
        let outputs = try harness.run(reference.greedy.map(\.promptTokenIDs), parameters: parameters)
        var compared = 0
        for (output, completion) in zip(outputs, reference.greedy) {
            for (step, (token, expected)) in zip(output, completion.steps).enumerated() {
                if expected.topTwoGap <= 0.05 { break }  // a near tie: either token is right, and later steps may differ
                #expect(token.tokenID == expected.tokenID, "\(completion.prompt.debugDescription), step \(step)")
                #expect(abs(Double(token.logprob) - expected.logprob) < 1e-3, "\(completion.prompt.debugDescription), step \(step)")
                if token.tokenID != expected.tokenID { break }
                compared += 1
            }
        }
        #expect(compared >= 8, "only \(compared) decisive steps compared")
    }
}

/// The same perplexity on the GPU (opt-in: LLMUX_GPU_TESTS=1): bf16 activations, same 0.5 % bound.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["LLMUX_GPU_TESTS"] == "1"))
struct CUDADemoModelTests {
    @Test func heldOutPerplexityOnTheGPUEqualsPyTorch() throws {
        let (result, reference) = try DemoReference.perplexity(on: try CUDABackend())
        #expect(abs(result.perplexity / reference.perplexity - 1) < 0.005,
                "LLMux CUDA \(result.perplexity) against PyTorch \(reference.perplexity)")
    }
}
