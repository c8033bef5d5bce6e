import ArgumentParser
import Compute
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling

/// `llmux gpu-check` (hidden): greedy decoding of the golden fixtures on a device against the
/// transformers fp32 reference in each fixture's golden.json.
struct GPUCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu-check", abstract: "Check a device against the golden fixtures (greedy tokens, logprobs).",
        shouldDisplay: false)

    @Option(help: "Folder of fixtures (each with config.json, safetensors and golden.json).")
    var fixtures = "Tests/Fixtures/golden"
    @Option(help: "Device: cpu or cuda[:N].")
    var device: DeviceChoice = .cuda(0)
    @Option(help: "Steps whose reference top-two gap is at most this are allowed to differ (ties in bf16).")
    var gap: Float = 0.05
    @Option(help: "Largest allowed log-probability error relative to max(1, |reference|).")
    var tolerance: Float = 1e-2

    struct Golden: Decodable {
        struct Entry: Decodable {
            let tokenID: TokenID
            let logprob: Float
            enum CodingKeys: String, CodingKey { case tokenID = "token_id", logprob }
        }
        struct Step: Decodable {
            let tokenID: TokenID
            let logprob: Float
            let topTwoGap: Float
            let top: [Entry]
            enum CodingKeys: String, CodingKey { case tokenID = "token_id", logprob, topTwoGap = "top_two_gap", top }
        }
        struct Case: Decodable {
            let promptTokenIDs: [TokenID]
            let steps: [Step]
            enum CodingKeys: String, CodingKey { case promptTokenIDs = "prompt_token_ids", steps }
        }
        let cases: [Case]
    }

    func run() throws {
        let backend = try device.makeBackend(threads: nil)
        let root = URL(fileURLWithPath: fixtures)
        let names = try FileManager.default.contentsOfDirectory(atPath: root.path).filter {
            FileManager.default.fileExists(atPath: root.appendingPathComponent($0).appendingPathComponent("golden.json").path)
        }.sorted()
        guard !names.isEmpty else { throw CommandFailure("no fixtures with golden.json under \(fixtures)") }
        var failures = 0
        print("fixture | mode | steps | compared | agree | max |dlogprob| | max rel | verdict")
        for name in names {
            let directory = root.appendingPathComponent(name)
            let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: directory.appendingPathComponent("golden.json")))
            let checkpoint = try Checkpoint(directory: directory)
            let runner = try ModelRunner(checkpoints: [(ModelID("m"), checkpoint)], backend: backend, kvCacheBytes: 16 << 20)
            for (mode, limits) in [("batched", SchedulerLimits()), ("chunked48", SchedulerLimits(maxTokensPerStep: 48, maxSequencesPerStep: 8))] {
                let outputs = try generate(runner: runner, golden: golden, limits: limits)
                var compared = 0, agreed = 0, steps = 0
                var maxError: Float = 0, maxRelative: Float = 0
                var hardMismatch = false
                for (output, reference) in zip(outputs, golden.cases) {
                    for (token, expected) in zip(output, reference.steps) {
                        steps += 1
                        let decisive = expected.topTwoGap > gap
                        if decisive { compared += 1 }
                        if token.tokenID != expected.tokenID {
                            if decisive { hardMismatch = true }
                            break  // later steps continue from a different context
                        }
                        if decisive { agreed += 1 }
                        for entry in expected.top {
                            guard let mine = token.top.first(where: { $0.tokenID == entry.tokenID }) else { continue }
                            let error = abs(mine.logprob - entry.logprob)
                            maxError = max(maxError, error)
                            maxRelative = max(maxRelative, error / max(1, abs(entry.logprob)))
                        }
                    }
                }
                let ok = !hardMismatch && maxRelative <= tolerance
                if !ok { failures += 1 }
                print(String(format: "%@ | %@ | %d | %d | %d | %.5f | %.5f | %@", name, mode, steps, compared, agreed,
                             maxError, maxRelative, ok ? "ok" : "FAIL"))
            }
        }
        print("device \(backend.deviceName): \(failures == 0 ? "all fixtures pass" : "\(failures) fixture run(s) FAIL")")
        if failures > 0 { throw ExitCode(1) }
    }

    private func generate(runner: ModelRunner, golden: Golden, limits: SchedulerLimits) throws -> [[SampledToken]] {
        let engine = EngineCore(executor: runner, tokenizers: [:], limits: limits)
        var ids: [SequenceID] = []
        for testCase in golden.cases {
            let parameters = SamplingParameters(logprobs: 5, maxTokens: testCase.steps.count, stopAtEOS: false)
            ids.append(try engine.add(GenerationRequest(model: ModelID("m"), promptTokens: testCase.promptTokenIDs, parameters: parameters)))
        }
        var outputs: [SequenceID: [SampledToken]] = [:]
        while engine.hasWork {
            for event in engine.step() {
                if let message = event.errorMessage { throw CommandFailure(message) }
                if let token = event.token { outputs[event.sequenceID, default: []].append(token) }
            }
        }
        return ids.map { outputs[$0] ?? [] }
    }
}
