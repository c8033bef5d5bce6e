import Compute
import Foundation
import LLMuxCore
@testable import Models
import Testing

@Suite struct MakeModelTests {
    @Test(arguments: ["tiny-llama", "tiny-qwen2", "tiny-mistral"])
    func tinyPresetLoadsBackWithHFShapes(name: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let preset = try #require(ModelPreset.all[name])
        try ModelMaker.write(MakeModelOptions(config: preset.config, dtype: .f32, seed: 1), to: dir.url, progress: nil)
        let checkpoint = try Checkpoint(directory: dir.url)
        let config = checkpoint.config
        #expect(config == preset.config)
        #expect(checkpoint.eosTokenIDs == [MiniTokenizer.eosTokenID, MiniTokenizer.imEndTokenID])
        #expect(config.eosTokenIDs == [MiniTokenizer.eosTokenID] && config.bosTokenID == MiniTokenizer.bosTokenID)

        let h = config.hiddenSize, q = config.headCount * config.headDim, kv = config.kvHeadCount * config.headDim
        var expected: [String: [Int]] = ["model.embed_tokens.weight": [512, h], "model.norm.weight": [h]]
        for layer in 0..<2 {
            let p = "model.layers.\(layer)."
            expected[p + "input_layernorm.weight"] = [h]
            expected[p + "post_attention_layernorm.weight"] = [h]
            expected[p + "self_attn.q_proj.weight"] = [q, h]
            expected[p + "self_attn.k_proj.weight"] = [kv, h]
            expected[p + "self_attn.v_proj.weight"] = [kv, h]
            expected[p + "self_attn.o_proj.weight"] = [h, q]
            expected[p + "mlp.gate_proj.weight"] = [128, h]
            expected[p + "mlp.up_proj.weight"] = [128, h]
            expected[p + "mlp.down_proj.weight"] = [h, 128]
            if config.attentionBias {
                expected[p + "self_attn.q_proj.bias"] = [q]
                expected[p + "self_attn.k_proj.bias"] = [kv]
                expected[p + "self_attn.v_proj.bias"] = [kv]
            }
        }
        if !config.tieWordEmbeddings { expected["lm_head.weight"] = [512, h] }
        #expect(checkpoint.weightNames == expected.keys.sorted())
        for (tensor, shape) in expected {
            #expect(try checkpoint.weight(tensor, shape: shape).dtype == .f32)
        }
        #expect(checkpoint.hasWeight("lm_head.weight") == (name != "tiny-qwen2"))
        #expect(config.parameterCount == expected.values.reduce(0) { $0 + $1.reduce(1, *) })

        // Norms start near 1, other weights near N(0, 0.02).
        func stats(_ tensor: String) throws -> (mean: Double, std: Double) {
            let view = try checkpoint.weight(tensor, shape: expected[tensor]!)
            let values = view.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let mean = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
            let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(values.count)
            return (mean, variance.squareRoot())
        }
        let embed = try stats("model.embed_tokens.weight")
        #expect(abs(embed.mean) < 0.001 && abs(embed.std - 0.02) < 0.001)
        let norm = try stats("model.layers.1.input_layernorm.weight")
        #expect(abs(norm.mean - 1) < 0.01 && norm.std > 0.01 && norm.std < 0.03)

        let tokenizer = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.file("tokenizer.json"))) as! [String: Any]
        let model = tokenizer["model"] as! [String: Any]
        #expect((model["vocab"] as! [String: Any]).count == MiniTokenizer.size - MiniTokenizer.specialTokens.count)
        #expect(MiniTokenizer.size <= 512)
        let tokenizerConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.file("tokenizer_config.json"))) as! [String: Any]
        #expect(tokenizerConfig["eos_token"] as? String == "<|end_of_text|>")
    }

    @Test func shardedWriteIsDeterministicAndLoads() throws {
        let dir = try TemporaryDirectory(), other = try TemporaryDirectory()
        defer { dir.cleanup(); other.cleanup() }
        let config = ModelPreset.all["tiny-llama"]!.config
        var reports: [LoadProgress] = []
        let options = MakeModelOptions(config: config, dtype: .bf16, seed: 42, maxShardBytes: 40_000)
        try ModelMaker.write(options, to: dir.url) { reports.append($0) }
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.url.path).sorted()
        let shards = names.filter { $0.hasSuffix(".safetensors") }
        #expect(shards.count > 2 && shards.first == "model-00001-of-\(String(format: "%05d", shards.count)).safetensors")
        #expect(names.contains("model.safetensors.index.json") && names.contains("tokenizer.json") && names.contains("generation_config.json"))
        let total = config.parameterCount * 2
        #expect(reports.last?.bytesDone == total && reports.last?.bytesTotal == total)
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.file("model.safetensors.index.json"))) as! [String: Any]
        #expect((index["metadata"] as! [String: Any])["total_size"] as? Int == total)

        let checkpoint = try Checkpoint(directory: dir.url)
        #expect(checkpoint.weightNames.count == ModelMaker.tensorLayout(config).count)
        let embed = try checkpoint.weight("model.embed_tokens.weight", shape: [512, 64])
        #expect(embed.dtype == .bf16)

        // Same seed, different sharding: identical tensor bytes. Another seed: different bytes.
        try ModelMaker.write(MakeModelOptions(config: config, dtype: .bf16, seed: 42), to: other.url, progress: nil)
        let single = try Checkpoint(directory: other.url)
        let again = try single.weight("model.embed_tokens.weight", shape: [512, 64])
        #expect(embed.withUnsafeBytes { a in again.withUnsafeBytes { b in a.elementsEqual(b) } })
        try ModelMaker.write(MakeModelOptions(config: config, dtype: .bf16, seed: 43), to: other.url, progress: nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: other.url.path).filter { $0.hasSuffix(".safetensors") } == ["model.safetensors"])
        let reseeded = try Checkpoint(directory: other.url).weight("model.embed_tokens.weight", shape: [512, 64])
        #expect(!embed.withUnsafeBytes { a in reseeded.withUnsafeBytes { b in a.elementsEqual(b) } })
    }

    @Test func rejectsVocabSmallerThanTokenizer() throws {
        var config = ModelPreset.all["tiny-llama"]!.config
        config.vocabSize = 100
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        #expect(throws: LLMuxError.self) { try ModelMaker.write(MakeModelOptions(config: config), to: dir.url, progress: nil) }
    }

    @Test func presetSizes() {
        #expect(ModelPreset.all.count == 9)
        #expect(ModelPreset.all["llama3-8b"]!.config.parameterCount == 8_030_261_248)
        #expect(ModelPreset.all["llama3.2-1b"]!.config.parameterCount == 1_235_814_400)
        #expect(ModelPreset.all["qwen2.5-0.5b"]!.config.parameterCount == 494_032_768)
        #expect(ModelPreset.all["mistral-7b"]!.config.parameterCount == 7_241_732_096)
        let small = ModelPreset.all["llama-100m"]!.config.parameterCount
        #expect(small > 90_000_000 && small < 130_000_000)
        for name in ["tiny-llama", "tiny-qwen2", "tiny-mistral"] {
            #expect(ModelPreset.all[name]!.config.parameterCount < 1_000_000)
        }
    }
}

@Suite struct HalfPrecisionTests {
    #if !(os(macOS) && arch(x86_64))
    @Test func f16MatchesFloat16() {
        var rng = Xoshiro256(seed: 3)
        var values: [Float] = [0, -0, 1, -1, 65504, 65520, 70000, 6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-10, .infinity, -.infinity]
        for _ in 0..<20000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        for value in values where !value.isNaN {
            #expect(HalfPrecision.f16Bits(value) == Float16(value).bitPattern, "\(value)")
            let bits = Float16(value).bitPattern
            #expect(HalfPrecision.f16ToFloat(bits) == Float(Float16(bitPattern: bits)))
        }
        #expect(HalfPrecision.f16ToFloat(HalfPrecision.f16Bits(.nan)).isNaN)
    }
    #endif

    @Test func bf16RoundsToNearestEven() {
        #expect(HalfPrecision.bf16Bits(1) == 0x3F80)
        #expect(HalfPrecision.bf16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)   // tie, even stays
        #expect(HalfPrecision.bf16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)   // tie, odd rounds up
        #expect(HalfPrecision.bf16Bits(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(HalfPrecision.bf16ToFloat(HalfPrecision.bf16Bits(-2.5)) == -2.5)
        #expect(HalfPrecision.bf16ToFloat(HalfPrecision.bf16Bits(.nan)).isNaN)
    }
}
