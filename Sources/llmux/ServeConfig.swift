import Foundation
import LLMuxCore
import Scheduling
import Yams

/// `llmux serve --config llmux.yaml`: the models of one host and how they are grouped into units.
///
/// ```yaml
/// host: 127.0.0.1          # optional (default 127.0.0.1)
/// port: 8000               # optional (default 8000)
/// api_keys: [secret]       # optional
/// policy: mux              # default for units: mux | spatial | temporal
/// mux_jobs: split          # optional: split | mixed | hybrid, how mux units form their jobs (default: split, mixed for one model)
/// kv_cache_memory: 1GiB    # default KV pool of each unit
/// models:
///   - {name: llama, path: /models/llama, rate: 2.0}   # rate: expected requests/s (initial quotas)
///   - {name: qwen, path: /models/qwen, rate: 0.5, slo_ttft_ms: 500, slo_tpot_ms: 50}
///     # slo_*: latency targets (first token, per output token) that mux's SM split weighs
/// units:                   # optional; default: one unit with every model
///   - {devices: [cpu], models: [llama, qwen], kv_cache_memory: 512MiB, policy: mux}
/// ```
struct ServeConfig: Decodable, Equatable {
    struct Model: Decodable, Equatable {
        var name: String
        var path: String
        var rate: Double?
        /// Time-to-first-token target in milliseconds (nil: the command line's, if any).
        var sloTTFTMilliseconds: Double?
        /// Time-per-output-token target in milliseconds (nil: the command line's, if any).
        var sloTPOTMilliseconds: Double?
        enum CodingKeys: String, CodingKey {
            case name, path, rate, expectedRate = "expected_rate", sloTTFTMilliseconds = "slo_ttft_ms", sloTPOTMilliseconds = "slo_tpot_ms"
        }

        init(name: String, path: String, rate: Double?) {
            self.name = name
            self.path = path
            self.rate = rate
        }

        /// `rate` or `expected_rate` (what `llmux plan --emit config` writes).
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            path = try container.decode(String.self, forKey: .path)
            rate = try container.decodeIfPresent(Double.self, forKey: .rate) ?? container.decodeIfPresent(Double.self, forKey: .expectedRate)
            sloTTFTMilliseconds = try container.decodeIfPresent(Double.self, forKey: .sloTTFTMilliseconds)
            sloTPOTMilliseconds = try container.decodeIfPresent(Double.self, forKey: .sloTPOTMilliseconds)
        }

        /// The model's latency targets in seconds, each from the entry or else from the default
        /// given (milliseconds, the command line's); nil when neither sets one.
        func latencyTargets(defaultTTFTMilliseconds: Double?, defaultTPOTMilliseconds: Double?) -> LatencyTargets? {
            let ttft = sloTTFTMilliseconds ?? defaultTTFTMilliseconds, tpot = sloTPOTMilliseconds ?? defaultTPOTMilliseconds
            guard ttft != nil || tpot != nil else { return nil }
            return LatencyTargets(timeToFirstToken: ttft.map { $0 / 1000 }, timePerOutputToken: tpot.map { $0 / 1000 })
        }
    }

    struct Unit: Decodable, Equatable {
        var devices: [String]?
        var models: [String]
        var kvCacheMemory: String?
        var policy: String?
        enum CodingKeys: String, CodingKey { case devices, models, kvCacheMemory = "kv_cache_memory", policy }

        /// A model entry of a unit: a name, or an object with a `name` (plans add quotas and shares).
        private struct NamedEntry: Decodable { var name: String }

        init(devices: [String]?, models: [String], kvCacheMemory: String?, policy: String?) {
            self.devices = devices
            self.models = models
            self.kvCacheMemory = kvCacheMemory
            self.policy = policy
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            devices = try container.decodeIfPresent([String].self, forKey: .devices)
            policy = try container.decodeIfPresent(String.self, forKey: .policy)
            if let names = try? container.decode([String].self, forKey: .models) {
                models = names
            } else {
                models = try container.decode([NamedEntry].self, forKey: .models).map(\.name)
            }
            if let bytes = try? container.decode(Int.self, forKey: .kvCacheMemory) {
                kvCacheMemory = String(bytes)
            } else {
                kvCacheMemory = try container.decodeIfPresent(String.self, forKey: .kvCacheMemory)
            }
        }
    }

    var host: String?
    var port: Int?
    var apiKeys: [String]?
    var policy: String?
    /// How `mux` units form their jobs (`MuxJobs`); nil: the command line's, or `MuxJobs.default(modelCount:)`.
    var muxJobs: String?
    var kvCacheMemory: String?
    var models: [Model]
    var units: [Unit]?

    enum CodingKeys: String, CodingKey {
        case host, port, apiKeys = "api_keys", policy, muxJobs = "mux_jobs", kvCacheMemory = "kv_cache_memory", models, units
    }

    /// Reads and checks a file; every problem is an error that names the file and the key.
    static func load(_ path: String) throws -> ServeConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CommandFailure("\(path): cannot read the configuration (\(error.localizedDescription))")
        }
        let config: ServeConfig
        do {
            config = try YAMLDecoder().decode(ServeConfig.self, from: text)
        } catch let DecodingError.keyNotFound(key, context) {
            throw CommandFailure("\(path): missing key '\(keyPath(context.codingPath + [key]))'")
        } catch let DecodingError.typeMismatch(type, context) {
            throw CommandFailure("\(path): '\(keyPath(context.codingPath))' must be \(type)")
        } catch let DecodingError.valueNotFound(type, context) {
            throw CommandFailure("\(path): '\(keyPath(context.codingPath))' must be \(type), found null")
        } catch {
            throw CommandFailure("\(path): not a valid configuration: \(error)")
        }
        try config.check(file: path)
        return config
    }

    /// Every unit with its resolved settings.
    func resolvedUnits() -> [ResolvedUnit] {
        let units = self.units ?? [Unit(devices: nil, models: models.map(\.name), kvCacheMemory: nil, policy: nil)]
        return units.map { unit in
            ResolvedUnit(
                device: unit.devices?.first ?? "cpu",
                models: unit.models.map { name in models.first { $0.name == name }! },
                kvCacheBytes: ByteSize(argument: unit.kvCacheMemory ?? kvCacheMemory ?? "1GiB")!.bytes,
                policy: SchedulingPolicy(rawValue: unit.policy ?? policy ?? "mux")!)
        }
    }

    private func check(file: String) throws {
        func fail(_ message: String) -> CommandFailure { CommandFailure("\(file): \(message)") }
        guard !models.isEmpty else { throw fail("'models' is empty") }
        var names = Set<String>()
        for (index, model) in models.enumerated() {
            guard !model.name.isEmpty else { throw fail("models[\(index)].name is empty") }
            guard names.insert(model.name).inserted else { throw fail("model name '\(model.name)' appears twice in 'models'") }
            if let rate = model.rate, !(rate >= 0) { throw fail("models[\(index)].rate must be >= 0") }
            for (key, value) in [("slo_ttft_ms", model.sloTTFTMilliseconds), ("slo_tpot_ms", model.sloTPOTMilliseconds)] {
                if let value, !(value > 0) { throw fail("models[\(index)].\(key) must be > 0 (milliseconds), got \(value)") }
            }
        }
        if let port, !(0...65535).contains(port) { throw fail("'port' must be in 0...65535") }
        for (key, value) in [("policy", policy)] + (units ?? []).enumerated().map({ ("units[\($0.offset)].policy", $0.element.policy) }) {
            if let value, SchedulingPolicy(rawValue: value) == nil { throw fail("'\(key)' must be mux, spatial or temporal, got '\(value)'") }
        }
        if let muxJobs, MuxJobs(rawValue: muxJobs) == nil { throw fail("'mux_jobs' must be split, mixed or hybrid, got '\(muxJobs)'") }
        for (key, value) in [("kv_cache_memory", kvCacheMemory)] + (units ?? []).enumerated().map({ ("units[\($0.offset)].kv_cache_memory", $0.element.kvCacheMemory) }) {
            if let value, ByteSize(argument: value) == nil { throw fail("'\(key)' is not a size like 512MiB: '\(value)'") }
        }
        var placed = Set<String>()
        for (index, unit) in (units ?? []).enumerated() {
            guard !unit.models.isEmpty else { throw fail("units[\(index)].models is empty") }
            for name in unit.models {
                guard names.contains(name) else { throw fail("units[\(index)] names model '\(name)', which 'models' does not define") }
                guard placed.insert(name).inserted else { throw fail("model '\(name)' is in two units; replicas belong in separate servers behind `llmux gateway`") }
            }
            let devices = unit.devices ?? ["cpu"]
            guard devices.count == 1 else {
                throw fail("units[\(index)].devices has \(devices.count) devices; tensor-parallel meshes are not supported yet, give one device per unit")
            }
            guard DeviceChoice(argument: devices[0]) != nil else { throw fail("units[\(index)].devices: '\(devices[0])' is not cpu or cuda:N") }
        }
        if units != nil, placed.count < names.count {
            let missing = names.subtracting(placed).sorted()
            throw fail("models \(missing.joined(separator: ", ")) are in no unit")
        }
    }
}

/// How `--policy mux` forms its jobs (`llmux serve --mux-jobs`, `mux_jobs` in llmux.yaml).
enum MuxJobs: String, CaseIterable {
    /// Prompt work in a prefill job on the larger partition of an SM split, decode jobs of every
    /// model on the rest (MuxServe's split; the default for a unit of several models).
    case split
    /// Each model's prompt chunks and decode tokens in one job, the models' jobs side by side on
    /// the whole device (`SchedulerLimits.mixesMuxPhases`).
    case mixed
    /// `mixed`, except that a prompt of more than `SchedulerLimits.hybridPromptTokenLimit`
    /// tokens runs as a prefill job on an SM split while the mixed jobs take the rest.
    case hybrid

    /// The choice for a `mux` unit of `modelCount` models when none is given: `split` to
    /// colocate several (MuxServe's design, which the latency targets steer), `mixed` for one
    /// model, where a split only takes SMs from its decode jobs. On one H100 with one Llama-3-8B
    /// (BENCHMARKS round 11) split served 8.9 % fewer tokens/s than mixed while requests arrived
    /// at 30/s and 15 % fewer at 40/s, with a higher TPOT p99 (21.6 against 15.3 ms at 40/s).
    static func `default`(modelCount: Int) -> MuxJobs { modelCount == 1 ? .mixed : .split }

    /// The scheduler's settings for a unit under `policy`.
    func apply(to limits: inout SchedulerLimits, policy: SchedulingPolicy) {
        guard policy == .mux, self != .split else { return }
        limits.mixesMuxPhases = true
        if self == .hybrid { limits.mixedPromptTokenLimit = SchedulerLimits.hybridPromptTokenLimit }
    }
}

/// One unit as `llmux serve` starts it.
struct ResolvedUnit {
    let device: String
    let models: [ServeConfig.Model]
    let kvCacheBytes: Int
    let policy: SchedulingPolicy
}

private func keyPath(_ path: [any CodingKey]) -> String {
    path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
}
