import ArgumentParser
import Foundation
import Placement

/// `llmux plan`: places models on a cluster.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Place models on GPU meshes (which models share which GPUs, KV quotas, SM shares).",
        discussion: """
            cluster.yaml: hosts, gpus_per_host, gpu_memory (e.g. 80GB), device (h100|h200|cpu), optionally \
            memory_utilization, kv_cache_memory, cost_model (a table from `llmux profile`).

            models.yaml: models: [{name, shape (preset or sizes) or path, rate, prompt_mean, output_mean}].

            Without a profiled cost table the device's roofline stands in; the plan says which.
            """)

    @Option(help: "Cluster description (YAML or JSON).") var cluster: String
    @Option(help: "Models to place (YAML or JSON).") var models: String
    @Option(help: "llmux, muxserve or spatial.") var algorithm: String = "llmux"
    @Option(help: "Cost table JSON (default: the cluster's cost_model, else the device's roofline).") var cost: String?
    @Flag(help: "Print the plan as JSON instead of a table.") var json = false
    @Option(help: "Write the plan JSON here.") var out: String?
    @Option(help: "`config`: write the `llmux serve` configuration of every host into --config-dir.") var emit: String?
    @Option(help: "Folder for --emit config.") var configDir = "."
    @Option(help: "SLO: finish within this many times the solo latency.") var sloScale = 5.0
    @Option(help: "Seconds the optimizer may search.") var timeBudget = 30.0
    @Option(help: "Weight of latency against SLO goodput in LLMux's objective (0: off).") var latencyWeight = 0.0

    func run() throws {
        guard let chosen = PlacementAlgorithm(rawValue: algorithm) else {
            throw ValidationError("--algorithm must be llmux, muxserve or spatial")
        }
        let (clusterSpec, costPath) = try PlacementInput.cluster(cluster)
        let modelSpecs = try PlacementInput.models(models)
        let table = try PlacementInput.costTable(cost ?? costPath, cluster: clusterSpec, models: modelSpecs)
        let settings = PlanSettings(sloScale: sloScale, maxTokensPerStep: clusterSpec.device == "cpu" ? 512 : 2048, timeBudget: timeBudget,
                                    latencyWeight: latencyWeight)
        let plan: PlacementPlan
        do {
            plan = try PlacementOptimizer(cluster: clusterSpec, models: modelSpecs, table: table, settings: settings).plan(chosen)
        } catch let error as PlacementError {
            throw CommandFailure(error.description)
        }
        if let out { try PlacementInput.writeJSON(plan, to: out) }
        if let emit {
            guard emit == "config" else { throw ValidationError("--emit takes `config`") }
            try FileManager.default.createDirectory(atPath: configDir, withIntermediateDirectories: true)
            for host in Set(plan.units.map(\.host)).sorted() {
                let file = URL(fileURLWithPath: configDir).appendingPathComponent("serve-host-\(host).yaml")
                try ServeConfigWriter.yaml(plan: plan, host: host).write(to: file, atomically: true, encoding: .utf8)
                report("wrote \(file.path)")
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(plan), as: UTF8.self))
        } else {
            print(plan.table())
        }
    }
}
