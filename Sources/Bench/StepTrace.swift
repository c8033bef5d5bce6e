import LLMuxCore

/// What one model does in one step: its prefill tokens and its decode tokens with their contexts
/// (the numbers a cost model prices a pass by).
public struct ModelStepLoad: Sendable, Codable, Equatable {
    /// The model's serving name.
    public var model: String
    /// Prompt tokens run in the step (every chunk of every sequence).
    public var prefillTokens = 0
    /// Context tokens that the prefill chunks attend to beyond themselves (earlier chunks of the
    /// same prompt, or a recomputed prefix), summed over sequences.
    public var prefillPriorContext = 0
    /// Sequences with a prompt chunk.
    public var prefillSequences = 0
    /// Sequences with one decode token.
    public var decodeBatch = 0
    /// The decode tokens' context lengths, summed.
    public var decodeContextSum = 0
    /// The cost model's prediction of this model's pass, seconds (simulator traces only).
    public var predictedSeconds: Double?

    /// A load of `model` (empty by default).
    public init(model: String, prefillTokens: Int = 0, prefillPriorContext: Int = 0, prefillSequences: Int = 0, decodeBatch: Int = 0,
                decodeContextSum: Int = 0, predictedSeconds: Double? = nil) {
        self.model = model
        self.prefillTokens = prefillTokens
        self.prefillPriorContext = prefillPriorContext
        self.prefillSequences = prefillSequences
        self.decodeBatch = decodeBatch
        self.decodeContextSum = decodeContextSum
        self.predictedSeconds = predictedSeconds
    }

    /// Sequences of the model in the step.
    public var sequences: Int { prefillSequences + decodeBatch }

    /// Mean context of the decode tokens (0 without any).
    public var decodeContext: Double { decodeBatch > 0 ? Double(decodeContextSum) / Double(decodeBatch) : 0 }

    /// Per model, in the order models first appear in the plan. A sequence with one query token
    /// past its first is a decode even inside a fused or prefill-phase job (temporal and spatial
    /// jobs mix both; the CPU runner fuses them anyway).
    public static func of(_ plan: StepPlan) -> [ModelStepLoad] {
        var loads: [ModelStepLoad] = []
        for job in plan.jobs {
            let index = loads.firstIndex { $0.model == job.model.name } ?? {
                loads.append(ModelStepLoad(model: job.model.name))
                return loads.count - 1
            }()
            for sequence in job.sequences {
                if job.phase == .decode || (sequence.queryCount == 1 && sequence.contextLength > 1) {
                    loads[index].decodeBatch += 1
                    loads[index].decodeContextSum += sequence.contextLength
                } else {
                    loads[index].prefillTokens += sequence.queryCount
                    loads[index].prefillPriorContext += sequence.contextLength - sequence.queryCount
                    loads[index].prefillSequences += 1
                }
            }
        }
        return loads
    }
}

/// One engine step, as `llmux bench mux --trace` measures it and `llmux simulate --trace`
/// predicts it, so that the two can be compared step by step.
public struct StepTraceEntry: Sendable, Codable, Equatable {
    /// Seconds from the run's start when the step began (before scheduling).
    public var start: Double
    /// Seconds the whole step took: scheduling, the jobs, and turning samples into events.
    public var seconds: Double
    /// Seconds of the executor's part alone (measured traces only).
    public var executeSeconds: Double?
    /// Sequences live (waiting or running) when the step began.
    public var liveSequences: Int
    /// Each model's part of the step, in plan order.
    public var loads: [ModelStepLoad]

    /// An entry.
    public init(start: Double, seconds: Double, executeSeconds: Double? = nil, liveSequences: Int, loads: [ModelStepLoad]) {
        self.start = start
        self.seconds = seconds
        self.executeSeconds = executeSeconds
        self.liveSequences = liveSequences
        self.loads = loads
    }
}
