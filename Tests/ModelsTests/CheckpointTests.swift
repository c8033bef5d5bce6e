import Compute
import Foundation
import LLMuxCore
@testable import Models
import Testing

@Suite struct CheckpointTests {
    /// A tiny-llama config in `dir`, with an optional generation config.
    func writeConfigs(_ dir: TemporaryDirectory, generationEOS: [TokenID]? = nil) throws -> ModelConfig {
        let config = ModelPreset.all["tiny-llama"]!.config
        try config.jsonData().write(to: dir.file("config.json"))
        if let generationEOS {
            try GenerationConfig(eosTokenIDs: generationEOS).jsonData().write(to: dir.file("generation_config.json"))
        }
        return config
    }

    /// A shard whose every f32 element is `Float(fillValue)`.
    func writeShard(_ url: URL, _ tensors: [(String, [Int])], value: Float) throws {
        try SafetensorsWriter(url: url, tensors: tensors.map { ($0.0, DType.f32, $0.1) }).write { _, buffer in
            let floats = buffer.bindMemory(to: Float.self)
            for index in floats.indices { floats[index] = value }
        }
    }

    @Test func shardedCheckpointViaIndex() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let config = try writeConfigs(dir, generationEOS: [5, 6])
        try writeShard(dir.file("model-00001-of-00002.safetensors"), [("model.embed_tokens.weight", [512, 64])], value: 1)
        try writeShard(dir.file("model-00002-of-00002.safetensors"), [("model.norm.weight", [64]), ("unlisted", [1])], value: 2)
        let index = #"{"metadata": {"total_size": 131328}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors", "model.norm.weight": "model-00002-of-00002.safetensors"}}"#
        try Data(index.utf8).write(to: dir.file("model.safetensors.index.json"))

        let checkpoint = try Checkpoint(directory: dir.url)
        #expect(checkpoint.config == config)
        #expect(checkpoint.eosTokenIDs == [5, 6])
        let embed = try checkpoint.weight("model.embed_tokens.weight", shape: [512, 64])
        #expect(embed.file == "model-00001-of-00002.safetensors" && embed.dtype == .f32 && embed.byteCount == 512 * 64 * 4)
        #expect(embed.withUnsafeBytes { $0.load(fromByteOffset: embed.byteCount - 4, as: Float.self) } == 1)
        let norm = try checkpoint.weight("model.norm.weight", shape: [64])
        #expect(norm.file == "model-00002-of-00002.safetensors")
        #expect(norm.withUnsafeBytes { $0.load(as: Float.self) } == 2)
        #expect(checkpoint.hasWeight("model.norm.weight") && !checkpoint.hasWeight("unlisted"))
        let sizes = try ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"].map {
            try FileManager.default.attributesOfItem(atPath: dir.file($0).path)[.size] as! Int
        }
        #expect(checkpoint.totalBytes == sizes.reduce(0, +))

        var reports: [LoadProgress] = []
        checkpoint.prefault { reports.append($0) }
        #expect(reports.last?.bytesDone == checkpoint.totalBytes && reports.last?.bytesTotal == checkpoint.totalBytes)
    }

    @Test func indexNamingMissingShard() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        _ = try writeConfigs(dir)
        try writeShard(dir.file("model-00001-of-00002.safetensors"), [("a", [1])], value: 0)
        try Data(#"{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#.utf8)
            .write(to: dir.file("model.safetensors.index.json"))
        expectBadCheckpoint(containing: ["model.safetensors.index.json", "model-00002-of-00002.safetensors"]) {
            _ = try Checkpoint(directory: dir.url)
        }
        try Data(#"{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors"}}"#.utf8)
            .write(to: dir.file("model.safetensors.index.json"))
        expectBadCheckpoint(containing: ["model-00001-of-00002.safetensors", "'b'"]) { _ = try Checkpoint(directory: dir.url) }
        try Data(#"{"weight_map": {"a": "../elsewhere.safetensors"}}"#.utf8).write(to: dir.file("model.safetensors.index.json"))
        expectBadCheckpoint(containing: ["model.safetensors.index.json", "'a'"]) { _ = try Checkpoint(directory: dir.url) }
    }

    @Test func missingAndWrongShapeWeights() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        _ = try writeConfigs(dir, generationEOS: [])
        try writeShard(dir.file("model.safetensors"), [("model.layers.0.mlp.up_proj.weight", [128, 64])], value: 0)
        let checkpoint = try Checkpoint(directory: dir.url)
        #expect(checkpoint.eosTokenIDs == checkpoint.config.eosTokenIDs)   // generation config lists none
        do {
            _ = try checkpoint.weight("model.layers.3.mlp.up_proj.weight", shape: [128, 64])
            Issue.record("expected an error")
        } catch let error as LLMuxError {
            #expect(error == .badCheckpoint(file: dir.url.path, detail: "missing tensor 'model.layers.3.mlp.up_proj.weight'"))
        }
        expectBadCheckpoint(containing: ["model.layers.0.mlp.up_proj.weight", "[128, 64]", "[64, 128]", "model.safetensors"]) {
            _ = try checkpoint.weight("model.layers.0.mlp.up_proj.weight", shape: [64, 128])
        }
    }

    @Test func missingPiecesGiveClearErrors() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        expectBadCheckpoint(containing: ["nope", "does not exist"]) { _ = try Checkpoint(directory: dir.file("nope")) }
        expectBadCheckpoint(containing: ["config.json", "missing"]) { _ = try Checkpoint(directory: dir.url) }
        _ = try writeConfigs(dir)
        expectBadCheckpoint(containing: [dir.url.path, "no *.safetensors"]) { _ = try Checkpoint(directory: dir.url) }
        try writeShard(dir.file("a.safetensors"), [("w", [2])], value: 0)
        try writeShard(dir.file("b.safetensors"), [("w", [2])], value: 0)
        expectBadCheckpoint(containing: ["b.safetensors", "'w'", "a.safetensors"]) { _ = try Checkpoint(directory: dir.url) }
        try Data([1, 2]).write(to: dir.file("b.safetensors"))
        expectBadCheckpoint(containing: ["b.safetensors", "8-byte"]) { _ = try Checkpoint(directory: dir.url) }
    }
}
