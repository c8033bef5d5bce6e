import Bench
import LLMuxCore
import Testing

@Suite struct StepTraceTests {
    func sequence(_ id: UInt64, start: Int, query: Int, context: Int) -> SequencePlan {
        SequencePlan(sequenceID: SequenceID(id), queryStart: start, queryCount: query, contextLength: context, pageTable: [], sample: nil)
    }

    func job(_ model: String, _ phase: JobPhase, _ sequences: [SequencePlan]) -> JobPlan {
        let tokens = sequences.reduce(0) { $0 + $1.queryCount }
        return JobPlan(model: ModelID(model), phase: phase, tokenIDs: Array(repeating: 3, count: tokens),
                       positions: Array(repeating: 0, count: tokens), slotMapping: Array(repeating: 0, count: tokens), sequences: sequences)
    }

    @Test func loadsSumEachModelsPrefillAndDecodeTokensInPlanOrder() {
        // Model b's prefill job comes first; model a has a fused job (a prompt chunk past 4 earlier
        // tokens, and one decode token) and a separate decode job.
        let plan = StepPlan(jobs: [
            job("b", .prefill, [sequence(1, start: 0, query: 6, context: 6)]),
            job("a", .prefill, [sequence(2, start: 0, query: 5, context: 9), sequence(3, start: 5, query: 1, context: 20)]),
            job("a", .decode, [sequence(4, start: 0, query: 1, context: 3)]),
        ])
        let loads = ModelStepLoad.of(plan)
        #expect(loads.map(\.model) == ["b", "a"])
        #expect(loads[0].prefillTokens == 6 && loads[0].prefillPriorContext == 0 && loads[0].prefillSequences == 1)
        #expect(loads[0].decodeBatch == 0 && loads[0].decodeContext == 0)
        #expect(loads[1].prefillTokens == 5 && loads[1].prefillPriorContext == 4 && loads[1].prefillSequences == 1)
        #expect(loads[1].decodeBatch == 2 && loads[1].decodeContextSum == 23 && loads[1].decodeContext == 11.5)
    }

    @Test func aOneTokenPromptIsAPrefillNotADecode() {
        // Context 1: the sequence's first token, so it is its prompt, whatever the job's phase.
        let loads = ModelStepLoad.of(StepPlan(jobs: [job("a", .prefill, [sequence(1, start: 0, query: 1, context: 1)])]))
        #expect(loads[0].prefillTokens == 1 && loads[0].decodeBatch == 0)
    }
}
