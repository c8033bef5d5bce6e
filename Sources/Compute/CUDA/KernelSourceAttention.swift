/// CUDA C source of the attention kernels over the paged KV cache (bf16 pages, f32 math).
extension KernelSource {
    static let attention = #"""
__device__ __forceinline__ int sequence_of(const int* query_starts, int sequences, int token) {
    int lo = 0, hi = sequences - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (query_starts[mid] <= token) lo = mid; else hi = mid - 1;
    }
    return lo;
}
// The keys of flat-batch row t that split `split` of `splits` covers, [begin, end), and the row's
// sequence s. Each sequence spreads its own context over the splits (so a recorded graph serves
// any length); end stops at the row's last visible key.
struct KeySplit { int s, begin, end; };
// Where head kvh of key (or value) j of a sequence starts in the paged cache, through the
// sequence's page table.
__device__ __forceinline__ long long paged_offset(const int* table, int j, int tokens_per_page, long long page_stride,
                                                  int kv_dim, int kvh, int head_dim) {
    return (long long)table[j / tokens_per_page] * page_stride + (long long)(j % tokens_per_page) * kv_dim
         + (long long)kvh * head_dim;
}
__device__ __forceinline__ KeySplit key_split(const int* query_starts, const int* context_lengths, int sequences,
                                              int t, int split, int splits) {
    KeySplit r;
    r.s = sequence_of(query_starts, sequences, t);
    const int q_count = query_starts[r.s + 1] - query_starts[r.s];
    const int visible = context_lengths[r.s] - q_count + (t - query_starts[r.s]) + 1;
    const int split_len = (context_lengths[r.s] + splits - 1) / splits;
    r.begin = split * split_len;
    r.end = min(visible, r.begin + split_len);
    return r;
}

// head_dim <= 128 (MAXDPL * 32), heads per kv head <= 8 (MAXG).
// One query token (all query heads of one kv head) against one split of its visible context
// (split z covers keys [z * ceil(context / splits), (z + 1) * ceil(context / splits))).
// grid (tokens, kv_heads, splits), block 128 (4 warps, each taking every 4th key).
// Writes unnormalised partial outputs and (max, sum) per split; attn_combine merges them.
// Four consecutive activations (16-byte aligned for f32, 8-byte for bf16) as floats, in one load.
__device__ __forceinline__ void load4(const act* p, float* f) {
    if (sizeof(act) == 2) {
        const uint2 v = *(const uint2*)p;
        f[0] = __uint_as_float(v.x << 16); f[1] = __uint_as_float(v.x & 0xffff0000u);
        f[2] = __uint_as_float(v.y << 16); f[3] = __uint_as_float(v.y & 0xffff0000u);
    } else {
        const float4 v = *(const float4*)p;
        f[0] = v.x; f[1] = v.y; f[2] = v.z; f[3] = v.w;
    }
}
#define MAXG 8
#define MAXDPL 4
extern "C" __global__ void attn_decode(const act* q, int q_stride, const act* k_cache, const act* v_cache,
        const int* query_starts, const int* context_lengths, const int* page_tables, int max_pages, int sequences,
        int heads, int kv_heads, int head_dim, int tokens_per_page, long long page_stride, float scale,
        float* part_out, float* part_ml) {
    __shared__ float sm_m[4][MAXG], sm_l[4][MAXG];
    __shared__ float sm_acc[4][MAXG][MAXDPL * 32];
    const int t = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z, splits = gridDim.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const KeySplit keys = key_split(query_starts, context_lengths, sequences, t, split, splits);
    const int s = keys.s, begin = keys.begin, end = keys.end;
    const int group = heads / kv_heads, h0 = kvh * group;
    const int dpl = (head_dim + 31) / 32, d0 = lane * dpl;
    const int kv_dim = kv_heads * head_dim;
    const int* table = page_tables + (long long)s * max_pages;

    float qr[MAXG][MAXDPL], acc[MAXG][MAXDPL], m[MAXG], l[MAXG];
    #pragma unroll
    for (int g = 0; g < MAXG; g++) {
        m[g] = -__int_as_float(0x7f800000); l[g] = 0.0f;
        #pragma unroll
        for (int i = 0; i < MAXDPL; i++) {
            acc[g][i] = 0.0f;
            const int d = d0 + i;
            qr[g][i] = (g < group && i < dpl && d < head_dim) ? a2f(q[(long long)t * q_stride + (h0 + g) * head_dim + d]) * scale : 0.0f;
        }
    }
    // Each warp takes keys begin + warp, + 4, + 8, ...; two at a time so that both loads are in
    // flight (four at a time measured slower at 64 and 256 sequences: registers, occupancy).
    const bool whole_rows = head_dim == 4 * 32;   // four values a lane: one vector load
    for (int j0 = begin + warp; j0 < end; j0 += 8) {
        float kr[2][MAXDPL], vr[2][MAXDPL];
        #pragma unroll
        for (int u = 0; u < 2; u++) {
            const int j = j0 + 4 * u;
            const bool live = j < end;
            const long long base = live ? paged_offset(table, j, tokens_per_page, page_stride, kv_dim, kvh, head_dim) : 0;
            if (whole_rows && live) {
                load4(k_cache + base + d0, kr[u]);
                load4(v_cache + base + d0, vr[u]);
                continue;
            }
            #pragma unroll
            for (int i = 0; i < MAXDPL; i++) {
                const int d = d0 + i;
                const bool ok = live && i < dpl && d < head_dim;
                kr[u][i] = ok ? a2f(k_cache[base + d]) : 0.0f;
                vr[u][i] = ok ? a2f(v_cache[base + d]) : 0.0f;
            }
        }
        #pragma unroll
        for (int u = 0; u < 2; u++) {
            if (j0 + 4 * u >= end) break;
            #pragma unroll
            for (int g = 0; g < MAXG; g++) {
                if (g >= group) break;
                float dot = 0.0f;
                #pragma unroll
                for (int i = 0; i < MAXDPL; i++) dot += qr[g][i] * kr[u][i];
                dot = warp_sum(dot);
                const float m_new = fmaxf(m[g], dot);
                const float correction = expf(m[g] - m_new);
                const float p = expf(dot - m_new);
                l[g] = l[g] * correction + p;
                #pragma unroll
                for (int i = 0; i < MAXDPL; i++) acc[g][i] = acc[g][i] * correction + p * vr[u][i];
                m[g] = m_new;
            }
        }
    }
    #pragma unroll
    for (int g = 0; g < MAXG; g++) {
        if (g < group) {
            if (lane == 0) { sm_m[warp][g] = m[g]; sm_l[warp][g] = l[g]; }
            #pragma unroll
            for (int i = 0; i < MAXDPL; i++) if (i < dpl && d0 + i < head_dim) sm_acc[warp][g][d0 + i] = acc[g][i];
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < group * head_dim; idx += blockDim.x) {
        const int g = idx / head_dim, d = idx % head_dim;
        float mx = -__int_as_float(0x7f800000);
        for (int w = 0; w < 4; w++) mx = fmaxf(mx, sm_m[w][g]);
        float sum = 0.0f, out = 0.0f;
        if (mx != -__int_as_float(0x7f800000)) {
            for (int w = 0; w < 4; w++) {
                const float f = expf(sm_m[w][g] - mx);
                sum += sm_l[w][g] * f;
                out += sm_acc[w][g][d] * f;
            }
        }
        const long long row = ((long long)t * heads + h0 + g) * splits + split;
        part_out[row * head_dim + d] = out;
        if (d == 0) { part_ml[row * 2] = mx; part_ml[row * 2 + 1] = sum; }
    }
}

// Merges the splits of attn_decode (at most 1024). grid (tokens, heads), block head_dim rounded up
// to a warp: warp 0 weighs the splits once, then every thread sums its dimension.
// token_rows (mixed steps): block x writes flat-batch row token_rows[x] from partials x.
extern "C" __global__ void attn_combine(const float* part_out, const float* part_ml, int splits, int heads, int head_dim,
                                        act* out, int out_stride, const int* token_rows) {
    __shared__ float weight[1024];
    __shared__ float total;
    const int t = blockIdx.x, h = blockIdx.y, t_out = token_rows ? token_rows[t] : t;
    const long long row0 = ((long long)t * heads + h) * splits;
    const float NEG = -__int_as_float(0x7f800000);
    if (threadIdx.x < 32) {
        float mx = NEG;
        for (int z = threadIdx.x; z < splits; z += 32) mx = fmaxf(mx, part_ml[(row0 + z) * 2]);
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int z = threadIdx.x; z < splits; z += 32) {
            const float mz = part_ml[(row0 + z) * 2];
            const float f = mz == NEG ? 0.0f : expf(mz - mx);
            weight[z] = f;
            sum += part_ml[(row0 + z) * 2 + 1] * f;
        }
        sum = warp_sum(sum);
        if (threadIdx.x == 0) total = sum;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float value = 0.0f;
        for (int z = 0; z < splits; z++) value += part_out[(row0 + z) * head_dim + d] * weight[z];
        out[(long long)t_out * out_stride + h * head_dim + d] = f2a(total > 0.0f ? value / total : 0.0f);
    }
}

// Causal attention of a 64-query tile of one sequence and one head over its pages, 64 keys at a
// time (flash-attention style online softmax, f32 math in shared memory). grid
// (sequences * max_tiles, heads), block 128 = 8 row groups x 16 columns; head_dim % 16 == 0, <= 128.
// Dynamic shared memory: (2 * head_dim * 65 + 64 * 65) floats.
extern "C" __global__ void attn_prefill(const act* q, int q_stride, const act* k_cache, const act* v_cache,
        const int* query_starts, const int* context_lengths, const int* page_tables, int max_pages, int max_tiles,
        int heads, int kv_heads, int head_dim, int tokens_per_page, long long page_stride, float scale,
        act* out, int out_stride) {
    extern __shared__ float smem[];
    const int s = blockIdx.x / max_tiles, tile = blockIdx.x % max_tiles, h = blockIdx.y;
    const int q_start = query_starts[s], q_count = query_starts[s + 1] - q_start;
    if (tile * 64 >= q_count) return;
    const int context = context_lengths[s];
    const int first_pos = context - q_count + tile * 64;           // position of the tile's row 0
    const int rows = min(64, q_count - tile * 64);
    const int kvh = h / (heads / kv_heads), kv_dim = kv_heads * head_dim;
    const int* table = page_tables + (long long)s * max_pages;
    float* qt = smem;                        // [head_dim][65]
    float* kt = qt + head_dim * 65;          // [head_dim][65]
    float* vs = kt;                          // [64][head_dim], the same memory as kt
    float* ps = kt + head_dim * 65;          // [64][65]
    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    const int dcols = head_dim >> 4;

    for (int idx = tid; idx < 64 * head_dim; idx += 128) {
        const int r = idx / head_dim, d = idx % head_dim;
        qt[d * 65 + r] = r < rows ? a2f(q[(long long)(q_start + tile * 64 + r) * q_stride + h * head_dim + d]) * scale : 0.0f;
    }
    float acc[8][8], m[8], l[8];
    #pragma unroll
    for (int i = 0; i < 8; i++) {
        m[i] = -__int_as_float(0x7f800000); l[i] = 0.0f;
        #pragma unroll
        for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;
    }
    const int last_key = min(context, first_pos + rows);            // keys [0, last_key)
    for (int k0 = 0; k0 < last_key; k0 += 64) {
        __syncthreads();
        for (int idx = tid; idx < 64 * head_dim; idx += 128) {
            const int c = idx / head_dim, d = idx % head_dim;
            const int j = k0 + c;
            float kv = 0.0f;
            if (j < last_key) {
                const long long base = paged_offset(table, j, tokens_per_page, page_stride, kv_dim, kvh, head_dim) + d;
                kv = a2f(k_cache[base]);
            }
            kt[d * 65 + c] = kv;
        }
        __syncthreads();
        float sc[8][4];
        #pragma unroll
        for (int i = 0; i < 8; i++)
            #pragma unroll
            for (int j = 0; j < 4; j++) sc[i][j] = 0.0f;
        for (int d = 0; d < head_dim; d++) {
            float qv[8], kv[4];
            #pragma unroll
            for (int i = 0; i < 8; i++) qv[i] = qt[d * 65 + ty * 8 + i];
            #pragma unroll
            for (int j = 0; j < 4; j++) kv[j] = kt[d * 65 + tx + 16 * j];
            #pragma unroll
            for (int i = 0; i < 8; i++)
                #pragma unroll
                for (int j = 0; j < 4; j++) sc[i][j] += qv[i] * kv[j];
        }
        #pragma unroll
        for (int i = 0; i < 8; i++) {
            const int r = ty * 8 + i, pos = first_pos + r;
            float mx = -__int_as_float(0x7f800000);
            #pragma unroll
            for (int j = 0; j < 4; j++) {
                const int key = k0 + tx + 16 * j;
                if (r >= rows || key > pos || key >= last_key) sc[i][j] = -__int_as_float(0x7f800000);
                mx = fmaxf(mx, sc[i][j]);
            }
            for (int o = 8; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float m_new = fmaxf(m[i], mx);
            const bool empty = m_new == -__int_as_float(0x7f800000);
            const float correction = empty ? 1.0f : expf(m[i] - m_new);
            float sum = 0.0f;
            #pragma unroll
            for (int j = 0; j < 4; j++) {
                const float p = empty ? 0.0f : expf(sc[i][j] - m_new);
                ps[r * 65 + tx + 16 * j] = p;
                sum += p;
            }
            for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            l[i] = l[i] * correction + sum;
            m[i] = m_new;
            #pragma unroll
            for (int j = 0; j < 8; j++) acc[i][j] *= correction;
        }
        __syncthreads();
        // The value tile reuses the key tile's memory (two blocks fit on an SM that way).
        for (int idx = tid; idx < 64 * head_dim; idx += 128) {
            const int c = idx / head_dim, d = idx % head_dim;
            const int j = k0 + c;
            float vv = 0.0f;
            if (j < last_key) {
                const long long base = paged_offset(table, j, tokens_per_page, page_stride, kv_dim, kvh, head_dim) + d;
                vv = a2f(v_cache[base]);
            }
            vs[c * head_dim + d] = vv;
        }
        __syncthreads();
        for (int c = 0; c < 64; c++) {
            float pv[8];
            #pragma unroll
            for (int i = 0; i < 8; i++) pv[i] = ps[(ty * 8 + i) * 65 + c];
            #pragma unroll
            for (int j = 0; j < 8; j++) {
                if (j < dcols) {
                    const float v = vs[c * head_dim + tx + 16 * j];
                    #pragma unroll
                    for (int i = 0; i < 8; i++) acc[i][j] += pv[i] * v;
                }
            }
        }
    }
    #pragma unroll
    for (int i = 0; i < 8; i++) {
        const int r = ty * 8 + i;
        if (r >= rows) continue;
        const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        #pragma unroll
        for (int j = 0; j < 8; j++)
            if (j < dcols) out[(long long)(q_start + tile * 64 + r) * out_stride + h * head_dim + tx + 16 * j] = f2a(acc[i][j] * inv);
    }
}

"""#

    /// The tensor-core prefill attention (bf16 only: `mma.sync` on bf16 operands).
    static let attentionTensorCore = #"""
// Tensor-core causal attention of a 64-query tile of one sequence and one head over its pages:
// bf16 mma.sync (m16n8k16, fp32 accumulation), online softmax in registers, 64 keys at a time.
// grid (sequences * max_tiles, heads), block 128 (4 warps of 16 query rows). Dynamic shared
// memory: 3 * 64 * (HD + 8) bf16 (queries, keys, values; rows padded against bank conflicts).
__device__ __forceinline__ void mma_bf16(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
__device__ __forceinline__ unsigned shared_address(const void* p) {
    unsigned a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}
// o (16 rows x HD, as HD/8 m16n8 accumulators) += P (16 x 16, A fragments pa) · the 16 value rows
// from v_rows (row stride QS, in shared memory), the values read with ldmatrix.trans: lane l gives
// row (l % 8) of matrix l / 8.
template <int HD, int QS>
__device__ __forceinline__ void mma_pv(float (*o)[4], const unsigned* pa, const bf16* v_rows, int lane) {
    const int lm_key = ((lane >> 3) & 1) * 8 + (lane & 7), lm_dim = (lane >> 4) * 8;
    #pragma unroll
    for (int np = 0; np < HD / 16; np++) {
        unsigned b[4];
        const unsigned address = shared_address(v_rows + lm_key * QS + np * 16 + lm_dim);
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3]) : "r"(address));
        mma_bf16(o[2 * np], pa, b[0], b[1]);
        mma_bf16(o[2 * np + 1], pa, b[2], b[3]);
    }
}
// 16 bytes global -> shared without passing through registers; src_bytes 0 zero-fills.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(shared_address(smem)), "l"(gmem), "r"(src_bytes));
}
template <int HD>
__device__ __forceinline__ void attn_prefill_tc_body(const bf16* q, int q_stride, const bf16* k_cache, const bf16* v_cache,
        const int* query_starts, const int* context_lengths, const int* page_tables, int max_pages, int max_tiles,
        int heads, int kv_heads, int tokens_per_page, long long page_stride, float scale, bf16* out, int out_stride,
        int skip_single, unsigned char* smem_raw) {
    constexpr int QS = HD + 8;
    constexpr int VPR = HD / 8;
    bf16* qs = (bf16*)smem_raw;
    bf16* ks = qs + 64 * QS;
    bf16* vs = ks + 64 * QS;
    const int s = blockIdx.x / max_tiles, tile = blockIdx.x % max_tiles, h = blockIdx.y;
    const int q_start = query_starts[s], q_count = query_starts[s + 1] - q_start;
    if (tile * 64 >= q_count) return;
    if (skip_single && q_count == 1) return;   // a decode token of a mixed step: attn_decode_tc has it
    const int context = context_lengths[s];
    const int first_pos = context - q_count + tile * 64;
    const int rows = min(64, q_count - tile * 64);
    const int kvh = h / (heads / kv_heads), kv_dim = kv_heads * HD;
    const int* table = page_tables + (long long)s * max_pages;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const uint4 zero4 = make_uint4(0u, 0u, 0u, 0u);

    for (int idx = tid; idx < 64 * VPR; idx += 128) {
        const int r = idx / VPR, c = (idx % VPR) * 8;
        uint4 v = zero4;
        if (r < rows) v = *(const uint4*)(q + (long long)(q_start + tile * 64 + r) * q_stride + (long long)h * HD + c);
        *(uint4*)(qs + r * QS + c) = v;
    }
    __syncthreads();
    const int r0 = warp * 16 + g;
    unsigned qa[HD / 16][4];
    #pragma unroll
    for (int kc = 0; kc < HD / 16; kc++) {
        qa[kc][0] = *(const unsigned*)(qs + r0 * QS + kc * 16 + 2 * t4);
        qa[kc][1] = *(const unsigned*)(qs + (r0 + 8) * QS + kc * 16 + 2 * t4);
        qa[kc][2] = *(const unsigned*)(qs + r0 * QS + kc * 16 + 8 + 2 * t4);
        qa[kc][3] = *(const unsigned*)(qs + (r0 + 8) * QS + kc * 16 + 8 + 2 * t4);
    }
    float o[HD / 8][4];
    #pragma unroll
    for (int n = 0; n < HD / 8; n++) { o[n][0] = 0.0f; o[n][1] = 0.0f; o[n][2] = 0.0f; o[n][3] = 0.0f; }
    const float NEG = -__int_as_float(0x7f800000);
    float m0 = NEG, m1 = NEG, l0 = 0.0f, l1 = 0.0f;
    const float sl2 = scale * 1.4426950408889634f;
    const int pos0 = first_pos + r0, pos1 = pos0 + 8;
    const int last_key = min(context, first_pos + rows);

    for (int k0 = 0; k0 < last_key; k0 += 64) {
        __syncthreads();
        for (int idx = tid; idx < 64 * VPR; idx += 128) {
            const int c = idx / VPR, d = (idx % VPR) * 8;
            const int j = k0 + c;
            uint4 kv = zero4, vv = zero4;
            if (j < last_key) {
                const long long base = paged_offset(table, j, tokens_per_page, page_stride, kv_dim, kvh, HD) + d;
                kv = *(const uint4*)(k_cache + base);
                vv = *(const uint4*)(v_cache + base);
            }
            *(uint4*)(ks + c * QS + d) = kv;
            *(uint4*)(vs + c * QS + d) = vv;
        }
        __syncthreads();
        float sc[8][4];
        #pragma unroll
        for (int n = 0; n < 8; n++) {
            sc[n][0] = 0.0f; sc[n][1] = 0.0f; sc[n][2] = 0.0f; sc[n][3] = 0.0f;
            #pragma unroll
            for (int kc = 0; kc < HD / 16; kc++) {
                const unsigned b0 = *(const unsigned*)(ks + (n * 8 + g) * QS + kc * 16 + 2 * t4);
                const unsigned b1 = *(const unsigned*)(ks + (n * 8 + g) * QS + kc * 16 + 8 + 2 * t4);
                mma_bf16(sc[n], qa[kc], b0, b1);
            }
        }
        float mx0 = NEG, mx1 = NEG;
        #pragma unroll
        for (int n = 0; n < 8; n++) {
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = k0 + n * 8 + 2 * t4 + (e & 1);
                const int pos = e < 2 ? pos0 : pos1;
                const float v = (key <= pos && key < last_key) ? sc[n][e] * sl2 : NEG;
                sc[n][e] = v;
                if (e < 2) mx0 = fmaxf(mx0, v); else mx1 = fmaxf(mx1, v);
            }
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1)); mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1)); mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        const float mu0 = mn0 == NEG ? 0.0f : mn0, mu1 = mn1 == NEG ? 0.0f : mn1;
        const float c0 = exp2f(m0 - mu0), c1 = exp2f(m1 - mu1);
        m0 = mn0; m1 = mn1;
        float s0 = 0.0f, s1 = 0.0f;
        #pragma unroll
        for (int n = 0; n < 8; n++) {
            sc[n][0] = exp2f(sc[n][0] - mu0); sc[n][1] = exp2f(sc[n][1] - mu0);
            sc[n][2] = exp2f(sc[n][2] - mu1); sc[n][3] = exp2f(sc[n][3] - mu1);
            s0 += sc[n][0] + sc[n][1];
            s1 += sc[n][2] + sc[n][3];
        }
        l0 = l0 * c0 + s0;
        l1 = l1 * c1 + s1;
        #pragma unroll
        for (int n = 0; n < HD / 8; n++) { o[n][0] *= c0; o[n][1] *= c0; o[n][2] *= c1; o[n][3] *= c1; }
        #pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            unsigned pa[4];
            pa[0] = pack_bf16x2(sc[2 * kk][0], sc[2 * kk][1]);
            pa[1] = pack_bf16x2(sc[2 * kk][2], sc[2 * kk][3]);
            pa[2] = pack_bf16x2(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
            pa[3] = pack_bf16x2(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
            mma_pv<HD, QS>(o, pa, vs + kk * 16 * QS, lane);
        }
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1); l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1); l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float i0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, i1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    #pragma unroll
    for (int n = 0; n < HD / 8; n++) {
        const int col = h * HD + n * 8 + 2 * t4;
        if (r0 < rows)
            *(unsigned*)(out + (long long)(q_start + tile * 64 + r0) * out_stride + col) = pack_bf16x2(o[n][0] * i0, o[n][1] * i0);
        if (r0 + 8 < rows)
            *(unsigned*)(out + (long long)(q_start + tile * 64 + r0 + 8) * out_stride + col) = pack_bf16x2(o[n][2] * i1, o[n][3] * i1);
    }
}
#define ATTN_PREFILL_TC(HD) \
extern "C" __global__ void __launch_bounds__(128) attn_prefill_tc##HD(const bf16* q, int q_stride, const bf16* k_cache, \
        const bf16* v_cache, const int* query_starts, const int* context_lengths, const int* page_tables, int max_pages, \
        int max_tiles, int heads, int kv_heads, int tokens_per_page, long long page_stride, float scale, bf16* out, \
        int out_stride, int skip_single) { \
    extern __shared__ __align__(16) unsigned char smem_tc[]; \
    attn_prefill_tc_body<HD>(q, q_stride, k_cache, v_cache, query_starts, context_lengths, page_tables, max_pages, \
        max_tiles, heads, kv_heads, tokens_per_page, page_stride, scale, out, out_stride, skip_single, smem_tc); \
}
ATTN_PREFILL_TC(16)
ATTN_PREFILL_TC(32)
ATTN_PREFILL_TC(64)
ATTN_PREFILL_TC(128)

"""#
}
