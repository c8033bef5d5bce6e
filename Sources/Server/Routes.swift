import Foundation
import Hummingbird
import LLMuxCore
import OpenAIAPI

/// The routes of `llmux serve` over `state`.
public func makeRouter(state: ServerState) -> Router<ServerRequestContext> {
    let router = Router(context: ServerRequestContext.self)
    router.get("/health") { _, _ in
        Response(status: state.isServing ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain"],
                 body: .init(byteBuffer: ByteBuffer(string: state.isServing ? "OK\n" : "loading\n")))
    }
    router.get("/metrics") { _, _ in
        let loaded = state.current
        let text = state.metrics.render(models: loaded?.models.map(\.name) ?? [], stats: loaded?.backend.stats)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    router.get("/load") { _, _ in
        // Cheap load report for `llmux gateway`'s load-aware routing.
        let loaded = state.current
        let stats = loaded?.backend.stats
        let total = stats?.totalPages ?? 0
        var models: [String] = []
        for model in loaded?.models ?? [] {
            let id = ModelID(model.name)
            let kv = total > 0 ? Double(stats?.usedPages[id] ?? 0) / Double(total) : 0
            models.append("\"\(model.name)\":{\"running\":\(stats?.running[id] ?? 0),\"waiting\":\(stats?.waiting[id] ?? 0),\"kv_usage\":\(kv)}")
        }
        let text = "{\"queued\":\(state.queuedCount),\"models\":{\(models.joined(separator: ","))}}"
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    router.get("/v1/models") { request, context in
        await api(state, request, context) { _ throws(APIError) in try state.modelList() }
    }
    router.post("/v1/completions") { request, context in
        await api(state, request, context) { body throws(APIError) in try state.completions(try CompletionRequest(json: body)) }
    }
    router.post("/v1/chat/completions") { request, context in
        await api(state, request, context) { body throws(APIError) in try state.chatCompletions(try ChatCompletionRequest(json: body)) }
    }
    // Last, so it knows every route; it wraps the not-found answer whenever it is added.
    router.add(middleware: UnknownRouteMiddleware(state: state, knownPaths: Set(router.routes.map { "\($0.path)" })))
    return router
}

/// Checks the key, reads the body within the limit, runs `handle` and puts its answer (or
/// error) on the wire. Every failure becomes an OpenAI error body with its status.
func api(_ state: ServerState, _ request: Request, _ context: ServerRequestContext,
         _ handle: (Data) throws(APIError) -> APIAnswer) async -> Response {
    let response: Response
    do {
        try authorize(request, keys: state.configuration.apiKeys)
        let body = request.method == .get ? Data() : try await readBody(request, limit: state.configuration.maxBodySize)
        response = try await encode(try handle(body), connection: context.connection)
    } catch {
        response = errorResponse(error)
    }
    state.metrics.response(status: response.status.code)
    return response
}

func authorize(_ request: Request, keys: Set<String>) throws(APIError) {
    guard !keys.isEmpty else { return }
    guard let header = request.headers[.authorization] else {
        throw APIError.unauthorized("Missing API key: send it as 'Authorization: Bearer KEY'.")
    }
    let prefix = "Bearer "
    guard header.hasPrefix(prefix), keys.contains(String(header.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces)) else {
        throw APIError.unauthorized()
    }
}

func readBody(_ request: Request, limit: Int) async throws(APIError) -> Data {
    if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
        throw APIError.bodyTooLarge(limit: limit)
    }
    var data = Data()
    do {
        for try await part in request.body {
            guard data.count + part.readableBytes <= limit else { throw APIError.bodyTooLarge(limit: limit) }
            data.append(contentsOf: part.readableBytesView)
        }
    } catch let error as APIError {
        throw error
    } catch {
        throw APIError.invalidRequest("could not read the request body: \(error)")
    }
    return data
}

/// Puts `answer` on the wire; its generation watches `connection` (see `ClientConnection`).
func encode(_ answer: APIAnswer, connection: ClientConnection) async throws(APIError) -> Response {
    switch answer {
    case .json(let status, let data):
        return Response(status: .init(code: status), headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    case .deferred(let run):
        return try await encode(try await run(connection), connection: connection)
    case .stream(let produce):
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                // A failed write (client gone) throws out of `produce`, which cancels every
                // sequence of the request in the engine.
                try await produce({ data in try await writer.write(ByteBuffer(bytes: data)) }, connection.untilFirstToken)
                try await writer.finish(nil)
            })
    }
}

func errorResponse(_ error: any Error) -> Response {
    let apiError = (error as? APIError) ?? APIError.internalError("\(error)")
    return Response(status: .init(code: apiError.status), headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(bytes: apiError.jsonData())))
}
