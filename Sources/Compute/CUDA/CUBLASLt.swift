import Foundation
/// cuBLASLt (`libcublasLt.so.13` …) opened at run time: bf16 (or f16) matrix products with fp32
/// accumulation. Enum values follow `cublasLt.h` / `library_types.h`.
final class CUBLASLt: @unchecked Sendable {
    typealias Handle = OpaquePointer?
    typealias Status = Int32

    /// `cudaDataType_t` values used here.
    enum DataType: Int32 {
        case f32 = 0
        case f16 = 2
        case bf16 = 14
        init(_ dtype: DType) {
            switch dtype {
            case .f32: self = .f32
            case .f16: self = .f16
            case .bf16: self = .bf16
            }
        }
    }
    static let computeF32: Int32 = 68          // CUBLAS_COMPUTE_32F
    static let descTransA: Int32 = 3           // CUBLASLT_MATMUL_DESC_TRANSA
    static let descTransB: Int32 = 4           // CUBLASLT_MATMUL_DESC_TRANSB
    static let prefMaxWorkspace: Int32 = 1     // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
    static let descSMCountTarget: Int32 = 15   // CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET (int32)
    /// `sizeof(cublasLtMatmulHeuristicResult_t)`: algo (64 bytes), workspaceSize, state, wavesCount, reserved[4].
    static let heuristicResultSize = 96

    let library: DynamicLibrary
    let create: @convention(c) (UnsafeMutablePointer<Handle>) -> Status
    let descCreate: @convention(c) (UnsafeMutablePointer<Handle>, Int32, Int32) -> Status
    let descSetAttribute: @convention(c) (Handle, Int32, UnsafeRawPointer, Int) -> Status
    let layoutCreate: @convention(c) (UnsafeMutablePointer<Handle>, Int32, UInt64, UInt64, Int64) -> Status
    let preferenceCreate: @convention(c) (UnsafeMutablePointer<Handle>) -> Status
    let preferenceSetAttribute: @convention(c) (Handle, Int32, UnsafeRawPointer, Int) -> Status
    let heuristic: @convention(c) (Handle, Handle, Handle, Handle, Handle, Handle, Handle, Int32,
                                   UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Status
    let matmulCall: @convention(c) (Handle, Handle, UnsafeRawPointer, UInt64, Handle, UInt64, Handle, UnsafeRawPointer,
                                    UInt64, Handle, UInt64, Handle, UnsafeRawPointer?, UInt64, Int, Handle) -> Status
    let statusString: (@convention(c) (Status) -> UnsafePointer<CChar>?)?

    init() throws {
        library = try DynamicLibrary(candidates: ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"],
                                     what: "cuBLASLt (libcublasLt.so.13)")
        create = try library.function("cublasLtCreate")
        descCreate = try library.function("cublasLtMatmulDescCreate")
        descSetAttribute = try library.function("cublasLtMatmulDescSetAttribute")
        layoutCreate = try library.function("cublasLtMatrixLayoutCreate")
        preferenceCreate = try library.function("cublasLtMatmulPreferenceCreate")
        preferenceSetAttribute = try library.function("cublasLtMatmulPreferenceSetAttribute")
        heuristic = try library.function("cublasLtMatmulAlgoGetHeuristic")
        matmulCall = try library.function("cublasLtMatmul")
        statusString = try? library.function("cublasLtGetStatusString")
    }

    func check(_ status: Status, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        let text = statusString?(status).map { String(cString: $0) } ?? "CUBLAS_STATUS \(status)"
        throw CUDAError("\(call()) failed: \(text) (\(status))")
    }
}

/// One planned product shape: descriptors and the chosen algorithm, reused every step.
struct MatmulPlan {
    let desc: CUBLASLt.Handle
    let a, b, c: CUBLASLt.Handle
    /// Heuristic results (each `heuristicResultSize` bytes, algo first), best first; kept for the process.
    let results: UnsafeMutableRawPointer
    let resultCount: Int
    /// The result in use (moves on when one fails to launch on a partition).
    var chosen = 0
    var algorithm: UnsafeMutableRawPointer { results + chosen * CUBLASLt.heuristicResultSize }
}

/// Key of a planned product: `out[m × n] = x[m × k] · w[n × k]ᵀ` with row strides and types, on
/// `smCount` SMs (0: the whole device). An algorithm planned for the whole GPU may not launch on a
/// small green-context partition (a grid sized for every SM), so each partition size is planned
/// with `CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET`.
struct MatmulKey: Hashable {
    let m, n, k, ldx, ldw, ldout: Int
    let xType, wType, outType: Int32
    var smCount = 0
}

/// Matrix products through cuBLASLt, planned once per shape, on the stream and workspace each call names.
final class MatmulEngine: @unchecked Sendable {
    let lt: CUBLASLt
    private var handle: CUBLASLt.Handle = nil
    private var preference: CUBLASLt.Handle = nil
    private var plans: [MatmulKey: MatmulPlan] = [:]
    /// Workspace every call gets (each stream has its own of this size).
    let workspaceBytes: Int
    /// Plans made so far (each with one heuristic query) and the host seconds they took (bench
    /// traces: a mixed step's row count changes step by step, so each new one is planned; 20 plans
    /// in 5 ms over 18 prefill steps of the Llama-3-8B shape, so they are not worth sharing).
    private(set) var planCount = 0
    private(set) var planningSeconds = 0.0

    init(lt: CUBLASLt, workspaceBytes: Int) throws {
        self.lt = lt
        self.workspaceBytes = workspaceBytes
        try lt.check(lt.create(&handle), "cublasLtCreate")
        try lt.check(lt.preferenceCreate(&preference), "cublasLtMatmulPreferenceCreate")
        var bytes = UInt64(workspaceBytes)
        try lt.check(lt.preferenceSetAttribute(preference, CUBLASLt.prefMaxWorkspace, &bytes, 8),
                     "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)")
    }

    /// Row-major `out = x · wᵀ`, computed column-major as `outᵀ (n × m) = w (n × k, transposed from k × n) · xᵀ`.
    func run(x: UInt64, w: UInt64, out: UInt64, key: MatmulKey, workspace: UInt64, stream: OpaquePointer?) throws {
        var plan = try self.plan(key)
        var alpha: Float = 1
        var beta: Float = 0
        while true {
            let status = lt.matmulCall(handle, plan.desc, &alpha, w, plan.a, x, plan.b, &beta, out, plan.c, out, plan.c,
                                       plan.algorithm, workspace, workspaceBytes, stream)
            // CUBLAS_STATUS_EXECUTION_FAILED (13) at launch: the algorithm does not fit the partition; try the next.
            if status == 13 && plan.chosen + 1 < plan.resultCount {
                plan.chosen += 1
                plans[key] = plan
                continue
            }
            try lt.check(status, "cublasLtMatmul(\(key.m)x\(key.n)x\(key.k)\(key.smCount > 0 ? " on \(key.smCount) SMs" : ""))")
            return
        }
    }

    private func plan(_ key: MatmulKey) throws -> MatmulPlan {
        if let plan = plans[key] { return plan }
        let started = Date()
        defer { planningSeconds += Date().timeIntervalSince(started) }
        planCount += 1
        var desc: CUBLASLt.Handle = nil
        try lt.check(lt.descCreate(&desc, CUBLASLt.computeF32, CUBLASLt.DataType.f32.rawValue), "cublasLtMatmulDescCreate")
        var transpose: Int32 = 1
        try lt.check(lt.descSetAttribute(desc, CUBLASLt.descTransA, &transpose, 4), "cublasLtMatmulDescSetAttribute(TRANSA)")
        var none: Int32 = 0
        try lt.check(lt.descSetAttribute(desc, CUBLASLt.descTransB, &none, 4), "cublasLtMatmulDescSetAttribute(TRANSB)")
        if key.smCount > 0 {
            var target = Int32(key.smCount)
            try lt.check(lt.descSetAttribute(desc, CUBLASLt.descSMCountTarget, &target, 4), "cublasLtMatmulDescSetAttribute(SM_COUNT_TARGET)")
        }
        var a: CUBLASLt.Handle = nil, b: CUBLASLt.Handle = nil, c: CUBLASLt.Handle = nil
        // A: the weight, stored k × n column-major (ld = its row stride), used transposed.
        try lt.check(lt.layoutCreate(&a, key.wType, UInt64(key.k), UInt64(key.n), Int64(key.ldw)), "cublasLtMatrixLayoutCreate(A)")
        try lt.check(lt.layoutCreate(&b, key.xType, UInt64(key.k), UInt64(key.m), Int64(key.ldx)), "cublasLtMatrixLayoutCreate(B)")
        try lt.check(lt.layoutCreate(&c, key.outType, UInt64(key.n), UInt64(key.m), Int64(key.ldout)), "cublasLtMatrixLayoutCreate(C)")
        let results = UnsafeMutableRawPointer.allocate(byteCount: CUBLASLt.heuristicResultSize * 4, alignment: 16)
        results.initializeMemory(as: UInt8.self, repeating: 0, count: CUBLASLt.heuristicResultSize * 4)
        var found: Int32 = 0
        try lt.check(lt.heuristic(handle, desc, a, b, c, c, preference, 4, results, &found),
                     "cublasLtMatmulAlgoGetHeuristic(\(key.m)x\(key.n)x\(key.k))")
        guard found > 0 else { throw CUDAError("cublasLtMatmulAlgoGetHeuristic found no algorithm for \(key)") }
        let plan = MatmulPlan(desc: desc, a: a, b: b, c: c, results: results, resultCount: Int(found))
        plans[key] = plan
        return plan
    }
}
