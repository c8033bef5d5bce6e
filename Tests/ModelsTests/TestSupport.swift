import Foundation
import LLMuxCore
import Testing

/// A fresh temporary directory, removed by `cleanup`.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("llmux-models-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    func cleanup() { try? FileManager.default.removeItem(at: url) }
}

/// The message of the `LLMuxError.badCheckpoint` that `body` throws, or nil (recorded as an issue)
/// when it throws nothing or something else.
func badCheckpointMessage(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
    do {
        try body()
        Issue.record("expected a badCheckpoint error", sourceLocation: sourceLocation)
    } catch let error as LLMuxError {
        if case .badCheckpoint = error { return error.description }
        Issue.record("expected badCheckpoint, got \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected LLMuxError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Expects a badCheckpoint error whose message contains every one of `parts`.
func expectBadCheckpoint(containing parts: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    guard let message = badCheckpointMessage(body, sourceLocation: sourceLocation) else { return }
    for part in parts {
        #expect(message.contains(part), "'\(message)' does not contain '\(part)'", sourceLocation: sourceLocation)
    }
}

/// A file with an 8-byte little-endian length, the given header text and `dataBytes` zero bytes.
func rawSafetensors(header: String, dataBytes: Int, declaredLength: UInt64? = nil) -> Data {
    let headerBytes = Array(header.utf8)
    var data = Data()
    withUnsafeBytes(of: (declaredLength ?? UInt64(headerBytes.count)).littleEndian) { data.append(contentsOf: $0) }
    data.append(contentsOf: headerBytes)
    data.append(Data(count: dataBytes))
    return data
}

/// A fixture file from the test bundle.
func fixtureURL(_ name: String) throws -> URL {
    guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
        throw LLMuxError.badCheckpoint(file: name, detail: "fixture not found")
    }
    return url
}
