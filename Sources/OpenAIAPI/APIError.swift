import Foundation

/// An error answered to the client: an HTTP status and OpenAI's error body
/// `{"error": {"message", "type", "param", "code"}}`.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The HTTP status.
    public var status: Int
    /// What went wrong, in words a user can act on.
    public var message: String
    /// OpenAI's error type (`invalid_request_error`, …).
    public var type: String
    /// The request field at fault, if one is.
    public var param: String?
    /// A machine-readable code (`model_not_found`, `invalid_api_key`, …).
    public var code: String?

    /// An error.
    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    /// The message.
    public var description: String { "\(status) \(type): \(message)" }

    /// 400: malformed or invalid input.
    public static func invalidRequest(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    /// 401: a missing or wrong API key.
    public static func unauthorized(_ message: String = "Incorrect API key provided. Pass it as 'Authorization: Bearer KEY'.") -> APIError {
        APIError(status: 401, message: message, type: "invalid_request_error", code: "invalid_api_key")
    }

    /// 404: a model nobody serves, with OpenAI's message.
    public static func modelNotFound(_ name: String) -> APIError {
        APIError(status: 404, message: "The model `\(name)` does not exist.", type: "invalid_request_error",
                 param: "model", code: "model_not_found")
    }

    /// 404: no such route.
    public static func routeNotFound(_ method: String, _ path: String) -> APIError {
        APIError(status: 404, message: "Unknown request URL: \(method) \(path).", type: "invalid_request_error", code: "unknown_url")
    }

    /// 405: a known path with the wrong method.
    public static func methodNotAllowed(_ method: String, _ path: String) -> APIError {
        APIError(status: 405, message: "Method \(method) is not allowed on \(path).", type: "invalid_request_error", code: "method_not_allowed")
    }

    /// 413: the body is over the limit.
    public static func bodyTooLarge(limit: Int) -> APIError {
        APIError(status: 413, message: "The request body is larger than the limit of \(limit) bytes.",
                 type: "invalid_request_error", code: "request_too_large")
    }

    /// 429: the queue is full.
    public static func queueFull(limit: Int) -> APIError {
        APIError(status: 429, message: "The server's queue is full (\(limit) waiting sequences); retry later.",
                 type: "rate_limit_error", code: "queue_full")
    }

    /// 503: models still loading or the server shutting down.
    public static func unavailable(_ message: String) -> APIError {
        APIError(status: 503, message: message, type: "service_unavailable", code: "service_unavailable")
    }

    /// 499 (nginx's "client closed request"): the client left before the answer was ready. Nobody
    /// reads it; the server's response counts record it.
    public static let clientClosedRequest = APIError(status: 499, message: "The client closed the connection before the answer was ready.",
                                                     type: "invalid_request_error", code: "client_closed_request")

    /// 500: a bug.
    public static func internalError(_ message: String) -> APIError {
        APIError(status: 500, message: message, type: "internal_error", code: "internal_error")
    }

    /// The JSON error body.
    public var body: ErrorResponse { ErrorResponse(error: .init(message: message, type: type, param: param, code: code)) }

    /// The JSON error body encoded.
    public func jsonData() -> Data { (try? WireJSON.encode(body)) ?? Data("{\"error\":{}}".utf8) }
}

/// `{"error": {...}}`.
public struct ErrorResponse: Codable, Sendable, Equatable {
    /// The error object.
    public struct Detail: Codable, Sendable, Equatable {
        /// Human-readable description of the error (`message`).
        public var message: String
        /// OpenAI's error category (`invalid_request_error`, `rate_limit_error`, …).
        public var type: String
        /// The request field at fault; written as null when there is none.
        public var param: String?
        /// Machine-readable error code (`model_not_found`, …); written as null when there is none.
        public var code: String?

        /// An error object with all four fields.
        public init(message: String, type: String, param: String?, code: String?) {
            self.message = message
            self.type = type
            self.param = param
            self.code = code
        }

        enum CodingKeys: String, CodingKey { case message, type, param, code }

        /// Writes all four keys, `param` and `code` as null when nil, as OpenAI does.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(message, forKey: .message)
            try container.encode(type, forKey: .type)
            try container.encode(param, forKey: .param)
            try container.encode(code, forKey: .code)
        }
    }
    /// The error, under the `error` key.
    public var error: Detail
    /// Wraps `error` in the response envelope.
    public init(error: Detail) { self.error = error }
}

/// The JSON encoder of every response.
public enum WireJSON {
    /// Encodes `value` compactly, without escaping slashes.
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return try encoder.encode(value)
    }
}
