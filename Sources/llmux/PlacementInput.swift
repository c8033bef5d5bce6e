import Foundation
import Models
import Placement
import Yams

/// Reads `cluster.yaml` and `models.yaml` (JSON works too: YAML is a superset) for `llmux plan`.
enum PlacementInput {
    static func load(_ path: String) throws -> [String: Any] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CommandFailure("cannot read \(path)") }
        do {
            guard let value = try Yams.load(yaml: text) as? [String: Any] else { throw CommandFailure("\(path): expected a mapping at the top") }
            return value
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure("\(path): \(error)")
        }
    }

    static func number(_ value: Any?, _ what: String) throws -> Double? {
        switch value {
        case nil: return nil
        case let v as Int: return Double(v)
        case let v as Double: return v
        case let v as String:
            if let bytes = ByteSize(argument: v) { return Double(bytes.bytes) }
            throw CommandFailure("\(what): `\(v)` is not a number")
        default: throw CommandFailure("\(what): expected a number")
        }
    }

    /// The cluster: hosts, gpus_per_host, gpu_memory (`80GB` or bytes), device, and optional
    /// memory_utilization, activation_reserve, kv_cache_memory (a fixed KV pool per unit).
    static func cluster(_ path: String) throws -> (ClusterSpec, costModel: String?) {
        let map = try load(path)
        let top = (map["cluster"] as? [String: Any]) ?? map
        let device = (top["device"] as? String)?.lowercased() ?? "h100"
        guard let hosts = try number(top["hosts"] ?? top["nnodes"], "\(path): hosts"),
              let gpus = try number(top["gpus_per_host"] ?? top["ngpus_per_node"], "\(path): gpus_per_host") else {
            throw CommandFailure("\(path): needs `hosts` and `gpus_per_host`")
        }
        let preset = DeviceSpec.presets[device]
        guard let memory = try number(top["gpu_memory"], "\(path): gpu_memory") ?? preset?.memoryBytes else {
            throw CommandFailure("\(path): needs `gpu_memory` for device `\(device)`")
        }
        let cluster = ClusterSpec(
            hosts: Int(hosts), gpusPerHost: Int(gpus), memoryPerGPU: memory, device: device,
            memoryUtilization: try number(top["memory_utilization"], "memory_utilization") ?? 0.9,
            activationReserve: try number(top["activation_reserve"], "activation_reserve"),
            kvBytesPerElement: try number(top["kv_bytes_per_element"], "kv_bytes_per_element").map { Int($0) },
            kvBytesOverride: try number(top["kv_cache_memory"], "kv_cache_memory"))
        return (cluster, top["cost_model"] as? String)
    }

    /// A shape by name: LLaMA-1 sizes built into Placement, then the make-model presets.
    static func shape(named name: String) -> ModelShape? {
        if let shape = ModelShape.builtIn[name] { return shape }
        return ModelPreset.all[name].map { shape(of: $0.config, name: name) }
    }

    static func shape(of config: ModelConfig, name: String) -> ModelShape {
        ModelShape(name: name, hiddenSize: config.hiddenSize, intermediateSize: config.intermediateSize, layerCount: config.layerCount,
                   headCount: config.headCount, kvHeadCount: config.kvHeadCount, headDim: config.headDim, vocabSize: config.vocabSize)
    }

    /// The shape of a checkpoint directory (its config.json).
    static func shape(path: String, name: String) throws -> ModelShape {
        let checkpoint = try Checkpoint(directory: URL(fileURLWithPath: path))
        return shape(of: checkpoint.config, name: name)
    }

    /// The models: a list under `models:`, each with name, rate and a shape (a preset name, a
    /// mapping of sizes, or taken from `path`), and optional prompt_mean / output_mean.
    static func models(_ path: String) throws -> [ModelSpec] {
        let map = try load(path)
        guard let list = map["models"] as? [[String: Any]] else { throw CommandFailure("\(path): needs a `models:` list") }
        let defaults = map["defaults"] as? [String: Any] ?? [:]
        return try list.enumerated().map { index, entry in
            guard let name = entry["name"] as? String else { throw CommandFailure("\(path): model \(index + 1) has no name") }
            let checkpoint = entry["path"] as? String ?? entry["model"] as? String
            let shape: ModelShape
            switch entry["shape"] {
            case let preset as String:
                guard let found = Self.shape(named: preset) else {
                    let known = (Array(ModelShape.builtIn.keys) + Array(ModelPreset.all.keys)).sorted().joined(separator: ", ")
                    throw CommandFailure("\(path): model `\(name)`: unknown shape `\(preset)` (known: \(known))")
                }
                shape = found
            case let sizes as [String: Any]:
                func int(_ key: String) throws -> Int {
                    guard let v = try number(sizes[key], "\(name).\(key)") else { throw CommandFailure("\(path): model `\(name)`: shape needs `\(key)`") }
                    return Int(v)
                }
                let heads = try int("heads")
                shape = ModelShape(name: name, hiddenSize: try int("hidden_size"), intermediateSize: try int("intermediate_size"),
                                   layerCount: try int("layers"), headCount: heads,
                                   kvHeadCount: try number(sizes["kv_heads"], "kv_heads").map { Int($0) } ?? heads,
                                   headDim: try number(sizes["head_dim"], "head_dim").map { Int($0) },
                                   vocabSize: try int("vocab_size"),
                                   bytesPerWeight: try number(sizes["bytes_per_weight"], "bytes_per_weight").map { Int($0) } ?? 2)
            case nil:
                guard let checkpoint else { throw CommandFailure("\(path): model `\(name)` needs `shape` or `path`") }
                shape = try Self.shape(path: checkpoint, name: name)
            default:
                throw CommandFailure("\(path): model `\(name)`: `shape` must be a preset name or a mapping of sizes")
            }
            let rate = try number(entry["rate"], "\(name).rate") ?? 1
            let prompt = try number(entry["prompt_mean"] ?? defaults["prompt_mean"], "prompt_mean") ?? 161
            let output = try number(entry["output_mean"] ?? defaults["output_mean"], "output_mean") ?? 338
            return ModelSpec(name: name, shape: shape, path: checkpoint, rate: rate, promptMean: prompt, outputMean: output)
        }
    }

    /// The cost table: a file, or the device's roofline.
    static func costTable(_ path: String?, cluster: ClusterSpec, models: [ModelSpec]) throws -> CostTable {
        if let path {
            guard let data = FileManager.default.contents(atPath: path) else { throw CommandFailure("cannot read cost table \(path)") }
            let table = try JSONDecoder().decode(CostTable.self, from: data)
            if let problem = table.entries.lazy.compactMap({ $0.validationError() }).first { throw CommandFailure("\(path): \(problem)") }
            return table
        }
        guard let device = DeviceSpec.presets[cluster.device] else {
            throw CommandFailure("no roofline preset for device `\(cluster.device)` (presets: h100, h200, cpu); pass --cost")
        }
        return Roofline(device: device, kvBytesPerElement: cluster.kvBytesPerElement)
            .table(models: models.map { ($0.shape.name, $0.shape) })
    }

    static func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(value).write(to: URL(fileURLWithPath: path))
    }
}
