/// Paged attention on CUDA: a tiled causal kernel for prefill chunks, and for decode a
/// per-token kernel split along the context (so a single long sequence still fills the GPU)
/// whose partial results a second kernel merges.
extension CUDABackend {
    /// Tensor-core prefill (bf16, more than 8 queries in a sequence), CUDA-core prefill, or split-context decode and
    /// merge; in a mixed step the single-query rows go to the decode kernel. Queued on the selected stream.
    public func pagedAttention(queries: Tensor, layer: PagedKVLayer, batch: AttentionBatch, heads: Int, kvHeads: Int,
                               headDim: Int, scale: Float, out: Tensor) throws {
        try expect(out.rowStride == heads * headDim && queries.dtype == activationDType && layer.dtype == activationDType && heads % kvHeads == 0,
                   "pagedAttention types")
        let tokens = queries.rows
        guard tokens > 0 else { return }
        let maxContext = batch.maxContextLength > 0 ? batch.maxContextLength : batch.maxPages * layer.tokensPerPage
        let maxQueries = batch.maxQueryCount > 0 ? batch.maxQueryCount : tokens
        let common: [KernelArguments.Value] = [
            .ptr(queries), .int(queries.rowStride), .pointer(layer.deviceKeys), .pointer(layer.deviceValues),
            .ptr(batch.queryStarts), .ptr(batch.contextLengths), .ptr(batch.pageTables), .int(batch.maxPages),
        ]
        if maxQueries > 8 && !decodeAttentionOnly && !simtPrefillAttention && precision == .bf16,
           let kernel = CUDAKernels.tensorCorePrefill(headDim: headDim) {
            // The step's decode tokens go to the decode kernel: in the prompt kernel each took a whole
            // 64-query tile per query head (~60 us per decode token and Llama-3-8B step on an H100).
            var skipSingle: Int32 = 0
            if let rows = batch.decodeTokenRows, rows.count > 0, !simtDecodeAttention, heads / kvHeads <= 8,
               CUDAKernels.tensorCoreDecode(headDim: headDim) != nil {
                try decodeAttention(common: common, layer: layer, batch: batch, heads: heads, kvHeads: kvHeads, headDim: headDim,
                                    scale: scale, out: out, tokenRows: rows, count: rows.count, maxContext: maxContext)
                skipSingle = 1
            }
            let tiles = (maxQueries + 63) / 64
            try kernels.launch(kernel, grid: (batch.sequenceCount * tiles, heads, 1), block: 128,
                               sharedBytes: CUDAKernels.tensorCorePrefillShared(headDim: headDim),
                               common + [.int(tiles), .int(heads), .int(kvHeads), .int(layer.tokensPerPage),
                                         .int64(Int64(layer.pageStride)), .float(scale), .ptr(out), .int(out.rowStride),
                                         .int(Int(skipSingle))])
            return
        }
        if maxQueries > 8 && headDim % 16 == 0 && headDim <= 128 && !decodeAttentionOnly {
            let tiles = (maxQueries + 63) / 64
            let shared = (2 * headDim * 65 + 64 * 65) * 4
            try kernels.launch(.attn_prefill, grid: (batch.sequenceCount * tiles, heads, 1), block: 128, sharedBytes: shared,
                               common + [.int(tiles), .int(heads), .int(kvHeads), .int(headDim), .int(layer.tokensPerPage),
                                         .int64(Int64(layer.pageStride)), .float(scale), .ptr(out), .int(out.rowStride)])
            return
        }
        try decodeAttention(common: common, layer: layer, batch: batch, heads: heads, kvHeads: kvHeads, headDim: headDim,
                            scale: scale, out: out, tokenRows: nil, count: tokens, maxContext: maxContext)
    }

    /// One query token per block row against its split context, then the merge of the splits:
    /// `count` rows, all the batch's tokens (`tokenRows` nil) or the flat-batch rows listed there.
    private func decodeAttention(common: [KernelArguments.Value], layer: PagedKVLayer, batch: AttentionBatch, heads: Int,
                                 kvHeads: Int, headDim: Int, scale: Float, out: Tensor, tokenRows: IntTensor?, count tokens: Int,
                                 maxContext: Int) throws {
        try expect(headDim <= 128 && heads / kvHeads <= 8, "head size \(headDim) or \(heads / kvHeads) query heads per kv head")
        // About 4 blocks per SM (2x and 4x more splits measured the same with the tensor-core kernel).
        let wanted = (4 * context.multiprocessorCount + tokens * kvHeads - 1) / (tokens * kvHeads)
        // Splits of at least 16 keys: at batch 1 a 64-key minimum left 24 blocks for the whole
        // GPU, each walking its keys one after another (14 us per layer on an H100 at 160 keys).
        let splits = max(1, min(wanted, (maxContext + 15) / 16, 1024))
        let rows = tokens * heads * splits
        let scratch = try scratch(rows * (headDim + 2) * 4)
        let partOut = scratch.deviceAddress
        let partML = partOut + UInt64(rows * headDim * 4)
        let rowsArgument: KernelArguments.Value = tokenRows.map { .ptr($0) } ?? .pointer(0)
        if precision == .bf16 && !simtDecodeAttention, let kernel = CUDAKernels.tensorCoreDecode(headDim: headDim) {
            // At 256 sequences the CUDA-core kernel took 6.1 of a 15.1 ms Llama-3-8B step (its key loop
            // is instruction-bound); tensor cores score and accumulate 16 keys per mma.
            try kernels.launch(kernel, grid: (tokens, kvHeads, splits), block: 128,
                               sharedBytes: CUDAKernels.tensorCoreDecodeShared(headDim: headDim),
                               common + [.int(batch.sequenceCount), .int(heads), .int(kvHeads), .int(layer.tokensPerPage),
                                         .int64(Int64(layer.pageStride)), .float(scale), .pointer(partOut), .pointer(partML), rowsArgument])
        } else {
            try expect(tokenRows == nil, "the CUDA-core decode kernel runs whole batches")
            try kernels.launch(.attn_decode, grid: (tokens, kvHeads, splits), block: 128,
                               common + [.int(batch.sequenceCount), .int(heads), .int(kvHeads), .int(headDim), .int(layer.tokensPerPage),
                                         .int64(Int64(layer.pageStride)), .float(scale), .pointer(partOut), .pointer(partML)])
        }
        try kernels.launch(.attn_combine, grid: (tokens, heads, 1), block: (headDim + 31) / 32 * 32,
                           [.pointer(partOut), .pointer(partML), .int(splits), .int(heads), .int(headDim), .ptr(out), .int(out.rowStride),
                            rowsArgument])
    }
}
