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
    @Option(help: "Folder of transformers fp32 logits (<fixture>.f32, from scripts/gpu/reference_logits.py): also compare full logits under teacher forcing.")
    var referenceLogits: String?
    @Flag(help: "Check seeded sampling (temperature, top-k, top-p, min-p) against the exact distribution instead of the fixtures.")
    var sampling = false

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
        if sampling {
            guard try SamplingCheck.run(backend: backend) else { throw CommandFailure("seeded sampling on \(device) FAILED") }
            print("device \(backend.deviceName): seeded sampling PASS")
            return
        }
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
        if let referenceLogits {
            print("teacher forcing: fixture | mode | rows | max rel L2 | mean rel L2 | max |dlogprob| (ref top 5) | verdict")
            for name in names {
                let directory = root.appendingPathComponent(name)
                let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: directory.appendingPathComponent("golden.json")))
                let file = URL(fileURLWithPath: referenceLogits).appendingPathComponent("\(name).f32")
                guard let data = try? Data(contentsOf: file) else {
                    print("\(name): no reference logits at \(file.path)")
                    continue
                }
                let reference = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                let checkpoint = try Checkpoint(directory: directory)
                let runner = try ModelRunner(checkpoints: [(ModelID("m"), checkpoint)], backend: backend, kvCacheBytes: 16 << 20)
                for (mode, limits) in [("batched", SchedulerLimits()), ("chunked48", SchedulerLimits(maxTokensPerStep: 48, maxSequencesPerStep: 8))] {
                    let errors = try teacherForce(runner: runner, golden: golden, reference: reference,
                                                  vocabulary: checkpoint.config.vocabSize, limits: limits)
                    let ok = errors.rows == golden.cases.reduce(0) { $0 + $1.steps.count } && errors.maxRelative <= Double(tolerance)
                    if !ok { failures += 1 }
                    print(String(format: "teacher forcing: %@ | %@ | %d | %.5f | %.5f | %.5f | %@", name, mode, errors.rows,
                                 errors.maxRelative, errors.meanRelative, errors.maxLogprob, ok ? "ok" : "FAIL"))
                }
            }
        }
        print("device \(backend.deviceName): \(failures == 0 ? "all fixtures pass" : "\(failures) fixture run(s) FAIL")")
        if failures > 0 { throw ExitCode(1) }
    }

    /// Feeds each case's golden tokens (teacher forcing) and compares every step's full logits
    /// row with the reference: relative L2 error, and the log-probability error of the reference's top 5.
    private func teacherForce(runner: ModelRunner, golden: Golden, reference: [Float], vocabulary: Int,
                              limits: SchedulerLimits) throws -> (rows: Int, maxRelative: Double, meanRelative: Double, maxLogprob: Double) {
        final class Tally {
            var caseOf: [SequenceID: Int] = [:]
            var stepOf: [SequenceID: Int] = [:]
            var rows = 0
            var maxRelative = 0.0, sumRelative = 0.0, maxLogprob = 0.0
        }
        let tally = Tally()
        var offsets: [Int] = []
        var rowsSoFar = 0
        for testCase in golden.cases {
            offsets.append(rowsSoFar)
            rowsSoFar += testCase.steps.count
        }
        guard reference.count == rowsSoFar * vocabulary else {
            throw CommandFailure("reference logits hold \(reference.count) values, expected \(rowsSoFar) x \(vocabulary)")
        }
        func logSoftmax(_ x: [Double]) -> [Double] {
            let top = x.max() ?? 0
            let lse = top + log(x.reduce(0) { $0 + exp($1 - top) })
            return x.map { $0 - lse }
        }
        runner.logitsTap = { id, row in
            guard let index = tally.caseOf[id] else { return nil }
            let step = tally.stepOf[id, default: 0]
            tally.stepOf[id] = step + 1
            let steps = golden.cases[index].steps
            guard step < steps.count, row.count == vocabulary else { return nil }
            let base = (offsets[index] + step) * vocabulary
            var difference = 0.0, norm = 0.0
            var mine = [Double](repeating: 0, count: vocabulary), theirs = mine
            for i in 0..<vocabulary {
                let a = Double(row[i]), b = Double(reference[base + i])
                difference += (a - b) * (a - b)
                norm += b * b
                mine[i] = a
                theirs[i] = b
            }
            let relative = (difference / max(norm, 1e-30)).squareRoot()
            let mineLog = logSoftmax(mine), theirLog = logSoftmax(theirs)
            for entry in steps[step].top {
                let i = Int(entry.tokenID)
                tally.maxLogprob = max(tally.maxLogprob, abs(mineLog[i] - theirLog[i]))
            }
            tally.rows += 1
            tally.maxRelative = max(tally.maxRelative, relative)
            tally.sumRelative += relative
            return steps[step].tokenID
        }
        defer { runner.logitsTap = nil }
        let engine = EngineCore(executor: runner, tokenizers: [:], limits: limits)
        for (index, testCase) in golden.cases.enumerated() {
            let parameters = SamplingParameters(logprobs: 0, maxTokens: testCase.steps.count, stopAtEOS: false)
            let id = try engine.add(GenerationRequest(model: ModelID("m"), promptTokens: testCase.promptTokenIDs, parameters: parameters))
            tally.caseOf[id] = index
        }
        while engine.hasWork {
            for event in engine.step() {
                if let message = event.errorMessage { throw CommandFailure(message) }
            }
        }
        return (tally.rows, tally.maxRelative, tally.sumRelative / Double(max(tally.rows, 1)), tally.maxLogprob)
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
