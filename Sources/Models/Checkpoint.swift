#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Compute
import Foundation
import LLMuxCore

/// One weight inside a mapped shard.
///
/// The view keeps its shard mapped, so `pointer` is valid while the view (or its `Checkpoint`) is
/// alive. Swift may end a value's lifetime right after its last use, so code that reads through
/// `pointer` after its last use of the view must wrap the reads in `withExtendedLifetime(view)`.
public struct WeightView: @unchecked Sendable {
    /// Hugging Face parameter name.
    public let name: String
    /// Shard file name (relative to the checkpoint directory).
    public let file: String
    /// Element type as stored.
    public let dtype: DType
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// First byte of the data, inside the read-only mapping.
    public let pointer: UnsafeRawPointer
    /// The mapped shard that `pointer` points into; held only to keep the mapping alive.
    let owner: SafetensorsFile
    /// Bytes of data.
    public var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
    /// The data as raw bytes (valid inside `body`, which runs while the mapping is held).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(owner) { try body(UnsafeRawBufferPointer(start: pointer, count: byteCount)) }
    }
}

/// How far loading (or writing) a checkpoint has got.
public struct LoadProgress: Sendable {
    /// Bytes handled so far.
    public let bytesDone: Int
    /// Bytes in all.
    public let bytesTotal: Int
    /// The file being handled.
    public let file: String
    /// A progress report.
    public init(bytesDone: Int, bytesTotal: Int, file: String) {
        self.bytesDone = bytesDone
        self.bytesTotal = bytesTotal
        self.file = file
    }
}

/// A Hugging Face checkpoint directory: configs plus memory-mapped safetensors shards.
///
/// Immutable after `init`; the shards stay mapped as long as the object lives.
public final class Checkpoint: @unchecked Sendable {
    /// The directory.
    public let directory: URL
    /// `config.json`.
    public let config: ModelConfig
    /// `generation_config.json`, nil if absent.
    public let generationConfig: GenerationConfig?
    /// Mapped shards, by file name, in file-name order for `prefault`.
    let shards: [(name: String, file: SafetensorsFile)]
    /// Where each weight lives: shard file name and header entry.
    let locations: [String: (shard: SafetensorsFile, file: String, info: TensorInfo)]

    /// Opens a checkpoint: `config.json`, optional `generation_config.json`, and the shards named by
    /// `model.safetensors.index.json` (its `weight_map`) when present, else every `*.safetensors`.
    public init(directory: URL) throws {
        self.directory = directory
        let dir = directory.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw LLMuxError.badCheckpoint(file: dir, detail: "checkpoint directory does not exist")
        }
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw LLMuxError.badCheckpoint(file: configURL.path, detail: "config.json is missing from the checkpoint directory")
        }
        config = try ModelConfig(contentsOf: configURL)
        let generationURL = directory.appendingPathComponent("generation_config.json")
        generationConfig = FileManager.default.fileExists(atPath: generationURL.path)
            ? try GenerationConfig(contentsOf: generationURL) : nil

        let indexURL = directory.appendingPathComponent("model.safetensors.index.json")
        var shards: [(name: String, file: SafetensorsFile)] = []
        var locations: [String: (shard: SafetensorsFile, file: String, info: TensorInfo)] = [:]
        if FileManager.default.fileExists(atPath: indexURL.path) {
            let weightMap = try Self.readWeightMap(indexURL)
            var opened: [String: SafetensorsFile] = [:]
            for fileName in Set(weightMap.values).sorted() {
                let url = directory.appendingPathComponent(fileName)
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw LLMuxError.badCheckpoint(file: indexURL.path, detail: "weight_map names shard '\(fileName)', which does not exist")
                }
                let shard = try SafetensorsFile(url: url)
                opened[fileName] = shard
                shards.append((fileName, shard))
            }
            for (name, fileName) in weightMap {
                let shard = opened[fileName]!
                guard let info = shard.tensors[name] else {
                    throw LLMuxError.badCheckpoint(file: shard.url.path, detail: "tensor '\(name)' is in the index's weight_map but not in the shard")
                }
                locations[name] = (shard, fileName, info)
            }
        } else {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            let files = names.filter { $0.hasSuffix(".safetensors") }.sorted()
            guard !files.isEmpty else {
                throw LLMuxError.badCheckpoint(file: dir, detail: "no *.safetensors weights in the checkpoint directory")
            }
            for fileName in files {
                let shard = try SafetensorsFile(url: directory.appendingPathComponent(fileName))
                shards.append((fileName, shard))
                for (name, info) in shard.tensors {
                    if let other = locations[name] {
                        throw LLMuxError.badCheckpoint(file: shard.url.path, detail: "tensor '\(name)' is also in '\(other.file)'")
                    }
                    locations[name] = (shard, fileName, info)
                }
            }
        }
        self.shards = shards
        self.locations = locations
    }

    /// The `weight_map` of an index file.
    private static func readWeightMap(_ url: URL) throws -> [String: String] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw LLMuxError.badCheckpoint(file: url.path, detail: "cannot read: \(error.localizedDescription)")
        }
        let fields = try JSONFields(data: data, file: url.path)
        guard let map = try fields.object("weight_map") else {
            throw LLMuxError.badCheckpoint(file: url.path, detail: "missing required key 'weight_map'")
        }
        var result: [String: String] = [:]
        for (name, value) in map.object {
            // A shard name with a slash could point outside the checkpoint directory.
            guard let file = value as? String, !file.contains("/"), !file.isEmpty else {
                throw LLMuxError.badCheckpoint(file: url.path, detail: "weight_map entry for tensor '\(name)' is not a shard file name")
            }
            result[name] = file
        }
        return result
    }

    /// The weight called `name`, checked against the `shape` the model expects.
    public func weight(_ name: String, shape: [Int]) throws -> WeightView {
        guard let location = locations[name] else {
            throw LLMuxError.badCheckpoint(file: directory.path, detail: "missing tensor '\(name)'")
        }
        let info = location.info
        guard info.shape == shape else {
            throw LLMuxError.badCheckpoint(
                file: location.shard.url.path,
                detail: "tensor '\(name)' has shape \(info.shape), expected \(shape) (in shard '\(location.file)')")
        }
        return WeightView(name: name, file: location.file, dtype: info.dtype, shape: info.shape,
                          pointer: location.shard.pointer(to: info), owner: location.shard)
    }

    /// True when the checkpoint has a weight called `name`.
    public func hasWeight(_ name: String) -> Bool { locations[name] != nil }

    /// Every weight name, sorted.
    public var weightNames: [String] { locations.keys.sorted() }

    /// The header entry of a weight, without a shape check.
    public func tensorInfo(_ name: String) -> TensorInfo? { locations[name]?.info }

    /// End-of-sequence tokens: `generation_config.json`'s when it lists any, else `config.json`'s.
    public var eosTokenIDs: [TokenID] {
        if let generationConfig, !generationConfig.eosTokenIDs.isEmpty { return generationConfig.eosTokenIDs }
        return config.eosTokenIDs
    }

    /// Bytes of all shard files.
    public var totalBytes: Int { shards.reduce(0) { $0 + $1.file.fileSize } }

    /// Reads every page of every shard once (sequentially, with madvise(MADV_WILLNEED) / touching
    /// one byte per 4 KiB page) so the first step does not stall on page faults, reporting
    /// progress about every 1% for large checkpoints.
    public func prefault(progress: ((LoadProgress) -> Void)?) {
        let total = totalBytes
        let page = 4096
        // Report roughly every 1%, but not more often than every 16 MiB, for small checkpoints.
        let reportEvery = max(total / 100, 16 << 20)
        var done = 0
        var nextReport = reportEvery
        var checksum: UInt8 = 0
        for (name, shard) in shards {
            let size = shard.fileSize
            _ = madvise(UnsafeMutableRawPointer(mutating: shard.base), size, MADV_WILLNEED)
            // Touch in slices so progress can be reported between them.
            var offset = 0
            while offset < size {
                let end = min(size, offset + (1 << 20))
                var position = offset
                while position < end {
                    checksum &+= shard.base.load(fromByteOffset: position, as: UInt8.self)
                    position += page
                }
                done += end - offset
                offset = end
                if done >= nextReport {
                    progress?(LoadProgress(bytesDone: done, bytesTotal: total, file: name))
                    nextReport = done + reportEvery
                }
            }
        }
        keepAlive(checksum)
        progress?(LoadProgress(bytesDone: done, bytesTotal: total, file: shards.last?.name ?? ""))
    }
}

/// Where `prefault` stores the sum of the bytes it touched: a store to a global is observable,
/// so the optimiser cannot drop the reads. Racy writes of one byte are harmless here.
nonisolated(unsafe) private var prefaultSink: UInt8 = 0

/// Publishes `value` so the reads that produced it stay in the program.
@inline(never)
private func keepAlive(_ value: UInt8) {
    prefaultSink &+= value
}
