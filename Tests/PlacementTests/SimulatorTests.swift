import Bench
import Testing
@testable import Placement

@Suite struct SimulatorTests {
    func request(_ arrival: Double, _ model: Int, prompt: Int, output: Int) -> WorkloadRequest {
        WorkloadRequest(arrival: arrival, modelIndex: model, promptLength: prompt, outputLength: output)
    }

    @Test func singleRequestTimelineOnTheCPU() throws {
        // Prefill 0.1 s, decode 0.01 s: first token at 0.1 (the prefill samples it), then two decodes.
        let plan = Fixture.plan(models: [("a", 1)], device: "cpu", policy: .mux)
        let table = CostTable(device: "cpu", source: .measured, note: "", entries: [Fixture.constant("a", prefill: 0.1, decode: 0.01)])
        let result = try ClusterSimulator(plan: plan, table: table).run([request(0, 0, prompt: 4, output: 3)], timeLimit: 10)
        let record = result.records[0]
        #expect(abs(record.firstToken! - 0.1) < 1e-9)
        #expect(abs(record.finish! - 0.12) < 1e-9)
        #expect(record.outputTokens == 3)
        #expect(result.steps == 3)
        #expect(abs(record.soloLatency - 0.12) < 1e-9)
    }

    @Test func cpuRunsModelsOneAfterAnother() throws {
        // Two models at t = 0: each step is the sum of both models' passes.
        let plan = Fixture.plan(models: [("a", 1), ("b", 1)], device: "cpu", policy: .mux)
        let table = CostTable(device: "cpu", source: .measured, note: "", entries: [
            Fixture.constant("a", prefill: 0.1, decode: 0.01), Fixture.constant("b", prefill: 0.2, decode: 0.02),
        ])
        let result = try ClusterSimulator(plan: plan, table: table)
            .run([request(0, 0, prompt: 4, output: 2), request(0, 1, prompt: 4, output: 2)], timeLimit: 10)
        // Step 1: both prefills, 0.3 s; step 2: both decodes, 0.03 s.
        #expect(abs(result.records[0].firstToken! - 0.3) < 1e-9)
        #expect(abs(result.records[1].finish! - 0.33) < 1e-9)
    }

    @Test func cpuPassIsColdRightAfterAnotherModelsPass() throws {
        let table = CostTable(device: "cpu", source: .measured, note: "", entries: [
            Fixture.constant("a", prefill: 0.1, decode: 0.01, coldPrefill: 0.3, coldDecode: 0.03),
            Fixture.constant("b", prefill: 0.2, decode: 0.02, coldPrefill: 0.4, coldDecode: 0.05),
        ])
        // Alone: the first pass is cold (nothing ran before), then a's own passes keep its weights warm.
        let alone = try ClusterSimulator(plan: Fixture.plan(models: [("a", 1)], device: "cpu", policy: .mux), table: table)
            .run([request(0, 0, prompt: 4, output: 3)], timeLimit: 10)
        #expect(abs(alone.records[0].firstToken! - 0.3) < 1e-9)
        #expect(abs(alone.records[0].finish! - 0.32) < 1e-9)
        // Together every pass follows the other model's: step 1 both prefills cold (0.7), step 2
        // both decodes cold (0.08).
        let both = try ClusterSimulator(plan: Fixture.plan(models: [("a", 1), ("b", 1)], device: "cpu", policy: .mux), table: table)
            .run([request(0, 0, prompt: 4, output: 2), request(0, 1, prompt: 4, output: 2)], timeLimit: 10)
        #expect(abs(both.records[1].firstToken! - 0.7) < 1e-9)
        #expect(abs(both.records[1].finish! - 0.78) < 1e-9)
    }

    @Test func countsDecodePassesPricedPastTheProfiledContexts() throws {
        // Contexts profiled up to 8 tokens: a 4-token prompt decoding 10 tokens passes 8 on the way.
        let short = CostEntry(model: "a", meshSize: 1, smShares: [1], prefillTokens: [1, 1024], prefillSeconds: [[0.1, 0.1]],
                              decodeBatches: [1, 256], decodeContexts: [1, 8], decodeSeconds: [[[0.01, 0.02], [0.01, 0.02]]])
        let plan = Fixture.plan(models: [("a", 1)], device: "cpu", policy: .mux)
        var simulator = try ClusterSimulator(plan: plan, table: CostTable(device: "cpu", source: .measured, note: "", entries: [short]))
        simulator.tracing = true
        let result = try simulator.run([request(0, 0, prompt: 4, output: 10)], timeLimit: 10)
        let trace = try #require(result.trace)
        #expect(result.passes == result.steps)
        let past = trace.filter { $0.loads[0].decodeBatch > 0 && $0.loads[0].decodeContext > 8 }
        #expect(result.extrapolatedPasses == past.count)
        #expect(result.extrapolatedPasses > 0 && result.extrapolatedPasses < result.passes - 1)
        // Priced by extending the last segment: 0.01 s at context 1, 0.02 s at 8, so 0.03 s at 15.
        for step in past {
            #expect(abs(step.loads[0].predictedSeconds! - (0.01 + 0.01 * (step.loads[0].decodeContext - 1) / 7)) < 1e-12)
        }
        // A grid that reaches the longest sequence extrapolates nothing.
        let covered = CostTable(device: "cpu", source: .measured, note: "", entries: [Fixture.constant("a", prefill: 0.1, decode: 0.01)])
        let inside = try ClusterSimulator(plan: plan, table: covered).run([request(0, 0, prompt: 4, output: 10)], timeLimit: 10)
        #expect(inside.extrapolatedPasses == 0 && inside.passes == inside.steps)
    }

    @Test func traceRecordsEveryStepWithEachModelsLoadAndPrediction() throws {
        let table = CostTable(device: "cpu", source: .measured, note: "", entries: [
            Fixture.constant("a", prefill: 0.1, decode: 0.01), Fixture.constant("b", prefill: 0.2, decode: 0.02),
        ], stepOverhead: 0.001, stepOverheadPerSequence: 0.0005)
        var simulator = try ClusterSimulator(plan: Fixture.plan(models: [("a", 1), ("b", 1)], device: "cpu", policy: .temporal), table: table)
        let workload = [request(0, 0, prompt: 4, output: 2), request(0, 1, prompt: 6, output: 3)]
        #expect(try simulator.run(workload, timeLimit: 10).trace == nil)
        simulator.tracing = true
        let result = try simulator.run(workload, timeLimit: 10)
        let trace = try #require(result.trace)
        #expect(trace.count == result.steps)
        // Temporal: one model a step, taking turns; a's prompt first, then b's.
        #expect(trace[0].loads == [ModelStepLoad(model: "a", prefillTokens: 4, prefillSequences: 1, predictedSeconds: 0.1)])
        #expect(trace[1].loads.map(\.model) == ["b"] && trace[1].loads[0].prefillTokens == 6)
        #expect(trace[0].liveSequences == 2)
        for (step, next) in zip(trace, trace.dropFirst()) {
            // Each step is its passes plus the engine's overhead, and the next starts when it ends.
            let sequences = step.loads.reduce(0) { $0 + $1.sequences }
            #expect(abs(step.seconds - step.loads.reduce(0.001 + 0.0005 * Double(sequences)) { $0 + $1.predictedSeconds! }) < 1e-12)
            #expect(abs(step.start + step.seconds - next.start) < 1e-12)
        }
        #expect(abs(trace.last!.start + trace.last!.seconds - result.records.compactMap(\.finish).max()!) < 1e-12)
    }

    @Test func gpuMuxOverlapsPrefillWithDecodeAndTemporalDoesNot() throws {
        // Request 0 (model a) arrives at 0, request 1 (model b) once a decodes. Under mux b's
        // prefill (partition 0) runs beside a's decode (partition 1): the step is the longer one.
        let shares = [0.5, 1.0]
        let table = CostTable(device: "h100", source: .roofline, note: "", entries: [
            Fixture.constant("a", prefill: 0.1, decode: 0.01, shares: shares), Fixture.constant("b", prefill: 0.05, decode: 0.01, shares: shares),
        ])
        let workload = [request(0, 0, prompt: 4, output: 4), request(0.1, 1, prompt: 4, output: 1)]
        let mux = try ClusterSimulator(plan: Fixture.plan(models: [("a", 1), ("b", 1)], device: "h100", policy: .mux, prefillShare: 0.5),
                                       table: table).run(workload, timeLimit: 10)
        // t = 0.1 a's first token; step 2 = max(b prefill 0.05, a decode 0.01) → 0.15: b done, a's second token.
        #expect(abs(mux.records[1].finish! - 0.15) < 1e-9)
        #expect(abs(mux.records[0].finish! - 0.17) < 1e-9)
        let temporal = try ClusterSimulator(plan: Fixture.plan(models: [("a", 1), ("b", 1)], device: "h100", policy: .temporal),
                                            table: table).run(workload, timeLimit: 10)
        // Temporal: one model per step, taking turns: b's prefill (0.1 → 0.15) runs alone after a's
        // prefill, then a's three decode steps (0.16, 0.17, 0.18), never beside each other.
        #expect(abs(temporal.records[1].finish! - 0.15) < 1e-9)
        #expect(abs(temporal.records[0].finish! - 0.18) < 1e-9)
    }

    @Test func replicasSplitTrafficByShare() throws {
        var plan = Fixture.plan(models: [("a", 2)], device: "cpu", policy: .mux)
        var second = plan.units[0]
        second.gpus = [1]
        plan.units[0].models[0].trafficShare = 0.5
        second.models[0].trafficShare = 0.5
        second.models[0].replica = 1
        plan.units.append(second)
        plan.cluster.gpusPerHost = 2
        let table = CostTable(device: "cpu", source: .measured, note: "", entries: [Fixture.constant("a", prefill: 0.1, decode: 0.01)])
        // Four simultaneous requests, two per replica: each unit serves its two at once.
        let workload = (0..<4).map { _ in request(0, 0, prompt: 4, output: 1) }
        let result = try ClusterSimulator(plan: plan, table: table).run(workload, timeLimit: 10)
        #expect(result.records.allSatisfy { abs($0.finish! - 0.1) < 1e-9 })
        #expect(result.overall.completed == 4)
    }
}

@Suite struct ServeConfigTests {
    @Test func hostConfigListsModelsAndUnits() {
        var plan = Fixture.plan(models: [("a", 2), ("b", 0.5)], device: "h100", policy: .mux, prefillShare: 0.5)
        plan.models[0].path = "/models/a"
        let yaml = ServeConfigWriter.yaml(plan: plan, host: 0)
        #expect(yaml.contains("  - name: \"a\"\n    path: \"/models/a\"\n    expected_rate: 2\n"))
        #expect(yaml.contains("path: \"SET-PATH-OF-b\""))
        #expect(yaml.contains("  - devices: [cuda:0]\n    policy: mux\n"))
        #expect(yaml.contains("prefill_sm_share: 0.5"))
        #expect(yaml.contains("kv_quota: "))
        #expect(ServeConfigWriter.yaml(plan: plan, host: 1).hasSuffix("units:\n"))
    }
}
