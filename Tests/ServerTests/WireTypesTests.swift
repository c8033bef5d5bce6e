import Foundation
import OpenAIAPI
import Testing

@Suite struct WireTypesTests {
    func completion(_ json: String) throws -> CompletionRequest { try CompletionRequest(json: Data(json.utf8)) }
    func chat(_ json: String) throws -> ChatCompletionRequest { try ChatCompletionRequest(json: Data(json.utf8)) }
    func error(_ body: () throws -> Any) -> APIError? {
        do { _ = try body() } catch let error as APIError { return error } catch { Issue.record("\(error)") }
        return nil
    }

    @Test func promptShapes() throws {
        #expect(try completion(#"{"model":"m","prompt":"hi"}"#).prompts == [.text("hi")])
        #expect(try completion(#"{"model":"m","prompt":["a","b"]}"#).prompts == [.text("a"), .text("b")])
        #expect(try completion(#"{"model":"m","prompt":[1,2,3]}"#).prompts == [.tokens([1, 2, 3])])
        #expect(try completion(#"{"model":"m","prompt":[[1],[2,3]]}"#).prompts == [.tokens([1]), .tokens([2, 3])])
        #expect(error { try completion(#"{"model":"m","prompt":[]}"#) }?.message == "'prompt' must not be empty")
        #expect(error { try completion(#"{"model":"m","prompt":["a",1]}"#) }?.param == "prompt")
        #expect(error { try completion(#"{"model":"m","prompt":[1.5]}"#) }?.status == 400)
        #expect(error { try completion(#"{"model":"m"}"#) }?.message == "'prompt' is required")
    }

    @Test func samplingFieldsAndDefaults() throws {
        let request = try completion(#"""
            {"model":"m","prompt":"x","max_tokens":7,"temperature":0,"top_p":0.5,"top_k":3,"min_p":0.1,"seed":42,
             "stop":"\n","presence_penalty":0.5,"frequency_penalty":-0.5,"repetition_penalty":1.1,"ignore_eos":true,
             "n":2,"stream":true,"stream_options":{"include_usage":true},"logprobs":3,"echo":false,"user":"u",
             "some_future_field":{"x":[1]}}
            """#)
        let s = request.sampling
        #expect(s.maxTokens == 7 && s.temperature == 0 && s.topP == 0.5 && s.topK == 3 && s.minP == 0.1 && s.seed == 42)
        #expect(s.stop == ["\n"] && s.presencePenalty == 0.5 && s.frequencyPenalty == -0.5 && s.repetitionPenalty == 1.1)
        #expect(s.ignoreEOS && s.n == 2 && s.stream && s.includeUsage && request.logprobs == 3)
        let plain = try completion(#"{"model":"m","prompt":"x","max_tokens":null,"stop":["a","b"]}"#)
        #expect(plain.sampling.maxTokens == nil && plain.sampling.stop == ["a", "b"] && plain.sampling.n == 1)
        #expect(try completion(#"{"model":"m","prompt":"x","n":2.0}"#).sampling.n == 2)
    }

    @Test func wrongTypesNameTheField() {
        #expect(error { try completion(#"{"model":"m","prompt":"x","temperature":"hot"}"#) }?.message
                == "'temperature' must be a number, got a string")
        #expect(error { try completion(#"{"model":"m","prompt":"x","n":1.5}"#) }?.message == "'n' must be an integer, got a number")
        #expect(error { try completion(#"{"model":"m","prompt":"x","stream":1}"#) }?.message == "'stream' must be a boolean, got a number")
        #expect(error { try completion(#"{"model":"m","prompt":"x","stop":[1]}"#) }?.param == "stop")
        #expect(error { try completion(#"{"model":7,"prompt":"x"}"#) }?.message == "'model' must be a string, got a number")
        #expect(error { try completion(#"{"model":"m","prompt":"x","stream_options":{"include_usage":true}}"#) }?.param == "stream_options")
        #expect(error { try completion(#"{"model":"m","prompt":"x","suffix":"y"}"#) }?.param == "suffix")
        #expect(error { try completion(#"{"model":"m","prompt":"x","n":0}"#) }?.param == "n")
        #expect(error { try completion(#"[1]"#) }?.message == "The request body must be a JSON object, got an array")
        let malformed = error { try completion(#"{"model":"m","#) }
        #expect(malformed?.status == 400)
        #expect(malformed?.message.hasPrefix("We could not parse the JSON body") == true)
    }

    @Test func chatMessages() throws {
        let request = try chat(#"""
            {"model":"m","messages":[{"role":"system","content":"be brief"},
             {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
             {"role":"assistant","content":null}],
             "max_tokens":3,"max_completion_tokens":5,"logprobs":true,"top_logprobs":2}
            """#)
        #expect(request.messages == [ChatMessageInput(role: "system", content: "be brief"),
                                     ChatMessageInput(role: "user", content: "a\nb"),
                                     ChatMessageInput(role: "assistant", content: "")])
        #expect(request.sampling.maxTokens == 5 && request.logprobs && request.topLogprobs == 2)
        #expect(error { try chat(#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#) }?.param == "messages[0].role")
        #expect(error { try chat(#"{"model":"m","messages":[{"role":"user","content":5}]}"#) }?.param == "messages[0].content")
        #expect(error { try chat(#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#) }?.param
                == "messages[0].content[0].type")
        #expect(error { try chat(#"{"model":"m","messages":[]}"#) }?.message == "'messages' must not be empty")
        #expect(error { try chat(#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2}"#) }?.param == "top_logprobs")
    }

    @Test func sseFraming() throws {
        let event = ServerSentEvents.event(Data(#"{"a":1}"#.utf8))
        #expect(String(decoding: event, as: UTF8.self) == "data: {\"a\":1}\n\n")
        #expect(String(decoding: ServerSentEvents.done, as: UTF8.self) == "data: [DONE]\n\n")
        #expect(ServerSentEvents.payloads("data: {\"a\":1}\n\ndata: [DONE]\n\n") == ["{\"a\":1}", "[DONE]"])
    }

    @Test func responsesWriteNullsAsOpenAIDoes() throws {
        let chunk = CompletionResponse(id: "cmpl-1", created: 1, model: "m",
                                       choices: [CompletionChoice(index: 0, text: "x", logprobs: nil, finishReason: nil)], usage: nil)
        let json = try JSONSerialization.jsonObject(with: WireJSON.encode(chunk)) as! [String: Any]
        let choice = (json["choices"] as! [[String: Any]])[0]
        #expect(choice["logprobs"] is NSNull && choice["finish_reason"] is NSNull)
        #expect(json["usage"] == nil && json["object"] as? String == "text_completion")
        let withUsage = CompletionResponse(id: "c", created: 1, model: "m", choices: [], usage: nil, encodesNullUsage: true)
        #expect(String(decoding: try WireJSON.encode(withUsage), as: UTF8.self).contains("\"usage\":null"))
        let finish = ChatCompletionChunk(id: "c", created: 1, model: "m", choices: [ChatChunkChoice(index: 0, delta: ChatDelta(), finishReason: "stop")])
        #expect(String(decoding: try WireJSON.encode(finish), as: UTF8.self).contains("\"delta\":{}"))
        let error = APIError.modelNotFound("x")
        let body = try JSONSerialization.jsonObject(with: error.jsonData()) as! [String: [String: Any]]
        #expect(body["error"]?["message"] as? String == "The model `x` does not exist.")
        #expect(body["error"]?["param"] as? String == "model" && body["error"]?["code"] as? String == "model_not_found")
        #expect(body["error"]?["type"] as? String == "invalid_request_error")
        let logprobs = ChatTokenLogprob(token: "é", logprob: -1, topLogprobs: [])
        #expect(String(decoding: try WireJSON.encode(logprobs), as: UTF8.self).contains("\"bytes\":[195,169]"))
    }
}
