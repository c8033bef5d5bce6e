import Foundation
import OpenAIAPI
import Synchronization

/// Prometheus counters and histograms of the gateway: per model and per upstream requests,
/// errors and retries, answers by status, and the time the gateway itself adds to a request.
public final class GatewayMetrics: Sendable {
    typealias Histogram = PrometheusHistogram

    struct Counters {
        var requests = 0
        var errors = 0
        var retries = 0
    }

    struct State {
        var models: [String: Counters] = [:]
        var upstreams: [String: Counters] = [:]
        var statuses: [Int: Int] = [:]
        var midStreamFailures = 0
        var upstreamPauses = 0
        var added = Histogram(bounds: GatewayMetrics.addedBounds)
        var firstByte = Histogram(bounds: GatewayMetrics.firstByteBounds)
    }

    // Down to 10 µs: the target for the whole added latency is 200 µs, most of it outside the process.
    static let addedBounds = [0.00001, 0.00002, 0.00003, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]
    static let firstByteBounds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

    private let state = Mutex(State())

    /// Starts with every counter and histogram empty.
    public init() {}

    /// One request routed to `upstream` (an attempt; retries count again under `retry`).
    func attempt(model: String, upstream: String) {
        state.withLock {
            $0.models[model, default: Counters()].requests += 1
            $0.upstreams[upstream, default: Counters()].requests += 1
        }
    }

    func retry(model: String, upstream: String) {
        state.withLock {
            $0.models[model, default: Counters()].retries += 1
            $0.upstreams[upstream, default: Counters()].retries += 1
        }
    }

    func error(model: String?, upstream: String?) {
        state.withLock {
            if let model { $0.models[model, default: Counters()].errors += 1 }
            if let upstream { $0.upstreams[upstream, default: Counters()].errors += 1 }
        }
    }

    func midStreamFailure() { state.withLock { $0.midStreamFailures += 1 } }

    func upstreamPaused() { state.withLock { $0.upstreamPauses += 1 } }

    func answered(status: Int) { state.withLock { $0.statuses[status, default: 0] += 1 } }

    /// The gateway's own time on one request (reading and routing it before the upstream hop,
    /// forwarding the first chunk after it) and the upstream's time to its first byte.
    func observe(added: Double, upstreamFirstByte: Double) {
        state.withLock {
            $0.added.observe(added)
            $0.firstByte.observe(upstreamFirstByte)
        }
    }

    /// Quantile of the added-latency histogram (upper bucket bound), for logs and tests.
    func addedCount() -> Int { state.withLock { $0.added.count } }

    /// The metrics in Prometheus text format for `GET /metrics`, with health and in-flight gauges of `upstreams`.
    public func render(upstreams: [Upstream]) -> String {
        let s = state.withLock { $0 }
        var out = ""
        func header(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        func esc(_ v: String) -> String { v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") }
        for (name, help, pick) in [("requests", "Requests (attempts) sent upstream.", \Counters.requests),
                                   ("errors", "Requests that failed (no upstream, upstream error or cut stream).", \Counters.errors),
                                   ("retries", "Attempts retried on another replica before the first byte.", \Counters.retries)] {
            header("llmux_gateway_\(name)_total", "counter", help)
            for model in s.models.keys.sorted() { out += "llmux_gateway_\(name)_total{model=\"\(esc(model))\"} \(s.models[model]![keyPath: pick])\n" }
            header("llmux_gateway_upstream_\(name)_total", "counter", help)
            for url in s.upstreams.keys.sorted() { out += "llmux_gateway_upstream_\(name)_total{upstream=\"\(esc(url))\"} \(s.upstreams[url]![keyPath: pick])\n" }
        }
        header("llmux_gateway_stream_failures_total", "counter", "Streams whose upstream failed after the first byte (ended with an error event).")
        out += "llmux_gateway_stream_failures_total \(s.midStreamFailures)\n"
        header("llmux_gateway_upstream_read_pauses_total", "counter", "Times an upstream's reading paused because its client had over 1 MiB unsent.")
        out += "llmux_gateway_upstream_read_pauses_total \(s.upstreamPauses)\n"
        header("llmux_gateway_http_responses_total", "counter", "Answers to clients by status.")
        for status in s.statuses.keys.sorted() { out += "llmux_gateway_http_responses_total{status=\"\(status)\"} \(s.statuses[status]!)\n" }
        header("llmux_gateway_upstream_healthy", "gauge", "1 while the upstream is in rotation.")
        for u in upstreams { out += "llmux_gateway_upstream_healthy{upstream=\"\(esc(u.url))\"} \(u.isHealthy ? 1 : 0)\n" }
        header("llmux_gateway_upstream_outstanding", "gauge", "Requests in flight to the upstream.")
        for u in upstreams { out += "llmux_gateway_upstream_outstanding{upstream=\"\(esc(u.url))\"} \(u.outstanding)\n" }
        func histogram(_ name: String, _ help: String, _ h: Histogram) {
            header(name, "histogram", help)
            var cumulative = 0
            for (bound, count) in zip(h.bounds, h.counts) {
                cumulative += count
                out += "\(name)_bucket{le=\"\(bound)\"} \(cumulative)\n"
            }
            out += "\(name)_bucket{le=\"+Inf\"} \(h.count)\n\(name)_sum \(h.sum)\n\(name)_count \(h.count)\n"
        }
        histogram("llmux_gateway_added_latency_seconds",
                  "Time the gateway adds to a request: from its arrival to the upstream request being sent, plus from the upstream's first chunk to its write to the client.",
                  s.added)
        histogram("llmux_gateway_upstream_first_byte_seconds", "From sending a request upstream to its first body chunk.", s.firstByte)
        return out
    }
}
