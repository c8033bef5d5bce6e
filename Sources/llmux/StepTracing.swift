import Bench
import Foundation
import LLMuxCore

/// A synchronous executor that times every plan it runs for `bench mux --trace`: the engine's
/// step is timed by the driver, the jobs here, so the trace separates the two.
final class TracingExecutor: ModelExecutor {
    private let inner: any ModelExecutor
    /// The loads of the last plan executed, and its seconds (nil when the step ran nothing).
    private(set) var last: (loads: [ModelStepLoad], seconds: Double)?

    init(_ inner: any ModelExecutor) { self.inner = inner }

    var models: [ModelDescriptor] { inner.models }
    var pageCount: Int { inner.pageCount }
    func tokensPerPage(for model: ModelID) -> Int { inner.tokensPerPage(for: model) }

    func execute(_ plan: StepPlan) throws -> StepResult {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            // The clock first: summing the plan's loads is the tracer's work, not the executor's.
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            last = (ModelStepLoad.of(plan), seconds)
        }
        return try inner.execute(plan)
    }

    /// Forgets the last plan (called before each step).
    func reset() { last = nil }
}

/// Writes step traces as JSON lines, one file per run.
enum StepTraceWriter {
    /// `directory/prefix-policy-rRATE.jsonl`.
    static func path(directory: String, prefix: String, policy: String, rate: Double) -> String {
        URL(fileURLWithPath: directory).appendingPathComponent("\(prefix)-\(policy)-r\(String(format: "%g", rate)).jsonl").path
    }

    static func write(_ entries: [StepTraceEntry], to path: String) throws {
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(),
                                                withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data = Data()
        for entry in entries {
            data += try encoder.encode(entry)
            data.append(0x0A)
        }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
