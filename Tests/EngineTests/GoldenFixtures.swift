import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling

/// Golden outputs of Hugging Face transformers (fp32), made by scripts/fixtures/make_golden.py.
struct GoldenFile: Decodable {
    struct Step: Decodable {
        let tokenID: TokenID
        let logprob: Float
        let topTwoGap: Float
        let top: [Entry]
        enum CodingKeys: String, CodingKey { case tokenID = "token_id", logprob, topTwoGap = "top_two_gap", top }
    }
    struct Entry: Decodable {
        let tokenID: TokenID
        let logprob: Float
        enum CodingKeys: String, CodingKey { case tokenID = "token_id", logprob }
    }
    struct Case: Decodable {
        let promptTokenIDs: [TokenID]
        let steps: [Step]
        enum CodingKeys: String, CodingKey { case promptTokenIDs = "prompt_token_ids", steps }
    }
    let model: String
    let cases: [Case]
}

enum Golden {
    static let names = ["llama-bf16", "llama-f32-sharded", "mistral-f16", "qwen2-bf16"]

    static func directory(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/golden/\(name)")
    }

    static func load(_ name: String) throws -> (Checkpoint, GoldenFile) {
        let directory = directory(name)
        let golden = try JSONDecoder().decode(GoldenFile.self, from: Data(contentsOf: directory.appendingPathComponent("golden.json")))
        return (try Checkpoint(directory: directory), golden)
    }
}

/// Runs requests to completion on a CPU engine and collects each one's tokens.
struct EngineHarness {
    let engine: EngineCore
    static let model = ModelID("m")

    init(checkpoint: Checkpoint, kvCacheBytes: Int = 16 << 20, limits: SchedulerLimits = SchedulerLimits(),
         backend: any ComputeBackend = CPUBackend(), pipelining: Bool = false) throws {
        let runner = try ModelRunner(checkpoints: [(Self.model, checkpoint)], backend: backend, kvCacheBytes: kvCacheBytes)
        engine = EngineCore(executor: runner, tokenizers: [:], limits: limits, pipelining: pipelining)
    }

    /// Submits all prompts at once (so they share steps) and returns every sequence's tokens.
    func run(_ prompts: [[TokenID]], parameters: SamplingParameters) throws -> [[SampledToken]] {
        let ids = try prompts.map { try engine.add(GenerationRequest(model: Self.model, promptTokens: $0, parameters: parameters)) }
        var outputs: [SequenceID: [SampledToken]] = [:]
        var steps = 0
        while engine.hasWork {
            for event in engine.step() {
                if let token = event.token { outputs[event.sequenceID, default: []].append(token) }
                if event.finishReason == .error { throw LLMuxError.engine(event.errorMessage ?? "error") }
            }
            steps += 1
            precondition(steps < 100_000, "engine made no progress")
        }
        return ids.map { outputs[$0] ?? [] }
    }
}
