import Foundation

/// The compiled kernel module of one GPU and a launcher with checked status.
final class CUDAKernels: @unchecked Sendable {
    enum Name: String, CaseIterable {
        case embedding, add_rmsnorm, rope, silu_mul, silu_mul_v8, kv_write, rope_kv_write, gather_rows, bias_add, sample_rows, argmax_partial, argmax_combine, sample_draw
        case gemv_bf16_1, gemv_bf16_2, gemv_bf16_3, gemv_bf16_4
        case attn_decode, attn_combine, attn_prefill
        case attn_prefill_tc16, attn_prefill_tc32, attn_prefill_tc64, attn_prefill_tc128
        case attn_decode_tc16, attn_decode_tc32, attn_decode_tc64, attn_decode_tc128

        /// Kernels that exist only in bf16 (tensor-core attention, the bf16 GEMV).
        var bf16Only: Bool {
            switch self {
            case .gemv_bf16_1, .gemv_bf16_2, .gemv_bf16_3, .gemv_bf16_4, .attn_prefill_tc16, .attn_prefill_tc32, .attn_prefill_tc64, .attn_prefill_tc128,
                 .attn_decode_tc16, .attn_decode_tc32, .attn_decode_tc64, .attn_decode_tc128: return true
            default: return false
            }
        }
    }

    /// The tensor-core prefill attention kernel for `headDim`, if there is one.
    static func tensorCorePrefill(headDim: Int) -> Name? {
        switch headDim {
        case 16: return .attn_prefill_tc16
        case 32: return .attn_prefill_tc32
        case 64: return .attn_prefill_tc64
        case 128: return .attn_prefill_tc128
        default: return nil
        }
    }
    /// The tensor-core decode attention kernel for `headDim`, if there is one.
    static func tensorCoreDecode(headDim: Int) -> Name? {
        switch headDim {
        case 16: return .attn_decode_tc16
        case 32: return .attn_decode_tc32
        case 64: return .attn_decode_tc64
        case 128: return .attn_decode_tc128
        default: return nil
        }
    }
    /// Dynamic shared memory of the tensor-core decode kernel for `headDim` (two buffers of a key
    /// and a value tile: the next one loads while the current one is computed).
    static func tensorCoreDecodeShared(headDim: Int) -> Int { 2 * 2 * 64 * (headDim + 8) * 2 }
    /// The GEMV kernel for `rows` rows of x (1 to 4).
    static func gemv(rows: Int) -> Name {
        switch rows {
        case 1: return .gemv_bf16_1
        case 2: return .gemv_bf16_2
        case 3: return .gemv_bf16_3
        default: return .gemv_bf16_4
        }
    }
    /// Dynamic shared memory of the tensor-core prefill kernel for `headDim`.
    static func tensorCorePrefillShared(headDim: Int) -> Int { 3 * 64 * (headDim + 8) * 2 }

    let context: CUDAContext
    private var module: OpaquePointer?
    private var functions: [Name: OpaquePointer?] = [:]
    /// Whether the CUBIN came from the disk cache, and how long compiling or loading took.
    let fromCache: Bool
    let loadSeconds: Double
    /// Dynamic shared memory that `attn_prefill` may use.
    let prefillSharedBytes = 116 * 1024

    /// The element type of activations, weights and KV pages the kernels were compiled for.
    let precision: CUDAPrecision

    init(context: CUDAContext, precision: CUDAPrecision) throws {
        self.context = context
        self.precision = precision
        let start = Date()
        let compiler = NVRTCCompiler()
        var source = KernelSource.common + KernelSource.activationType(precision) + KernelSource.elementwise + KernelSource.sampling + KernelSource.attention
        if precision == .bf16 { source += KernelSource.attentionTensorCore + KernelSource.attentionTensorCoreDecode + KernelSource.gemv }
        let names = Name.allCases.filter { precision == .bf16 || !$0.bf16Only }
        let cubin = try compiler.cubin(source: source, architecture: context.computeCapability, name: "llmux")
        fromCache = compiler.lastWasCached
        let driver = context.driver
        var module: OpaquePointer?
        try cubin.withUnsafeBytes { bytes in
            try driver.check(driver.cuModuleLoadData(&module, bytes.baseAddress!), "cuModuleLoadData")
        }
        self.module = module
        for name in names {
            var function: OpaquePointer?
            try driver.check(driver.cuModuleGetFunction(&function, module, name.rawValue), "cuModuleGetFunction(\(name.rawValue))")
            functions[name] = function
        }
        // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
        try driver.check(driver.cuFuncSetAttribute(functions[.attn_prefill]!, 8, Int32(prefillSharedBytes)),
                         "cuFuncSetAttribute(attn_prefill, MAX_DYNAMIC_SHARED_SIZE_BYTES)")
        for headDim in [16, 32, 64, 128] where precision == .bf16 {
            for (name, bytes) in [(Self.tensorCorePrefill(headDim: headDim)!, Self.tensorCorePrefillShared(headDim: headDim)),
                                  (Self.tensorCoreDecode(headDim: headDim)!, Self.tensorCoreDecodeShared(headDim: headDim))] {
                try driver.check(driver.cuFuncSetAttribute(functions[name]!, 8, Int32(bytes)),
                                 "cuFuncSetAttribute(\(name.rawValue), MAX_DYNAMIC_SHARED_SIZE_BYTES)")
            }
        }
        loadSeconds = Date().timeIntervalSince(start)
    }

    /// Launches `name` on the context's stream.
    func launch(_ name: Name, grid: (Int, Int, Int), block: Int, sharedBytes: Int = 0,
                _ arguments: [KernelArguments.Value]) throws {
        guard grid.0 > 0 && grid.1 > 0 && grid.2 > 0 else { return }
        let driver = context.driver
        try context.stalls.measure(.launch) {
            try KernelArguments(arguments).withPointers { pointers in
                try driver.check(driver.cuLaunchKernel(functions[name]!, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2),
                                                       UInt32(block), 1, 1, UInt32(sharedBytes), context.stream, pointers, nil),
                                 "cuLaunchKernel(\(name.rawValue), grid \(grid.0)x\(grid.1)x\(grid.2), block \(block))")
            }
        }
    }
}
