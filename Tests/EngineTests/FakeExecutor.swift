import LLMuxCore

/// A stand-in model that exercises the KV bookkeeping for real: it "caches" each token at its
/// slot and predicts the next token from the whole context read back through the page table,
/// so a wrong slot, page table or context length changes the output.
final class FakeExecutor: PipelinedExecutor {
    let models: [ModelDescriptor]
    let pageCount: Int
    private let tokensPerPageByModel: [ModelID: Int]
    private var slots: [ModelID: [TokenID?]] = [:]
    private(set) var stepCount = 0

    init(models: [(ModelID, tokensPerPage: Int)], pageCount: Int, contextLength: Int = 4096, vocabulary: Int = 1000) {
        self.models = models.map {
            ModelDescriptor(id: $0.0, contextLength: contextLength, vocabularySize: vocabulary, eosTokenIDs: [0],
                            kvShape: KVCacheShape(layerCount: 1, kvHeadCount: 1, headDim: 1, bytesPerElement: 4))
        }
        self.pageCount = pageCount
        self.tokensPerPageByModel = Dictionary(uniqueKeysWithValues: models.map { ($0.0, $0.tokensPerPage) })
        for (model, perPage) in models { slots[model] = Array(repeating: nil, count: pageCount * perPage) }
    }

    func tokensPerPage(for model: ModelID) -> Int { tokensPerPageByModel[model]! }

    /// Pipelined use: `begin` runs the plan at once and `end` hands its result back.
    var queuesAsynchronously: Bool { false }
    private var begun: Result<StepResult, any Error>?
    func begin(_ plan: StepPlan) throws {
        precondition(begun == nil, "begin while a plan is queued")
        begun = Result { try execute(plan) }
    }
    func end() throws -> StepResult {
        defer { begun = nil }
        return try begun!.get()
    }

    struct MissingKV: Error, CustomStringConvertible {
        let description: String
    }

    func execute(_ plan: StepPlan) throws -> StepResult {
        stepCount += 1
        var result = StepResult()
        for job in plan.jobs {
            let perPage = tokensPerPageByModel[job.model]!
            for (token, slot) in zip(job.tokenIDs, job.slotMapping) {
                guard token >= 0 else { throw MissingKV(description: "an input token was never filled in") }
                slots[job.model]![Int(slot)] = token
            }
            for sequence in job.sequences {
                guard let request = sequence.sample else { continue }
                var hash: UInt64 = 1469598103934665603
                for position in 0..<sequence.contextLength {
                    let slot = Int(sequence.pageTable[position / perPage]) * perPage + position % perPage
                    guard let token = slots[job.model]![slot] else {
                        throw MissingKV(description: "\(sequence.sequenceID) position \(position) was never written")
                    }
                    hash = (hash ^ UInt64(UInt32(bitPattern: token))) &* 1099511628211
                }
                let vocabulary = UInt64(models[0].vocabularySize)
                var token = TokenID(hash % (vocabulary - 1)) + 1  // never 0 (EOS) unless seeded sampling says so
                if !request.parameters.isGreedy {
                    let seed = request.parameters.seed ?? 0
                    token = TokenID((hash ^ seed &+ UInt64(request.generatedCount)) % vocabulary)
                }
                result.samples[sequence.sequenceID] = SampledToken(tokenID: token, logprob: -1)
            }
        }
        return result
    }
}
