import Engine
import Foundation
import LLMuxCore
import OpenAIAPI

/// What a route answers, before it is put on the wire.
enum APIAnswer: Sendable {
    /// A JSON body with a status.
    case json(status: Int, Data)
    /// A stream of server-sent events; the closure writes them with the given function.
    case stream(@Sendable (_ write: (Data) async throws -> Void, _ connection: ClientConnection) async throws -> Void)
    /// An answer that needs generation first (JSON, or an error).
    case deferred(@Sendable (_ connection: ClientConnection) async throws(APIError) -> APIAnswer)

    static func encoded<T: Encodable>(_ value: T) throws(APIError) -> APIAnswer {
        do {
            return .json(status: 200, try WireJSON.encode(value))
        } catch {
            throw APIError.internalError("could not encode the answer: \(error)")
        }
    }
}

/// Accumulated output of one choice.
struct ChoiceOutput: Sendable {
    var tokens: [SampledToken] = []
    var text = ""
    var finishReason: FinishReason?

    mutating func append(_ event: SequenceEvent) {
        if let token = event.token { tokens.append(token) }
        text += event.textDelta
        if let reason = event.finishReason { finishReason = reason }
    }
}

/// A new random id with a prefix (`cmpl-…`, `chatcmpl-…`).
func makeID(_ prefix: String) -> String {
    prefix + String(UInt64.random(in: 0...UInt64.max), radix: 16) + String(UInt32.random(in: 0...UInt32.max), radix: 16)
}

extension SamplingFields {
    /// The engine's settings for choice `choice` of a request; seeds differ per choice (the
    /// request's seed plus the choice index) so that `n` sampled choices are not copies.
    func parameters(maxTokens: Int, logprobs: Int?, choice: Int) -> SamplingParameters {
        SamplingParameters(
            temperature: Float(temperature ?? 1), topP: Float(topP ?? 1), topK: topK ?? 0, minP: Float(minP ?? 0),
            seed: seed.map { UInt64(bitPattern: Int64($0)) &+ UInt64(choice) },
            repetitionPenalty: Float(repetitionPenalty ?? 1), presencePenalty: Float(presencePenalty ?? 0),
            frequencyPenalty: Float(frequencyPenalty ?? 0), logprobs: logprobs, maxTokens: maxTokens,
            stopTokenIDs: stopTokenIDs.compactMap { TokenID(exactly: $0) }, stopStrings: stop.filter { !$0.isEmpty },
            stopAtEOS: !ignoreEOS)
    }
}

extension ServerState {
    func checked(_ jobs: [SequenceJob], model: ServedModel) throws(APIError) {
        for job in jobs {
            if let problem = job.request.validationError(for: model.descriptor) {
                switch problem {
                case .invalidRequest(let message):
                    let param = message.hasPrefix("max_tokens") || message.contains("maximum context length") ? "max_tokens"
                        : message.hasPrefix("token id") ? "prompt" : nil
                    throw APIError.invalidRequest(message, param: param)
                default:
                    throw APIError.invalidRequest(problem.description)
                }
            }
        }
    }

    // MARK: /v1/completions

    func completions(_ request: CompletionRequest) throws(APIError) -> APIAnswer {
        let (backend, model) = try self.model(request.model)
        let sampling = request.sampling
        var prompts: [[TokenID]] = []
        for prompt in request.prompts { prompts.append(try model.tokenize(prompt)) }
        let echoTexts: [String] = request.echo ? request.prompts.map { prompt in
            switch prompt {
            case .text(let text): return text
            case .tokens(let ids): return model.tokenizer?.decode(ids.map { TokenID($0) }) ?? ""
            }
        } : []
        var pending: [SequenceJob] = []
        for (promptIndex, tokens) in prompts.enumerated() {
            for j in 0..<sampling.n {
                let choice = promptIndex * sampling.n + j
                let parameters = sampling.parameters(maxTokens: sampling.maxTokens ?? 16, logprobs: request.logprobs, choice: choice)
                pending.append(SequenceJob(choice: choice, promptIndex: promptIndex,
                                        request: GenerationRequest(model: model.descriptor.id, promptTokens: tokens, parameters: parameters)))
            }
        }
        let jobs = pending
        try checked(jobs, model: model)
        let id = makeID("cmpl-")
        let created = Int(Date().timeIntervalSince1970)
        let name = model.name
        let promptTokenCount = prompts.reduce(0) { $0 + $1.count }
        let wantsLogprobs = request.logprobs != nil
        let asIDs = sampling.returnTokensAsTokenIDs

        if sampling.stream {
            let includeUsage = sampling.includeUsage
            return .stream { write, connection in
                var echoed = Set<Int>()
                var offsets = [Int](repeating: 0, count: jobs.count)
                var generated = 0
                var failure: APIError?
                try await self.generate(jobs, backend: backend, model: name, connection: connection) { item in
                    switch item {
                    case .event(let choice, let event):
                        var text = event.textDelta
                        if !echoTexts.isEmpty && echoed.insert(choice).inserted {
                            text = echoTexts[jobs[choice].promptIndex] + text
                        }
                        if event.token != nil { generated += 1 }
                        let logprobs = wantsLogprobs
                            ? Self.completionLogprobs(event.token.map { [$0] } ?? [], model: model, asIDs: asIDs, offset: &offsets[choice]) : nil
                        guard !text.isEmpty || event.finishReason != nil || wantsLogprobs else { return }
                        let chunk = CompletionResponse(
                            id: id, created: created, model: name,
                            choices: [CompletionChoice(index: choice, text: text, logprobs: logprobs,
                                                       finishReason: finishReasonName(event.finishReason))],
                            usage: nil, encodesNullUsage: includeUsage)
                        try await write(try ServerSentEvents.event(encoding: chunk))
                    case .ended:
                        break
                    case .failed(_, let error):
                        if failure == nil {
                            failure = error
                            try await write(ServerSentEvents.event(error.jsonData()))
                        }
                    }
                }
                if includeUsage && failure == nil {
                    let chunk = CompletionResponse(id: id, created: created, model: name, choices: [],
                                                   usage: Usage(promptTokens: promptTokenCount, completionTokens: generated))
                    try await write(try ServerSentEvents.event(encoding: chunk))
                }
                try await write(ServerSentEvents.done)
            }
        }
        return .deferred { (connection: ClientConnection) async throws(APIError) -> APIAnswer in
            let outputs = try await self.collect(jobs, backend: backend, model: name, connection: connection)
            var choices: [CompletionChoice] = []
            for (choice, output) in outputs.enumerated() {
                var offset = 0
                let echo = echoTexts.isEmpty ? "" : echoTexts[jobs[choice].promptIndex]
                choices.append(CompletionChoice(
                    index: choice, text: echo + output.text,
                    logprobs: wantsLogprobs ? Self.completionLogprobs(output.tokens, model: model, asIDs: asIDs, offset: &offset) : nil,
                    finishReason: finishReasonName(output.finishReason)))
            }
            let usage = Usage(promptTokens: promptTokenCount, completionTokens: outputs.reduce(0) { $0 + $1.tokens.count })
            return try .encoded(CompletionResponse(id: id, created: created, model: name, choices: choices, usage: usage))
        }
    }

    /// Runs every job to the end and returns each choice's output, or the first failure.
    func collect(_ jobs: [SequenceJob], backend: any GenerationBackend, model: String,
                 connection: ClientConnection) async throws(APIError) -> [ChoiceOutput] {
        var outputs = [ChoiceOutput](repeating: ChoiceOutput(), count: jobs.count)
        var failure: APIError?
        do {
            try await generate(jobs, backend: backend, model: model, connection: connection) { item in
                switch item {
                case .event(let choice, let event): outputs[choice].append(event)
                case .ended: break
                case .failed(_, let error): if failure == nil { failure = error }
                }
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.unavailable("The request was cancelled: \(error)")
        }
        if let failure { throw failure }
        return outputs
    }

    static func completionLogprobs(_ tokens: [SampledToken], model: ServedModel, asIDs: Bool, offset: inout Int) -> CompletionLogprobs {
        var logprobs = CompletionLogprobs()
        for token in tokens {
            let text = model.tokenText(token.tokenID, asID: asIDs)
            logprobs.tokens.append(text)
            logprobs.tokenLogprobs.append(Double(token.logprob))
            logprobs.topLogprobs.append(TopLogprobMap(token.top.map { (model.tokenText($0.tokenID, asID: asIDs), Double($0.logprob)) }))
            logprobs.textOffset.append(offset)
            offset += text.unicodeScalars.count
        }
        return logprobs
    }

    // MARK: /v1/chat/completions

    func chatCompletions(_ request: ChatCompletionRequest) throws(APIError) -> APIAnswer {
        let (backend, model) = try self.model(request.model)
        let sampling = request.sampling
        let prompt = try model.chatPromptTokens(request.messages, addGenerationPrompt: request.addGenerationPrompt)
        let maxTokens = sampling.maxTokens ?? max(1, model.descriptor.contextLength - prompt.count)
        let logprobs = request.logprobs ? (request.topLogprobs ?? 0) : nil
        let jobs = (0..<sampling.n).map { choice in
            SequenceJob(choice: choice, promptIndex: 0, request: GenerationRequest(
                model: model.descriptor.id, promptTokens: prompt,
                parameters: sampling.parameters(maxTokens: maxTokens, logprobs: logprobs, choice: choice)))
        }
        try checked(jobs, model: model)
        let id = makeID("chatcmpl-")
        let created = Int(Date().timeIntervalSince1970)
        let name = model.name
        let wantsLogprobs = request.logprobs
        let asIDs = sampling.returnTokensAsTokenIDs

        if sampling.stream {
            let includeUsage = sampling.includeUsage
            return .stream { write, connection in
                func chunk(_ choices: [ChatChunkChoice], usage: Usage? = nil) throws -> Data {
                    try ServerSentEvents.event(encoding: ChatCompletionChunk(
                        id: id, created: created, model: name, choices: choices, usage: usage, encodesNullUsage: includeUsage))
                }
                for choice in jobs.indices {
                    try await write(try chunk([ChatChunkChoice(index: choice, delta: ChatDelta(role: "assistant", content: ""))]))
                }
                var generated = 0
                var failure: APIError?
                try await self.generate(jobs, backend: backend, model: name, connection: connection) { item in
                    switch item {
                    case .event(let choice, let event):
                        if event.token != nil { generated += 1 }
                        let logprobs = wantsLogprobs ? Self.chatLogprobs(event.token.map { [$0] } ?? [], model: model, asIDs: asIDs) : nil
                        if !event.textDelta.isEmpty || (logprobs.map { !$0.content.isEmpty } ?? false) {
                            try await write(try chunk([ChatChunkChoice(index: choice, delta: ChatDelta(content: event.textDelta),
                                                                       logprobs: logprobs)]))
                        }
                        if let reason = event.finishReason {
                            try await write(try chunk([ChatChunkChoice(index: choice, delta: ChatDelta(),
                                                                       finishReason: finishReasonName(reason))]))
                        }
                    case .ended:
                        break
                    case .failed(_, let error):
                        if failure == nil {
                            failure = error
                            try await write(ServerSentEvents.event(error.jsonData()))
                        }
                    }
                }
                if includeUsage && failure == nil {
                    try await write(try chunk([], usage: Usage(promptTokens: prompt.count, completionTokens: generated)))
                }
                try await write(ServerSentEvents.done)
            }
        }
        return .deferred { (connection: ClientConnection) async throws(APIError) -> APIAnswer in
            let outputs = try await self.collect(jobs, backend: backend, model: name, connection: connection)
            let choices = outputs.enumerated().map { choice, output in
                ChatChoice(index: choice, message: ChatResponseMessage(content: output.text),
                           logprobs: wantsLogprobs ? Self.chatLogprobs(output.tokens, model: model, asIDs: asIDs) : nil,
                           finishReason: finishReasonName(output.finishReason))
            }
            let usage = Usage(promptTokens: prompt.count, completionTokens: outputs.reduce(0) { $0 + $1.tokens.count })
            return try .encoded(ChatCompletionResponse(id: id, created: created, model: name, choices: choices, usage: usage))
        }
    }

    static func chatLogprobs(_ tokens: [SampledToken], model: ServedModel, asIDs: Bool) -> ChatLogprobs {
        ChatLogprobs(content: tokens.map { token in
            ChatTokenLogprob(token: model.tokenText(token.tokenID, asID: asIDs), logprob: Double(token.logprob),
                             topLogprobs: token.top.map { ChatTopLogprob(token: model.tokenText($0.tokenID, asID: asIDs), logprob: Double($0.logprob)) })
        })
    }

    // MARK: /v1/models

    func modelList() throws(APIError) -> APIAnswer {
        guard let loaded = current else { throw APIError.unavailable("The models are still loading; retry in a moment.") }
        return try .encoded(ModelList(data: loaded.models.map {
            ModelCard(id: $0.name, created: $0.created, maxModelLen: $0.descriptor.contextLength)
        }))
    }
}
