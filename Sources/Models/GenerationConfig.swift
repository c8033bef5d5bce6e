import Foundation
import LLMuxCore

/// The defaults of `generation_config.json` that the server honours.
public struct GenerationConfig: Sendable, Equatable {
    /// Tokens that end generation (`eos_token_id`, an int or a list); empty when absent.
    public var eosTokenIDs: [TokenID]
    /// Beginning-of-sequence token (`bos_token_id`).
    public var bosTokenID: TokenID?
    /// Default sampling temperature.
    public var temperature: Float?
    /// Default nucleus mass.
    public var topP: Float?
    /// Default top-k.
    public var topK: Int?
    /// Default repetition penalty.
    public var repetitionPenalty: Float?

    /// A generation config from its fields (used by make-model).
    public init(eosTokenIDs: [TokenID], bosTokenID: TokenID? = nil, temperature: Float? = nil, topP: Float? = nil,
                topK: Int? = nil, repetitionPenalty: Float? = nil) {
        self.eosTokenIDs = eosTokenIDs
        self.bosTokenID = bosTokenID
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.repetitionPenalty = repetitionPenalty
    }

    /// Reads `generation_config.json`.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw LLMuxError.badCheckpoint(file: url.path, detail: "cannot read: \(error.localizedDescription)")
        }
        try self.init(json: data, file: url.path)
    }

    /// Parses `generation_config.json` content; `file` names it in errors.
    public init(json: Data, file: String) throws {
        let fields = try JSONFields(data: json, file: file)
        self.init(
            eosTokenIDs: try fields.tokenIDs("eos_token_id") ?? [],
            bosTokenID: try fields.tokenIDs("bos_token_id")?.first,
            temperature: try fields.double("temperature").map { Float($0) },
            topP: try fields.double("top_p").map { Float($0) },
            topK: try fields.int("top_k"),
            repetitionPenalty: try fields.double("repetition_penalty").map { Float($0) })
    }

    /// The file's content, in the Hugging Face layout.
    public func jsonData() throws -> Data {
        var object: [String: Any] = ["_from_model_config": true]
        if let bosTokenID { object["bos_token_id"] = Int(bosTokenID) }
        if !eosTokenIDs.isEmpty {
            object["eos_token_id"] = eosTokenIDs.count == 1 ? Int(eosTokenIDs[0]) as Any : eosTokenIDs.map { Int($0) }
        }
        if let temperature { object["temperature"] = Double("\(temperature)") ?? Double(temperature) }
        if let topP { object["top_p"] = Double("\(topP)") ?? Double(topP) }
        if let topK { object["top_k"] = topK }
        if let repetitionPenalty { object["repetition_penalty"] = Double("\(repetitionPenalty)") ?? Double(repetitionPenalty) }
        return try prettyJSON(object)
    }
}
