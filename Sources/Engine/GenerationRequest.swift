import LLMuxCore

/// One generation request as the engine takes it: token ids in, sampling settings.
public struct GenerationRequest: Sendable {
    /// The model to run.
    public var model: ModelID
    /// Prompt token ids (already templated and tokenized).
    public var promptTokens: [TokenID]
    /// Sampling settings.
    public var parameters: SamplingParameters
    /// A request.
    public init(model: ModelID, promptTokens: [TokenID], parameters: SamplingParameters) {
        self.model = model
        self.promptTokens = promptTokens
        self.parameters = parameters
    }
}

extension GenerationRequest {
    /// Why `model` can never run this request (bad parameters, empty prompt, token ids outside
    /// the vocabulary, prompt plus `maxTokens` over the context window), or nil when it can.
    /// `EngineCore.add` applies the same check; front ends call it first to answer 400 early.
    public func validationError(for model: ModelDescriptor) -> LLMuxError? {
        if let problem = parameters.validationError() { return LLMuxError.invalidRequest(problem) }
        guard !promptTokens.isEmpty else { return LLMuxError.invalidRequest("the prompt is empty") }
        if let bad = promptTokens.first(where: { $0 < 0 || Int($0) >= model.vocabularySize }) {
            return LLMuxError.invalidRequest("token id \(bad) is outside the vocabulary of \(model.vocabularySize) tokens")
        }
        let total = promptTokens.count + parameters.maxTokens
        guard total <= model.contextLength else {
            return LLMuxError.invalidRequest(
                "This model's maximum context length is \(model.contextLength) tokens. However, you requested \(total) tokens (\(promptTokens.count) in the prompt, \(parameters.maxTokens) for the completion). Please reduce the prompt or max_tokens.")
        }
        return nil
    }
}

/// What the engine reports for a sequence after a step.
public struct SequenceEvent: Sendable, Equatable {
    /// The sequence.
    public var sequenceID: SequenceID
    /// The new token, when one was generated this step.
    public var token: SampledToken?
    /// Text that became final this step (may be empty while a UTF-8 character or a possible
    /// stop string is held back).
    public var textDelta: String
    /// Set on the sequence's last event.
    public var finishReason: FinishReason?
    /// A message when `finishReason` is `.error`.
    public var errorMessage: String?
    /// An event.
    public init(sequenceID: SequenceID, token: SampledToken?, textDelta: String, finishReason: FinishReason? = nil,
                errorMessage: String? = nil) {
        self.sequenceID = sequenceID
        self.token = token
        self.textDelta = textDelta
        self.finishReason = finishReason
        self.errorMessage = errorMessage
    }
}
