/// CUDA C source of the tensor-core decode attention (bf16 only; uses `mma_bf16`, `pack_bf16x2`,
/// `shared_address`, `cp_async16` and `mma_pv` of `attentionTensorCore`, which comes before it).
extension KernelSource {
    static let attentionTensorCoreDecode = #"""
// Tensor-core decode attention (GQA): one query token's `group` (<= 8) query heads are the rows of
// a 16-row mma tile (the rest zero) against one split of its context, 64 keys per tile staged in
// shared memory with cp.async, the next tile in flight while the current one is computed; warp w
// scores and accumulates keys w*16 .. w*16+15 of each tile with its own online softmax, and the
// four warps merge at the end. Same grid, block and outputs as
// attn_decode (unnormalised partials and (max, sum) per split for attn_combine); about 2 mma per
// key and kv head instead of ~80 scalar instructions with a warp reduction per key and query head.
// Dynamic shared memory: 2 buffers * 2 * 64 * (HD + 8) bf16 (keys, values), reused for the merge.
template <int HD>
__device__ __forceinline__ void attn_decode_tc_body(const bf16* q, int q_stride, const bf16* k_cache, const bf16* v_cache,
        const int* query_starts, const int* context_lengths, const int* page_tables, int max_pages, int sequences,
        int heads, int kv_heads, int tokens_per_page, long long page_stride, float scale,
        float* part_out, float* part_ml, const int* token_rows, unsigned char* smem_raw) {
    constexpr int QS = HD + 8;
    constexpr int VPR = HD / 8;
    bf16* const tiles = (bf16*)smem_raw;   // buffer b: keys at tiles + b * 128 * QS, values 64 rows later
    // token_rows (mixed steps): block x serves flat-batch row token_rows[x]; partials stay by x.
    const int t = token_rows ? token_rows[blockIdx.x] : blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const KeySplit keys = key_split(query_starts, context_lengths, sequences, t, split, splits);
    const int s = keys.s, begin = keys.begin, end = keys.end;
    const int group = heads / kv_heads, h0 = kvh * group;
    const int kv_dim = kv_heads * HD;
    const int* table = page_tables + (long long)s * max_pages;
    const uint4 zero4 = make_uint4(0u, 0u, 0u, 0u);

    // A fragments of the queries: row g is query head h0 + g (rows >= group and g + 8 are zero).
    unsigned qa[HD / 16][4];
    const bf16* qrow = q + (long long)t * q_stride + (long long)(h0 + g) * HD;
    #pragma unroll
    for (int kc = 0; kc < HD / 16; kc++) {
        qa[kc][0] = g < group ? *(const unsigned*)(qrow + kc * 16 + 2 * t4) : 0u;
        qa[kc][1] = 0u;
        qa[kc][2] = g < group ? *(const unsigned*)(qrow + kc * 16 + 8 + 2 * t4) : 0u;
        qa[kc][3] = 0u;
    }
    float o[HD / 8][4];
    #pragma unroll
    for (int n = 0; n < HD / 8; n++) { o[n][0] = 0.0f; o[n][1] = 0.0f; o[n][2] = 0.0f; o[n][3] = 0.0f; }
    const float NEG = -__int_as_float(0x7f800000);
    float m = NEG, l = 0.0f;   // row g, in log2 units
    const float sl2 = scale * 1.4426950408889634f;

    // Copies the 64 keys and values from k0 into buffer b (rows past the split are zero-filled).
    auto issue = [&](int k0, int b) {
        bf16* kd = tiles + b * 128 * QS;
        bf16* vd = kd + 64 * QS;
        for (int idx = tid; idx < 64 * VPR; idx += 128) {
            const int c = idx / VPR, d = (idx % VPR) * 8;
            const int j = k0 + c;
            const bool live = j < end;
            const long long base = live ? paged_offset(table, j, tokens_per_page, page_stride, kv_dim, kvh, HD) + d : 0;
            cp_async16(kd + c * QS + d, k_cache + base, live ? 16 : 0);
            cp_async16(vd + c * QS + d, v_cache + base, live ? 16 : 0);
        }
        asm volatile("cp.async.commit_group;\n" ::);
    };
    if (begin < end) issue(begin, 0);
    int buf = 0;
    for (int k0 = begin; k0 < end; k0 += 64, buf ^= 1) {
        __syncthreads();   // every warp is done with the buffer refilled next
        if (k0 + 64 < end) {
            issue(k0 + 64, buf ^ 1);
            asm volatile("cp.async.wait_group 1;\n" ::);
        } else {
            asm volatile("cp.async.wait_group 0;\n" ::);
        }
        __syncthreads();   // tile k0 is in shared memory for every thread
        const bf16* ks = tiles + buf * 128 * QS;
        const bf16* vs = ks + 64 * QS;
        const int w0 = warp * 16;
        if (k0 + w0 >= end) continue;   // this warp's 16 keys are all past the split (buf still flips)
        float sc[2][4];
        #pragma unroll
        for (int n = 0; n < 2; n++) {
            sc[n][0] = 0.0f; sc[n][1] = 0.0f; sc[n][2] = 0.0f; sc[n][3] = 0.0f;
            #pragma unroll
            for (int kc = 0; kc < HD / 16; kc++) {
                const unsigned b0 = *(const unsigned*)(ks + (w0 + n * 8 + g) * QS + kc * 16 + 2 * t4);
                const unsigned b1 = *(const unsigned*)(ks + (w0 + n * 8 + g) * QS + kc * 16 + 8 + 2 * t4);
                mma_bf16(sc[n], qa[kc], b0, b1);
            }
        }
        float mx = NEG;
        #pragma unroll
        for (int n = 0; n < 2; n++) {
            #pragma unroll
            for (int e = 0; e < 2; e++) {
                const int key = k0 + w0 + n * 8 + 2 * t4 + e;
                const float v = key < end ? sc[n][e] * sl2 : NEG;
                sc[n][e] = v;
                mx = fmaxf(mx, v);
            }
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mn = fmaxf(m, mx);
        const float mu = mn == NEG ? 0.0f : mn;
        const float c = exp2f(m - mu);
        m = mn;
        float sum = 0.0f;
        #pragma unroll
        for (int n = 0; n < 2; n++) {
            sc[n][0] = exp2f(sc[n][0] - mu); sc[n][1] = exp2f(sc[n][1] - mu);
            sum += sc[n][0] + sc[n][1];
        }
        l = l * c + sum;
        #pragma unroll
        for (int n = 0; n < HD / 8; n++) { o[n][0] *= c; o[n][1] *= c; }
        unsigned pa[4];
        pa[0] = pack_bf16x2(sc[0][0], sc[0][1]);
        pa[1] = 0u;
        pa[2] = pack_bf16x2(sc[1][0], sc[1][1]);
        pa[3] = 0u;
        mma_pv<HD, QS>(o, pa, vs + w0 * QS, lane);
    }
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    // Merge the four warps (the key/value tiles are free now).
    __syncthreads();
    float* red_m = (float*)smem_raw;
    float* red_l = red_m + 4 * 8;
    float* red_acc = red_l + 4 * 8;
    if (g < group) {
        if (t4 == 0) { red_m[warp * 8 + g] = m; red_l[warp * 8 + g] = l; }
        #pragma unroll
        for (int n = 0; n < HD / 8; n++) {
            red_acc[(warp * 8 + g) * HD + n * 8 + 2 * t4] = o[n][0];
            red_acc[(warp * 8 + g) * HD + n * 8 + 2 * t4 + 1] = o[n][1];
        }
    }
    __syncthreads();
    for (int idx = tid; idx < group * HD; idx += 128) {
        const int r = idx / HD, d = idx % HD;
        float mx = NEG;
        for (int w = 0; w < 4; w++) mx = fmaxf(mx, red_m[w * 8 + r]);
        float sum = 0.0f, out = 0.0f;
        if (mx != NEG) {
            for (int w = 0; w < 4; w++) {
                const float f = exp2f(red_m[w * 8 + r] - mx);
                sum += red_l[w * 8 + r] * f;
                out += red_acc[(w * 8 + r) * HD + d] * f;
            }
        }
        const long long row = ((long long)blockIdx.x * heads + h0 + r) * splits + split;
        part_out[row * HD + d] = out;
        // attn_combine weighs splits with expf: the max goes back to natural-log units.
        if (d == 0) { part_ml[row * 2] = mx == NEG ? NEG : mx * 0.6931471805599453f; part_ml[row * 2 + 1] = sum; }
    }
}
#define ATTN_DECODE_TC(HD) \
extern "C" __global__ void __launch_bounds__(128) attn_decode_tc##HD(const bf16* q, int q_stride, const bf16* k_cache, \
        const bf16* v_cache, const int* query_starts, const int* context_lengths, const int* page_tables, int max_pages, \
        int sequences, int heads, int kv_heads, int tokens_per_page, long long page_stride, float scale, \
        float* part_out, float* part_ml, const int* token_rows) { \
    extern __shared__ __align__(16) unsigned char smem_tc[]; \
    attn_decode_tc_body<HD>(q, q_stride, k_cache, v_cache, query_starts, context_lengths, page_tables, max_pages, \
        sequences, heads, kv_heads, tokens_per_page, page_stride, scale, part_out, part_ml, token_rows, smem_tc); \
}
ATTN_DECODE_TC(16)
ATTN_DECODE_TC(32)
ATTN_DECODE_TC(64)
ATTN_DECODE_TC(128)
"""#
}
