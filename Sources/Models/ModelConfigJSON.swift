import Compute
import Foundation
import LLMuxCore

extension ModelConfig {
    /// Reads a Hugging Face `config.json`.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw LLMuxError.badCheckpoint(file: url.path, detail: "cannot read config: \(error.localizedDescription)")
        }
        try self.init(json: data, file: url.path)
    }

    /// Parses `config.json` content; `file` names it in errors.
    public init(json: Data, file: String) throws {
        let fields = try JSONFields(data: json, file: file)
        guard let architectures = fields.object["architectures"] as? [Any], let name = architectures.first as? String else {
            throw LLMuxError.badCheckpoint(file: file, detail: "missing required key 'architectures'")
        }
        guard let architecture = Architecture(rawValue: name) else {
            let supported = Architecture.allCases.map(\.rawValue).joined(separator: ", ")
            throw LLMuxError.badCheckpoint(file: file, detail: "architecture '\(name)' is not supported; supported: \(supported)")
        }
        let hiddenSize = try fields.requiredInt("hidden_size")
        let intermediateSize = try fields.requiredInt("intermediate_size")
        let layerCount = try fields.requiredInt("num_hidden_layers")
        let headCount = try fields.requiredInt("num_attention_heads")
        let vocabSize = try fields.requiredInt("vocab_size")
        guard headCount > 0 else { throw fields.error("num_attention_heads", "must be positive, got \(headCount)") }
        let kvHeadCount = try fields.int("num_key_value_heads") ?? headCount
        let headDim = try fields.int("head_dim") ?? hiddenSize / headCount
        let (ropeTheta, ropeScaling) = try Self.parseRope(fields)

        // Qwen2's attention always has q/k/v biases and no `attention_bias` key; Llama reads it.
        let attentionBias: Bool
        switch architecture {
        case .qwen2: attentionBias = true
        case .llama: attentionBias = try fields.bool("attention_bias") ?? false
        case .mistral: attentionBias = false
        }
        // Qwen2 configs carry a `sliding_window` that only applies with `use_sliding_window`.
        let slidingWindow: Int?
        switch architecture {
        case .qwen2: slidingWindow = (try fields.bool("use_sliding_window") ?? false) ? try fields.int("sliding_window") : nil
        case .mistral: slidingWindow = try fields.int("sliding_window")
        case .llama: slidingWindow = nil
        }
        self.init(
            architecture: architecture, hiddenSize: hiddenSize, intermediateSize: intermediateSize, layerCount: layerCount,
            headCount: headCount, kvHeadCount: kvHeadCount, headDim: headDim, vocabSize: vocabSize,
            rmsNormEps: Float(try fields.double("rms_norm_eps") ?? 1e-6), ropeTheta: ropeTheta, ropeScaling: ropeScaling,
            maxPositionEmbeddings: try fields.int("max_position_embeddings") ?? 2048,
            tieWordEmbeddings: try fields.bool("tie_word_embeddings") ?? false, attentionBias: attentionBias,
            bosTokenID: try fields.tokenIDs("bos_token_id")?.first, eosTokenIDs: try fields.tokenIDs("eos_token_id") ?? [],
            slidingWindow: slidingWindow)
        try validate(file: file)
    }

    /// RoPE base and scaling, from transformers 5's `rope_parameters` (theta and type inside) or
    /// the older top-level `rope_theta` plus `rope_scaling` (with `rope_type` or legacy `type`).
    private static func parseRope(_ fields: JSONFields) throws -> (Double, RopeScaling) {
        let key: String
        let parameters: JSONFields?
        if !fields.isMissing("rope_parameters") {
            key = "rope_parameters"
            parameters = try fields.object(key)
        } else {
            key = "rope_scaling"
            parameters = try fields.object(key)
        }
        let theta = try parameters?.double("rope_theta") ?? fields.double("rope_theta") ?? 10000
        guard let parameters else { return (theta, .none) }
        let type = try parameters.string("rope_type") ?? parameters.string("type") ?? "default"
        func number(_ name: String) throws -> Double {
            guard let value = try parameters.double(name) else { throw fields.error(key, "of type '\(type)' has no '\(name)'") }
            return value
        }
        switch type {
        case "default":
            return (theta, .none)
        case "linear":
            return (theta, .linear(factor: try number("factor")))
        case "llama3":
            guard let original = try parameters.int("original_max_position_embeddings") else {
                throw fields.error(key, "of type 'llama3' has no 'original_max_position_embeddings'")
            }
            return (theta, .llama3(factor: try number("factor"), lowFreqFactor: try number("low_freq_factor"),
                                   highFreqFactor: try number("high_freq_factor"), originalMaxPositionEmbeddings: original))
        default:
            throw fields.error(key, "has rope type '\(type)', which is not supported; supported: default, linear, llama3")
        }
    }

    /// A Hugging Face `config.json` for this model, with every key transformers needs to build it
    /// (`AutoConfig` / `AutoModelForCausalLM`). RoPE is written the transformers 4 way
    /// (`rope_theta` + `rope_scaling`), which transformers 5 still reads and converts. `dtype`
    /// is the stored weights' type (`torch_dtype`, and `dtype` as transformers 5 names it).
    public func jsonData(dtype: DType = .bf16) throws -> Data {
        let torchDType: String
        switch dtype {
        case .f32: torchDType = "float32"
        case .f16: torchDType = "float16"
        case .bf16: torchDType = "bfloat16"
        }
        var object: [String: Any] = [
            "architectures": [architecture.rawValue],
            "model_type": architecture.modelType,
            "hidden_size": hiddenSize,
            "intermediate_size": intermediateSize,
            "num_hidden_layers": layerCount,
            "num_attention_heads": headCount,
            "num_key_value_heads": kvHeadCount,
            "head_dim": headDim,
            "vocab_size": vocabSize,
            "rms_norm_eps": Double("\(rmsNormEps)") ?? Double(rmsNormEps),  // 1e-05, not 9.99999974e-06
            "rope_theta": ropeTheta,
            "max_position_embeddings": maxPositionEmbeddings,
            "tie_word_embeddings": tieWordEmbeddings,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "attention_dropout": 0.0,
            "use_cache": true,
            "torch_dtype": torchDType,
            "dtype": torchDType,
            "bos_token_id": bosTokenID.map { Int($0) as Any } ?? NSNull(),
            "eos_token_id": eosTokenIDs.count == 1 ? Int(eosTokenIDs[0]) as Any : eosTokenIDs.map { Int($0) },
        ]
        switch ropeScaling {
        case .none:
            object["rope_scaling"] = NSNull()
        case .linear(let factor):
            object["rope_scaling"] = ["rope_type": "linear", "factor": factor]
        case .llama3(let factor, let low, let high, let original):
            object["rope_scaling"] = [
                "rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
                "original_max_position_embeddings": original,
            ] as [String: Any]
        }
        switch architecture {
        case .llama:
            object["attention_bias"] = attentionBias
            object["mlp_bias"] = false
            object["pretraining_tp"] = 1
        case .mistral:
            object["sliding_window"] = slidingWindow.map { $0 as Any } ?? NSNull()
        case .qwen2:
            object["use_sliding_window"] = slidingWindow != nil
            object["sliding_window"] = slidingWindow.map { $0 as Any } ?? NSNull()
            object["max_window_layers"] = layerCount
        }
        return try prettyJSON(object)
    }
}
