import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling
import Testing

/// The CUDA backend against the transformers fp32 reference. Opt-in: set LLMUX_GPU_TESTS=1 on a
/// machine with an NVIDIA GPU and CUDA's libraries (CI has none). Activations are bf16 on the GPU,
/// and these random-weight fixtures amplify bf16 rounding (the CPU path with its activations
/// rounded to bf16 moves logprobs by up to 0.16 on them), so the bounds are those of bf16, not fp32.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["LLMUX_GPU_TESTS"] == "1"))
struct CUDAGoldenTests {
    @Test(arguments: Golden.names)
    func greedyAgreesWhereTheReferenceIsDecisive(_ name: String) throws {
        let (checkpoint, golden) = try Golden.load(name)
        let harness = try EngineHarness(checkpoint: checkpoint, backend: try CUDABackend())
        let outputs = try harness.run(golden.cases.map(\.promptTokenIDs), parameters: GoldenTests.greedyTop5)
        for (output, reference) in zip(outputs, golden.cases) {
            for (step, (token, expected)) in zip(output, reference.steps).enumerated() {
                if token.tokenID != expected.tokenID {
                    #expect(expected.topTwoGap <= 0.5, "\(name), step \(step): \(token.tokenID) vs \(expected.tokenID)")
                    break
                }
                #expect(abs(token.logprob - expected.logprob) < 0.35, "\(name), step \(step): \(token.logprob) vs \(expected.logprob)")
            }
        }
    }
}

/// Without CUDA's libraries the backend fails with an error that names what is missing.
@Suite struct CUDAAbsentTests {
    @Test func missingDriverIsAnErrorNamingIt() throws {
        guard ProcessInfo.processInfo.environment["LLMUX_GPU_TESTS"] != "1",
              !FileManager.default.fileExists(atPath: "/usr/lib/x86_64-linux-gnu/libcuda.so.1") else { return }
        do {
            _ = try CUDABackend()
            Issue.record("a CUDA backend opened without libcuda")
        } catch let error as CUDAError {
            #expect(error.description.contains("libcuda"))
        }
    }
}
