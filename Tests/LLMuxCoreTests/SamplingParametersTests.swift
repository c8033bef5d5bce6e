import LLMuxCore
import Testing

@Suite struct SamplingParametersTests {
    @Test func validationNamesTheField() {
        #expect(SamplingParameters().validationError() == nil)
        #expect(SamplingParameters(temperature: -1).validationError()?.contains("temperature") == true)
        #expect(SamplingParameters(topP: 0).validationError()?.contains("top_p") == true)
        #expect(SamplingParameters(maxTokens: 0).validationError()?.contains("max_tokens") == true)
        #expect(SamplingParameters(logprobs: 21).validationError()?.contains("logprobs") == true)
        #expect(SamplingParameters(presencePenalty: 3).validationError()?.contains("presence_penalty") == true)
    }

    @Test func kvShapeCountsKeysAndValuesOfEveryLayer() {
        #expect(KVCacheShape(layerCount: 32, kvHeadCount: 8, headDim: 128, bytesPerElement: 2).bytesPerToken == 131_072)
    }
}
