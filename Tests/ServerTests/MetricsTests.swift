import Engine
import LLMuxCore
import Server
import Testing

/// The Prometheus text of `/metrics` for given unit statistics.
@Suite struct MetricsTests {
    @Test func preemptionsAndPageWaitsAreCountersByModel() {
        var stats = UnitStats()
        stats.preemptions = [ModelID("alpha"): 7, ModelID("beta"): 0]
        stats.pageWaits = [ModelID("alpha"): 3]
        let text = ServerMetrics().render(models: ["alpha", "beta"], stats: stats)
        #expect(text.contains("# TYPE llmux_preemptions_total counter\n"))
        #expect(text.contains("llmux_preemptions_total{model=\"alpha\"} 7\n"))
        #expect(text.contains("llmux_preemptions_total{model=\"beta\"} 0\n"))
        #expect(text.contains("# TYPE llmux_kv_page_waits_total counter\n"))
        #expect(text.contains("llmux_kv_page_waits_total{model=\"alpha\"} 3\n"))
        #expect(text.contains("llmux_kv_page_waits_total{model=\"beta\"} 0\n"))
    }
}
