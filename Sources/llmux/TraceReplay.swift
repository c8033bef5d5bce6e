import Bench
import Foundation
import Placement

/// `llmux simulate --replay-trace`: prices the steps a real run took with the cost model, so that
/// the cost model's error is seen apart from the scheduling (which the simulator reproduces only
/// as well as its clock).
enum TraceReplay {
    struct Group {
        var count = 0
        var measured = 0.0
        var predicted = 0.0
        var ratios: [Double] = []

        mutating func add(measured m: Double, predicted p: Double) {
            count += 1
            measured += m
            predicted += p
            if p > 0 { ratios.append(m / p) }
        }

        func line(_ name: String) -> String {
            String(format: "%-44@ %6d steps  measured %8.3f s  predicted %8.3f s  sum ratio %5.2f  median ratio %5.2f",
                   name, count, measured, predicted, predicted > 0 ? measured / predicted : 0, percentile(ratios, 0.5))
        }
    }

    static func read(_ path: String) throws -> [StepTraceEntry] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CommandFailure("cannot read \(path)") }
        let decoder = JSONDecoder()
        return try text.split(separator: "\n").map { try decoder.decode(StepTraceEntry.self, from: Data($0.utf8)) }
    }

    /// The comparison as text: totals, the engine's own time per step, and groups of steps.
    static func compare(path: String, simulator: ClusterSimulator) throws -> String {
        let entries = try read(path)
        guard entries.contains(where: { $0.executeSeconds != nil }) else { throw CommandFailure("\(path) has no measured steps") }
        var total = Group()
        var bySignature: [String: Group] = [:]
        // One-model steps by model, kind, and whether the last pass before was the same model's
        // (its weights may still be in the caches) or not.
        var single: [String: Group] = [:]
        var engine: [Double] = []
        // Measured minus predicted engine time per step.
        var engineError: [Double] = []
        var lastModel: String?
        for entry in entries {
            guard let execute = entry.executeSeconds else { continue }
            var loads = entry.loads
            let before = lastModel
            let predictedEngine = simulator.table.engineOverhead(sequences: loads.reduce(0) { $0 + $1.sequences })
            let predicted = simulator.predictStep(&loads, previous: lastModel) - predictedEngine
            engineError.append(entry.seconds - execute - predictedEngine)
            lastModel = loads.last?.model ?? lastModel
            total.add(measured: execute, predicted: predicted)
            engine.append(entry.seconds - execute)
            func kind(_ load: ModelStepLoad) -> String {
                load.prefillTokens > 0 ? (load.decodeBatch > 0 ? "mixed" : "prefill") : "decode"
            }
            let signature = loads.map { "\($0.model):\(kind($0))" }.joined(separator: " ")
            bySignature[signature, default: Group()].add(measured: execute, predicted: predicted)
            if loads.count == 1 {
                // Decode steps also by batch (up to the next power of two): the kernels change with it.
                let batch = loads[0].decodeBatch
                let bucket = batch > 0 ? " b≤\(1 << Int((Double(batch)).log2Ceiling))" : ""
                let key = "\(loads[0].model) \(kind(loads[0]))\(bucket) after \(before == loads[0].model ? "same" : "other")"
                single[key, default: Group()].add(measured: execute, predicted: predicted)
            }
        }
        var lines = [total.line("all steps (jobs only)")]
        lines.append(String(format: "engine time beyond the jobs per step: median %.3f ms, mean %.3f ms, p90 %.3f ms; measured − predicted: median %.3f ms, mean %.3f ms",
                            percentile(engine, 0.5) * 1000, engine.reduce(0, +) / Double(max(1, engine.count)) * 1000,
                            percentile(engine, 0.9) * 1000, percentile(engineError, 0.5) * 1000,
                            engineError.reduce(0, +) / Double(max(1, engineError.count)) * 1000))
        lines.append("by step composition (largest first):")
        for (name, group) in bySignature.sorted(by: { $0.value.measured > $1.value.measured }).prefix(16) { lines.append("  " + group.line(name)) }
        if !single.isEmpty {
            lines.append("one-model steps:")
            for (name, group) in single.sorted(by: { $0.key < $1.key }) { lines.append("  " + group.line(name)) }
        }
        return lines.joined(separator: "\n")
    }
}

private extension Double {
    /// ⌈log2(self)⌉ for self ≥ 1.
    var log2Ceiling: Double { Foundation.log2(self).rounded(.up) }
}
