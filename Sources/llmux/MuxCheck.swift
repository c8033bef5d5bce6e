import Engine
import Foundation
import LLMuxCore
import Scheduling

/// The correctness half of `bench mux --check`: each model's greedy outputs when all models run
/// together under a policy must equal its outputs when it is served alone. Greedy tokens are
/// compared up to the first step where the reference's top-two log-probability gap is at most
/// `nearTie` (bf16 rounding differs with batch composition, so a near tie may flip and every
/// later token then follows another history).
struct MuxCheck {
    /// One model's prompts and its reference outputs.
    struct Reference {
        let model: ModelID
        let prompts: [[TokenID]]
        var tokens: [[TokenID]] = []
        var gaps: [[Float]] = []
        /// The reference's second most likely token at each step (nil without one).
        var runnersUp: [[TokenID?]] = []
    }

    /// The outcome under one policy.
    struct Outcome: Codable {
        let policy: String
        let sequences: Int
        let comparedTokens: Int
        let mismatches: Int
        let stoppedAtNearTie: Int
        let errors: [String]
        var passed: Bool { mismatches == 0 && errors.isEmpty && comparedTokens > 0 }
        /// One line for reports.
        var summary: String {
            String(format: "check %@: %@ — %d sequences, %d greedy tokens compared, %d mismatches, %d stopped at a near tie",
                   policy, passed ? "PASS" : "FAIL", sequences, comparedTokens, mismatches, stoppedAtNearTie)
        }
    }

    static let nearTie: Float = 0.05
    let outputTokens = 24

    /// Prompts of several lengths per model (deterministic ids inside every vocabulary).
    func prompts(for modelIndex: Int, vocabulary: Int) -> [[TokenID]] {
        [9, 40, 130, 300].enumerated().map { index, length in
            (0..<length).map { TokenID(3 + ($0 * 31 + index * 7 + modelIndex * 13) % min(vocabulary - 3, 5000)) }
        }
    }

    /// Each model served alone by `executor` (temporal policy, one model's requests only).
    func references(executor: any ModelExecutor, limits: SchedulerLimits) throws -> [Reference] {
        try executor.models.enumerated().map { index, model in
            report("check: \(model.id.name) alone …")
            var reference = Reference(model: model.id, prompts: prompts(for: index, vocabulary: model.vocabularySize))
            let engine = EngineCore(executor: executor, tokenizers: [:], policy: .temporal, limits: limits)
            let outputs = try run(engine: engine, requests: reference.prompts.map { (model.id, $0) })
            reference.tokens = outputs.map { $0.map(\.tokenID) }
            reference.runnersUp = outputs.map { $0.map { $0.top.count >= 2 ? $0.top[1].tokenID : nil } }
            reference.gaps = outputs.map { $0.map { token in
                token.top.count >= 2 ? token.top[0].logprob - token.top[1].logprob : .infinity
            } }
            return reference
        }
    }

    /// Every model's prompts at once under `policy` (reported as `name`, its raw value unless
    /// given), then each model's alone under it, compared with the references. The runs alone
    /// put a model's long and short prompts in flight together, in jobs of that one model that
    /// may run side by side (its prefill lane's job beside its decode or mixed job): the runs
    /// with all models at once had not caught that such jobs shared buffers (round 11).
    func compare(executor: any ModelExecutor, policy: SchedulingPolicy, name: String? = nil, limits: SchedulerLimits,
                 references: [Reference]) throws -> Outcome {
        let name = name ?? policy.rawValue
        // Interleave the models' requests so that their jobs share steps.
        var rounds: [(label: String, owners: [(Int, Int)])] = [
            ("every model at once", (0..<4).flatMap { promptIndex in references.indices.map { ($0, promptIndex) } })]
        if references.count > 1 {
            rounds += references.indices.map { model in ("\(references[model].model.name) alone", (0..<4).map { (model, $0) }) }
        }
        var owners: [(Int, Int)] = []
        var labels: [String] = []
        var outputs: [[SampledToken]] = []
        for round in rounds {
            report("check: \(round.label) under \(name) …")
            let engine = EngineCore(executor: executor, tokenizers: [:], policy: policy, limits: limits)
            if let problem = engine.partitionError { report("check: partitions refused: \(problem)") }
            do {
                outputs += try run(engine: engine, requests: round.owners.map { (references[$0].model, references[$0].prompts[$1]) })
                owners += round.owners
                labels += round.owners.map { _ in round.label }
            } catch {
                // Let the other policies run; this one fails the check.
                return Outcome(policy: name, sequences: owners.count + round.owners.count, comparedTokens: 0, mismatches: 0,
                               stoppedAtNearTie: 0, errors: ["\(round.label): \(error)"])
            }
        }
        var compared = 0, mismatches = 0, nearTies = 0
        var errors: [String] = []
        for (((modelIndex, promptIndex), output), label) in zip(zip(owners, outputs), labels) {
            let expected = references[modelIndex].tokens[promptIndex]
            let gaps = references[modelIndex].gaps[promptIndex]
            let got = output.map(\.tokenID)
            if got.count != expected.count {
                errors.append("\(label): \(references[modelIndex].model.name) prompt \(promptIndex): \(got.count) tokens, expected \(expected.count)")
                continue
            }
            for step in expected.indices {
                if gaps[step] <= Self.nearTie {
                    nearTies += 1
                    break
                }
                compared += 1
                if got[step] != expected[step] {
                    mismatches += 1
                    errors.append("\(label): \(references[modelIndex].model.name) prompt \(promptIndex) step \(step): \(got[step]) != \(expected[step]) (gap \(gaps[step]); \(got[step] == references[modelIndex].runnersUp[promptIndex][step] ? "the reference's runner-up" : "not the reference's runner-up"))")
                    break
                }
            }
        }
        return Outcome(policy: name, sequences: owners.count, comparedTokens: compared, mismatches: mismatches,
                       stoppedAtNearTie: nearTies, errors: errors)
    }

    /// Runs greedy requests to the end; returns each one's sampled tokens (with the top two).
    private func run(engine: EngineCore, requests: [(ModelID, [TokenID])]) throws -> [[SampledToken]] {
        var order: [SequenceID: Int] = [:]
        for (index, (model, prompt)) in requests.enumerated() {
            let id = try engine.add(GenerationRequest(model: model, promptTokens: prompt, parameters: SamplingParameters(
                logprobs: 2, maxTokens: outputTokens, stopAtEOS: false)))
            order[id] = index
        }
        var outputs = [[SampledToken]](repeating: [], count: requests.count)
        var failure: String?
        while engine.hasWork {
            for event in engine.step() {
                guard let index = order[event.sequenceID] else { continue }
                if let token = event.token { outputs[index].append(token) }
                if event.finishReason == .error { failure = failure ?? event.errorMessage ?? "?" }
            }
        }
        // Failed only after the engine has drained, so the executor is idle for the next policy.
        if let failure { throw CommandFailure("check request failed: \(failure)") }
        return outputs
    }
}
