import Foundation
import LLMuxCore
import Models
import Testing

@Suite struct ModelConfigParsingTests {
    @Test func llama32WithLlama3RopeScaling() throws {
        let config = try ModelConfig(contentsOf: fixtureURL("llama3.2-1b.config.json"))
        #expect(config == ModelPreset.all["llama3.2-1b"]!.config.with(bos: 128000, eos: [128001]))
        #expect(config.ropeScaling == .llama3(factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192))
        #expect(config.rmsNormEps == 1e-5)
        #expect(config.tieWordEmbeddings && !config.attentionBias && config.slidingWindow == nil)
    }

    @Test func qwen2AlwaysHasBiasAndIgnoresUnusedSlidingWindow() throws {
        let config = try ModelConfig(contentsOf: fixtureURL("qwen2.5-0.5b.config.json"))
        #expect(config.architecture == .qwen2)
        #expect(config.attentionBias)
        #expect(config.slidingWindow == nil)    // use_sliding_window is false
        #expect(config.headDim == 64 && config.kvHeadCount == 2 && config.tieWordEmbeddings)
        #expect(config.ropeTheta == 1_000_000 && config.rmsNormEps == 1e-6)
        #expect(config.bosTokenID == 151643 && config.eosTokenIDs == [151643])
    }

    @Test func mistralV01AndV03() throws {
        let v1 = try ModelConfig(contentsOf: fixtureURL("mistral-7b-v0.1.config.json"))
        #expect(v1.architecture == .mistral && v1.slidingWindow == 4096 && v1.headDim == 128 && v1.ropeTheta == 10000)
        let v3 = try ModelConfig(contentsOf: fixtureURL("mistral-7b-v0.3.config.json"))
        #expect(v3.slidingWindow == nil && v3.vocabSize == 32768 && v3.ropeTheta == 1_000_000 && !v3.tieWordEmbeddings)
    }

    @Test func transformers5RopeParameters() throws {
        let config = try ModelConfig(contentsOf: fixtureURL("llama3.1-8b-instruct.transformers5.config.json"))
        #expect(config.ropeTheta == 500_000)
        #expect(config.ropeScaling == .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192))
        #expect(config.eosTokenIDs == [128001, 128008, 128009])
        #expect(config.maxPositionEmbeddings == 131072)
        #expect(config.parameterCount == 8_030_261_248)   // Llama-3.1-8B's published count
    }

    @Test func legacyLinearScalingAndDefaults() throws {
        let json = #"""
        {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 11008,
         "num_hidden_layers": 32, "num_attention_heads": 32, "vocab_size": 32000,
         "rope_scaling": {"type": "linear", "factor": 2.0}, "eos_token_id": 2, "bos_token_id": 1}
        """#
        let config = try ModelConfig(json: Data(json.utf8), file: "llama2/config.json")
        #expect(config.ropeScaling == .linear(factor: 2))
        #expect(config.kvHeadCount == 32 && config.headDim == 128)
        #expect(config.rmsNormEps == 1e-6 && config.ropeTheta == 10000 && config.maxPositionEmbeddings == 2048)
        #expect(!config.tieWordEmbeddings && !config.attentionBias)
        #expect(config.parameterCount == 6_738_415_616)   // Llama-2-7B
        let defaultType = json.replacingOccurrences(of: #"{"type": "linear", "factor": 2.0}"#, with: #"{"rope_type": "default"}"#)
        #expect(try ModelConfig(json: Data(defaultType.utf8), file: "c").ropeScaling == RopeScaling.none)
    }

    @Test func missingRequiredKeyNamesFileAndKey() throws {
        for key in ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"] {
            var object = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL("llama3.2-1b.config.json"))) as! [String: Any]
            object.removeValue(forKey: key)
            let data = try JSONSerialization.data(withJSONObject: object)
            expectBadCheckpoint(containing: ["/models/x/config.json", "missing required key '\(key)'"]) {
                _ = try ModelConfig(json: data, file: "/models/x/config.json")
            }
        }
    }

    @Test func invalidConfigsGiveClearErrors() throws {
        let base = #"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 512 EXTRA}"#
        func parse(_ extra: String) throws { _ = try ModelConfig(json: Data(base.replacingOccurrences(of: "EXTRA", with: extra).utf8), file: "m/config.json") }
        expectBadCheckpoint(containing: ["m/config.json", "architecture 'GPT2LMHeadModel' is not supported", "LlamaForCausalLM"]) {
            _ = try ModelConfig(json: Data(#"{"architectures": ["GPT2LMHeadModel"]}"#.utf8), file: "m/config.json")
        }
        expectBadCheckpoint(containing: ["m/config.json", "'architectures'"]) { _ = try ModelConfig(json: Data("{}".utf8), file: "m/config.json") }
        expectBadCheckpoint(containing: ["m/config.json", "not valid JSON"]) { _ = try ModelConfig(json: Data("{".utf8), file: "m/config.json") }
        expectBadCheckpoint(containing: ["divisible"]) { try parse(#", "num_key_value_heads": 3"#) }
        expectBadCheckpoint(containing: ["'hidden_size'", "positive"]) { _ = try ModelConfig(json: Data(base.replacingOccurrences(of: #""hidden_size": 64"#, with: #""hidden_size": 0"#).replacingOccurrences(of: "EXTRA", with: "").utf8), file: "m/config.json") }
        expectBadCheckpoint(containing: ["rope_scaling", "'yarn'", "not supported"]) { try parse(#", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}"#) }
        expectBadCheckpoint(containing: ["rope_scaling", "low_freq_factor"]) { try parse(#", "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#) }
        expectBadCheckpoint(containing: ["'vocab_size'", "integer"]) { _ = try ModelConfig(json: Data(base.replacingOccurrences(of: "512", with: #""big""#).replacingOccurrences(of: "EXTRA", with: "").utf8), file: "m/config.json") }
        try parse(#", "rope_scaling": null, "eos_token_id": [1, 2]"#)
    }

    @Test func jsonDataRoundTrips() throws {
        for preset in ModelPreset.all.values {
            let data = try preset.config.jsonData()
            #expect(try ModelConfig(json: data, file: "x") == preset.config, "\(preset.name)")
            let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            #expect(object["model_type"] as? String == preset.config.architecture.modelType)
            #expect(object["torch_dtype"] as? String == "bfloat16")
        }
        var windowed = ModelPreset.all["tiny-mistral"]!.config
        windowed.slidingWindow = 4096
        #expect(try ModelConfig(json: windowed.jsonData(dtype: .f32), file: "x") == windowed)
        var qwen = ModelPreset.all["tiny-qwen2"]!.config
        qwen.slidingWindow = 1024
        #expect(try ModelConfig(json: qwen.jsonData(), file: "x") == qwen)
        var linear = ModelPreset.all["tiny-llama"]!.config
        linear.ropeScaling = .linear(factor: 4)
        linear.eosTokenIDs = [1, 2, 3]
        #expect(try ModelConfig(json: linear.jsonData(), file: "x") == linear)
    }

    @Test func generationConfig() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let url = dir.file("generation_config.json")
        try Data(#"{"bos_token_id": 1, "eos_token_id": [2, 7], "temperature": 0.6, "top_p": 0.9, "top_k": 40, "do_sample": true}"#.utf8).write(to: url)
        let config = try GenerationConfig(contentsOf: url)
        #expect(config == GenerationConfig(eosTokenIDs: [2, 7], bosTokenID: 1, temperature: 0.6, topP: 0.9, topK: 40))
        try config.jsonData().write(to: url)
        #expect(try GenerationConfig(contentsOf: url) == config)
        try Data(#"{"eos_token_id": "x"}"#.utf8).write(to: url)
        expectBadCheckpoint(containing: ["generation_config.json", "'eos_token_id'"]) { _ = try GenerationConfig(contentsOf: url) }
    }
}

extension ModelConfig {
    /// A copy with other BOS/EOS ids.
    func with(bos: TokenID?, eos: [TokenID]) -> ModelConfig {
        var copy = self
        copy.bosTokenID = bos
        copy.eosTokenIDs = eos
        return copy
    }
}
