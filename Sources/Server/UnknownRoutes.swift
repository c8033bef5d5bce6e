import Hummingbird
import OpenAIAPI

/// Answers requests that match no route with OpenAI's error body instead of Hummingbird's
/// empty 404, so the `openai` client can read them: 405 for a known path with the wrong method
/// (as the gateway answers), 404 otherwise.
struct UnknownRouteMiddleware: RouterMiddleware {
    typealias Context = ServerRequestContext
    let state: ServerState
    /// The paths of the router's routes (`Router.routes`), for telling 405 from 404.
    let knownPaths: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && context.coreContext.endpointPath.value == "NotFound" {
            let path = request.uri.path
            let method = "\(request.method)"
            let answer = knownPaths.contains(path) ? APIError.methodNotAllowed(method, path) : APIError.routeNotFound(method, path)
            state.metrics.response(status: answer.status)
            return errorResponse(answer)
        }
    }
}
