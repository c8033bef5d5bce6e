import Bench
import Engine
import Foundation
import LLMuxCore
import Models
import Scheduling

/// A model's latency when it has the unit to itself: prefill as a line in prompt length and a
/// decode step at batch 1, measured on the same runner as the benchmark.
struct SoloProfile: Codable {
    let prefillBase: Double
    let prefillPerToken: Double
    let decodeStep: Double

    /// Predicted latency of a request served alone.
    func latency(prompt: Int, output: Int) -> Double {
        prefillBase + prefillPerToken * Double(prompt) + decodeStep * Double(max(0, output - 1))
    }

    /// Latency targets at `scale` times the solo latencies: the first token of a `promptLength`
    /// prompt, and one decode step.
    func latencyTargets(scale: Double, promptLength: Int) -> LatencyTargets {
        LatencyTargets(timeToFirstToken: scale * (prefillBase + prefillPerToken * Double(promptLength)),
                       timePerOutputToken: scale * decodeStep)
    }

    static func measure(runner: ModelRunner, model: ModelID, promptMean: Int) throws -> SoloProfile {
        func time(prompt: Int, output: Int) throws -> (first: Double, total: Double) {
            let engine = EngineCore(executor: runner, tokenizers: [:], limits: SchedulerLimits(maxTokensPerStep: 8192))
            let tokens = (0..<prompt).map { TokenID(3 + $0 % 200) }
            try engine.add(GenerationRequest(model: model, promptTokens: tokens, parameters: SamplingParameters(maxTokens: output, stopAtEOS: false)))
            let start = Date()
            var first: Double?
            while engine.hasWork {
                for event in engine.step() where event.token != nil && first == nil { first = Date().timeIntervalSince(start) }
            }
            return (first ?? 0, Date().timeIntervalSince(start))
        }
        _ = try time(prompt: 16, output: 2)  // warm up
        let short = max(8, promptMean / 2), long = max(16, promptMean * 2)
        let a = try time(prompt: short, output: 1).first
        let b = try time(prompt: long, output: 1).first
        let decode = try time(prompt: 8, output: 33)
        let perToken = max(0, (b - a) / Double(long - short))
        return SoloProfile(prefillBase: max(0, a - perToken * Double(short)), prefillPerToken: perToken,
                           decodeStep: (decode.total - decode.first) / 32)
    }
}

/// Replays a workload against an engine in real time: arrivals are added between steps.
enum MuxDriver {
    /// What one replay gives.
    struct Outcome {
        /// One record per request.
        var records: [RequestRecord] = []
        /// Seconds from the first arrival's clock start to the end of the run.
        var seconds = 0.0
        /// Output tokens produced before `window` seconds.
        var windowTokens = 0
        /// Every step, with a tracer.
        var trace: [StepTraceEntry] = []
    }

    /// Replays `workload`; tokens produced in the first `window` seconds (the arrival window) are
    /// counted apart. With a `tracer` (the engine's executor) every step is recorded.
    static func run(engine: EngineCore, models: [ModelID], workload: [WorkloadRequest], profiles: [SoloProfile],
                    timeLimit: Double, window: Double, tracer: TracingExecutor? = nil) throws -> Outcome {
        var windowTokens = 0
        var trace: [StepTraceEntry] = []
        var records: [RequestRecord] = []
        var indexBySequence: [SequenceID: Int] = [:]
        var lastToken: [Int: Double] = [:]
        var next = 0
        let start = Date()
        while next < workload.count || engine.hasWork {
            let now = Date().timeIntervalSince(start)
            if now > timeLimit { break }
            while next < workload.count && workload[next].arrival <= now {
                let request = workload[next]
                let prompt = (0..<request.promptLength).map { TokenID(3 + ($0 * 7 + next) % 1000) }
                let id = try engine.add(GenerationRequest(
                    model: models[request.modelIndex], promptTokens: prompt,
                    parameters: SamplingParameters(maxTokens: request.outputLength, stopAtEOS: false)))
                indexBySequence[id] = records.count
                records.append(RequestRecord(
                    modelIndex: request.modelIndex, arrival: request.arrival, promptTokens: request.promptLength,
                    soloLatency: profiles[request.modelIndex].latency(prompt: request.promptLength, output: request.outputLength)))
                next += 1
            }
            if !engine.hasWork {
                if next < workload.count {
                    Thread.sleep(forTimeInterval: max(0, min(0.05, workload[next].arrival - now)))
                }
                continue
            }
            let live = tracer == nil ? 0 : engine.schedulerState.liveCount
            tracer?.reset()
            let events = engine.step()
            let stamp = Date().timeIntervalSince(start)
            if let tracer, let executed = tracer.last {
                trace.append(StepTraceEntry(start: now, seconds: stamp - now, executeSeconds: executed.seconds,
                                            liveSequences: live, loads: executed.loads))
            }
            for event in events {
                guard let index = indexBySequence[event.sequenceID] else { continue }
                if event.token != nil {
                    records[index].outputTokens += 1
                    if stamp <= window { windowTokens += 1 }
                    if records[index].firstToken == nil { records[index].firstToken = stamp }
                    if let last = lastToken[index] { records[index].tokenGaps.append(stamp - last) }
                    lastToken[index] = stamp
                }
                if event.finishReason != nil { records[index].finish = stamp }
                if event.finishReason == .error { records[index].failed = true }
            }
        }
        // Past the time limit: abort what is left and let jobs in flight finish, so the executor
        // is idle for the next run.
        for id in indexBySequence.keys { _ = engine.abort(id) }
        while engine.hasWork { _ = engine.step() }
        return Outcome(records: records, seconds: Date().timeIntervalSince(start), windowTokens: windowTokens, trace: trace)
    }
}

/// One policy at one rate.
struct MuxRun: Codable {
    let policy: String
    let alpha: Double
    let rate: Double
    let seconds: Double
    let overall: LatencySummary
    let perModel: [LatencySummary]
    /// Sequences preempted (their cache dropped under KV pressure) and the tokens recomputed for
    /// them; nil in results written before they were counted.
    var preemptions: Int?
    var preemptedTokens: Int?
    /// Times a running sequence waited a step for a free page, keeping its cache; nil in results
    /// written before they were counted.
    var pageWaits: Int?
    /// Output tokens per second produced while arrivals lasted (the first `duration` seconds): the
    /// rate the unit served at under load. Unlike `overall.tokensPerSecond` (all tokens over the
    /// whole run) it is not set by the last long request decoding alone after the queue drained.
    /// Where every policy keeps up it equals the offered load; above that it is the capacity.
    /// Nil in results written before it was counted.
    var windowTokensPerSecond: Double?
    /// MuxServe's aggregate throughput (`muxServeThroughput`): each model's completed requests
    /// over its own last finish, averaged weighted by rate. Nil in results written before it was
    /// counted.
    var muxServeRequestsPerSecond: Double?
    /// When the last request would end if every request were served alone from its arrival (its
    /// solo latency from the profile), in seconds from the start: a lower bound on `seconds` that
    /// no policy can beat, set by the workload's longest requests. Nil in results written before
    /// it was reported.
    var soloMakespan: Double?
}

/// The whole `bench mux` run.
struct MuxBenchResult: Codable {
    let command: String
    let gitRevision: String
    let device: String
    let date: String
    let models: [String]
    let parameters: [Int]
    let alphas: [Double]
    let duration: Double
    let promptMean: Double
    let outputMean: Double
    let kvCacheBytes: Int
    let profiles: [SoloProfile]
    let runs: [MuxRun]
    let checks: [MuxCheck.Outcome]

    /// The highest rate at which `policy` kept at least `attainment` of requests within the SLO
    /// (scale 5 or 10), or 0.
    func highestRate(policy: String, alpha: Double, scale: Int, attainment: Double = 0.99) -> Double {
        runs.filter { $0.policy == policy && $0.alpha == alpha
            && (scale == 5 ? $0.overall.sloAttainment5 : $0.overall.sloAttainment10) >= attainment }
            .map(\.rate).max() ?? 0
    }

    /// One run as a table row.
    static func row(_ run: MuxRun) -> String {
        let o = run.overall
        let failed = o.failed > 0 ? " (\(o.failed) failed)" : ""
        let preempted = run.preemptions.map { String(format: " | %5d / %7d", $0, run.preemptedTokens ?? 0) } ?? ""
        let waits = run.pageWaits.map { String(format: " | %10d", $0) } ?? ""
        let window = run.windowTokensPerSecond.map { String(format: " | %13.1f", $0) } ?? ""
        let muxServe = run.muxServeRequestsPerSecond.map { String(format: " | %13.2f", $0) } ?? ""
        let makespan = run.soloMakespan.map { String(format: " | %6.1f / %6.1f", run.seconds, $0) } ?? ""
        let itl = o.itlP50.map { String(format: " | %5.1f / %6.1f", $0 * 1000, (o.itlP99 ?? 0) * 1000) } ?? ""
        return String(format: "%5.1f | %@ | %4.1f | %4d/%-3d | %5.2f | %6.1f | %5.2f / %6.2f | %6.1f / %6.1f | %5.1f%% | %5.1f%%%@%@%@%@%@%@%@",
                      run.alpha, run.policy.padding(toLength: Self.policyWidth, withPad: " ", startingAt: 0), run.rate, o.completed, o.requests,
                      o.requestsPerSecond, o.tokensPerSecond,
                      o.ttftP50, o.ttftP99, o.tpotP50 * 1000, o.tpotP99 * 1000, o.sloAttainment5 * 100, o.sloAttainment10 * 100,
                      preempted, waits, window, muxServe, makespan, itl, failed)
    }

    /// Width of the policy column (`temporal-split`).
    static let policyWidth = 14

    func table() -> String {
        var lines = checks.flatMap { [$0.summary] + $0.errors.prefix(8).map { "  " + $0 } }
        lines.append("device \(device); models \(zip(models, parameters).map { "\($0) (\($1 / 1_000_000)M)" }.joined(separator: ", "))")
        lines.append("alpha | " + "policy".padding(toLength: Self.policyWidth, withPad: " ", startingAt: 0)
                     + " | rate | done/all | req/s | tok/s  | TTFT p50/p99 s | TPOT p50/p99 ms |  SLO@5 | SLO@10 | preempted / tokens | page waits | window tok/s | MuxServe req/s | end s / solo end s | ITL p50/p99 ms")
        lines += runs.map(Self.row)
        lines.append("per model (req/s, SLO@5, TPOT p50 ms):")
        for run in runs {
            let cells = zip(models, run.perModel).map { name, summary in
                summary.requests == 0 ? "\(name) -" : String(format: "%@ %.2f %3.0f%% %4.1f", name, summary.requestsPerSecond,
                                                              summary.sloAttainment5 * 100, summary.tpotP50 * 1000)
            }
            lines.append("  " + String(format: "α=%.1f ", run.alpha) + run.policy.padding(toLength: Self.policyWidth, withPad: " ", startingAt: 0)
                         + String(format: " %4.1f/s: ", run.rate) + cells.joined(separator: " | "))
        }
        // Policies in the order they first ran.
        let policies = runs.map(\.policy).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        for alpha in alphas where runs.contains(where: { $0.policy == "mux" && $0.alpha == alpha }) {
            for other in policies where other != "mux" {
                let pairs = runs.filter { $0.policy == other && $0.alpha == alpha }.compactMap { run -> String? in
                    guard let mux = runs.first(where: { $0.policy == "mux" && $0.rate == run.rate && $0.alpha == alpha }),
                          run.overall.tokensPerSecond > 0 else { return nil }
                    var pair = String(format: "%.1f/s: %.2fx", run.rate, mux.overall.tokensPerSecond / run.overall.tokensPerSecond)
                    if let muxWindow = mux.windowTokensPerSecond, let window = run.windowTokensPerSecond, window > 0 {
                        pair += String(format: " (while arrivals last %.2fx)", muxWindow / window)
                    }
                    if let muxServe = mux.muxServeRequestsPerSecond, let other = run.muxServeRequestsPerSecond, other > 0 {
                        pair += String(format: " (MuxServe's metric %.2fx)", muxServe / other)
                    }
                    return pair
                }
                if !pairs.isEmpty { lines.append(String(format: "α=%.1f mux throughput over %@: ", alpha, other) + pairs.joined(separator: ", ")) }
            }
            let holds = policies.map { policy in
                String(format: "%@ %.1f/%.1f", policy, highestRate(policy: policy, alpha: alpha, scale: 5),
                       highestRate(policy: policy, alpha: alpha, scale: 10))
            }
            lines.append(String(format: "α=%.1f highest rate at 99%% SLO attainment (scale 5/10): ", alpha) + holds.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }
}
