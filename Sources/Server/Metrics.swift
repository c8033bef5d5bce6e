import Engine
import Foundation
import LLMuxCore
import OpenAIAPI
import Synchronization

typealias Histogram = PrometheusHistogram

/// Request counters and latency histograms by model, written as Prometheus text by `/metrics`.
/// Engine load (running, waiting, KV pages) is read from the backend when scraped.
public final class ServerMetrics: Sendable {
    struct ModelCounters: Sendable {
        var finished: [String: Int] = [:]
        var promptTokens = 0
        var generationTokens = 0
        var timeToFirstToken = Histogram(bounds: ServerMetrics.ttftBounds)
        var interTokenLatency = Histogram(bounds: ServerMetrics.itlBounds)
        var e2eLatency = Histogram(bounds: ServerMetrics.e2eBounds)
    }

    static let ttftBounds = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80]
    static let itlBounds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10, 20]
    static let e2eBounds = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300, 600]

    private let counters = Mutex<[String: ModelCounters]>([:])
    private let httpResponses = Mutex<[String: Int]>([:])

    /// Empty metrics.
    public init() {}

    func record(model: String, _ update: (inout ModelCounters) -> Void) {
        counters.withLock { update(&$0[model, default: ModelCounters()]) }
    }

    /// Counts one finished sequence.
    func finished(model: String, reason: String, promptTokens: Int, generationTokens: Int, seconds: Double) {
        record(model: model) {
            $0.finished[reason, default: 0] += 1
            $0.promptTokens += promptTokens
            $0.generationTokens += generationTokens
            $0.e2eLatency.observe(seconds)
        }
    }

    /// Counts one HTTP answer by status.
    func response(status: Int) {
        httpResponses.withLock { $0[String(status), default: 0] += 1 }
    }

    /// The Prometheus exposition text.
    public func render(models: [String], stats: UnitStats?) -> String {
        let snapshot = counters.withLock { $0 }
        let statuses = httpResponses.withLock { $0 }
        var out = ""
        func header(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func label(_ model: String) -> String { "model=\"\(escape(model))\"" }
        let all = Array(Set(models).union(snapshot.keys)).sorted()

        header("llmux_requests_total", "counter", "Finished sequences (choices) by finish reason.")
        for model in all {
            let finished = snapshot[model]?.finished ?? [:]
            for reason in Set(["stop", "length", "abort", "error"]).union(finished.keys).sorted() {
                out += "llmux_requests_total{\(label(model)),finish_reason=\"\(escape(reason))\"} \(finished[reason] ?? 0)\n"
            }
        }
        header("llmux_prompt_tokens_total", "counter", "Prompt tokens of finished sequences.")
        for model in all { out += "llmux_prompt_tokens_total{\(label(model))} \(snapshot[model]?.promptTokens ?? 0)\n" }
        header("llmux_generation_tokens_total", "counter", "Generated tokens.")
        for model in all { out += "llmux_generation_tokens_total{\(label(model))} \(snapshot[model]?.generationTokens ?? 0)\n" }

        func histogram(_ name: String, _ help: String, _ bounds: [Double], _ pick: (ModelCounters) -> Histogram) {
            header(name, "histogram", help)
            for model in all {
                let h = snapshot[model].map(pick) ?? Histogram(bounds: bounds)
                var cumulative = 0
                for (bound, count) in zip(h.bounds, h.counts) {
                    cumulative += count
                    out += "\(name)_bucket{\(label(model)),le=\"\(format(bound))\"} \(cumulative)\n"
                }
                out += "\(name)_bucket{\(label(model)),le=\"+Inf\"} \(h.count)\n"
                out += "\(name)_sum{\(label(model))} \(format(h.sum))\n"
                out += "\(name)_count{\(label(model))} \(h.count)\n"
            }
        }
        histogram("llmux_time_to_first_token_seconds", "Time from submission to the first generated token.",
                  Self.ttftBounds, \.timeToFirstToken)
        histogram("llmux_inter_token_latency_seconds", "Time between consecutive generated tokens of a sequence.",
                  Self.itlBounds, \.interTokenLatency)
        histogram("llmux_e2e_request_latency_seconds", "Time from submission to the last token of a sequence.",
                  Self.e2eBounds, \.e2eLatency)

        header("llmux_requests_running", "gauge", "Sequences in the running batch.")
        for model in all { out += "llmux_requests_running{\(label(model))} \(stats?.running[ModelID(model)] ?? 0)\n" }
        header("llmux_requests_waiting", "gauge", "Sequences waiting for admission.")
        for model in all { out += "llmux_requests_waiting{\(label(model))} \(stats?.waiting[ModelID(model)] ?? 0)\n" }
        let total = stats?.totalPages ?? 0
        header("llmux_kv_cache_usage_ratio", "gauge", "Fraction of its unit's shared KV pool held by the model.")
        for model in all {
            let used = stats?.usedPages[ModelID(model)] ?? 0
            let pool = stats?.poolPages[ModelID(model)] ?? total
            out += "llmux_kv_cache_usage_ratio{\(label(model))} \(format(pool > 0 ? Double(used) / Double(pool) : 0))\n"
        }
        header("llmux_kv_cache_used_pages", "gauge", "KV pages held by the model.")
        for model in all { out += "llmux_kv_cache_used_pages{\(label(model))} \(stats?.usedPages[ModelID(model)] ?? 0)\n" }
        header("llmux_preemptions_total", "counter", "Sequences whose KV cache was dropped to make room (recomputed when they resume).")
        for model in all { out += "llmux_preemptions_total{\(label(model))} \(stats?.preemptions[ModelID(model)] ?? 0)\n" }
        header("llmux_kv_page_waits_total", "counter", "Steps a running sequence waited for a free KV page, keeping its cache.")
        for model in all { out += "llmux_kv_page_waits_total{\(label(model))} \(stats?.pageWaits[ModelID(model)] ?? 0)\n" }
        header("llmux_kv_cache_pages", "gauge", "Pages in the shared KV pools of all units.")
        out += "llmux_kv_cache_pages \(total)\n"
        header("llmux_http_responses_total", "counter", "HTTP answers of the API routes by status.")
        for status in statuses.keys.sorted() { out += "llmux_http_responses_total{status=\"\(status)\"} \(statuses[status]!)\n" }
        return out
    }

    private func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    private func format(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
        return String(value)
    }
}
