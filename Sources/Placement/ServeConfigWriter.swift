import Foundation

/// The `llmux serve --config` file of one host of a plan (YAML, written by hand: Placement
/// needs no YAML library for this).
public enum ServeConfigWriter {
    /// YAML for `host`: the models it serves (path and expected rate), and its units (devices,
    /// models with KV quota and SM share, KV memory, policy).
    public static func yaml(plan: PlacementPlan, host: Int) -> String {
        let units = plan.units.filter { $0.host == host }
        var lines = [
            "# llmux serve configuration of host \(host), from a `\(plan.algorithm)` plan (cost model: \(plan.costSource.rawValue))",
            "models:",
        ]
        var listed = Set<Int>()
        for unit in units {
            for model in unit.models where listed.insert(model.modelIndex).inserted {
                let spec = plan.models[model.modelIndex]
                let rate = unit.models.filter { $0.modelIndex == model.modelIndex }.reduce(0) { $0 + $1.rate }
                lines.append("  - name: \(quoted(spec.name))")
                lines.append("    path: \(quoted(spec.path ?? "SET-PATH-OF-\(spec.name)"))")
                lines.append("    expected_rate: \(format(rate))")
            }
        }
        lines.append("units:")
        for unit in units {
            let devices = plan.cluster.device == "cpu" ? ["cpu"] : unit.gpus.map { "cuda:\($0)" }
            lines.append("  - devices: [\(devices.joined(separator: ", "))]")
            lines.append("    policy: \(unit.policy.rawValue)")
            lines.append("    kv_cache_memory: \(Int(unit.kvBytes))  # bytes over the unit's \(unit.gpus.count) device(s)")
            lines.append("    kv_cache_memory_per_device: \(Int(unit.kvBytes) / max(1, unit.gpus.count))")
            lines.append("    prefill_sm_share: \(format(unit.prefillShare))")
            lines.append("    models:")
            for model in unit.models {
                lines.append("      - name: \(quoted(model.name))")
                lines.append("        expected_rate: \(format(model.rate))")
                lines.append("        kv_quota: \(Int(model.kvQuotaBytes))")
                lines.append("        sm_share: \(format(model.smShare))")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    static func format(_ value: Double) -> String { String(format: "%.4g", value) }
}
