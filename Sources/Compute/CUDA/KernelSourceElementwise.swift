/// CUDA C source of the element-wise kernels (compiled at run time by NVRTC; no headers, so
/// bf16 is handled as its 16 bits). Activations, weights and KV pages are of type `act` (bf16, or
/// f32 in the reference precision), the residual stream and logits f32.
enum KernelSource {
    /// The activation type `act` and its conversions for `precision`.
    static func activationType(_ precision: CUDAPrecision) -> String {
        switch precision {
        case .bf16:
            return """
typedef bf16 act;
__device__ __forceinline__ float a2f(act v) { return bf2f(v); }
__device__ __forceinline__ act f2a(float f) { return f2bf(f); }

"""
        case .f32:
            return """
typedef float act;
__device__ __forceinline__ float a2f(act v) { return v; }
__device__ __forceinline__ act f2a(float f) { return f; }

"""
        }
    }

    static let common = #"""
typedef unsigned short bf16;
__device__ __forceinline__ float bf2f(bf16 v) { return __uint_as_float(((unsigned)v) << 16); }
__device__ __forceinline__ bf16 f2bf(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7f800000u) == 0x7f800000u) return (bf16)((u >> 16) | ((u & 0xffffu) ? 0x40u : 0u));
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16)(u >> 16);
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Sum (MAX false) or maximum (MAX true) over the block (any multiple of 32 threads up to 1024);
// every thread gets the result.
template <bool MAX> __device__ float block_reduce(float v) {
    __shared__ float partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < warps ? partial[lane] : (MAX ? -__int_as_float(0x7f800000) : 0.0f);
    return MAX ? warp_max(v) : warp_sum(v);
}
__device__ __forceinline__ float block_sum(float v) { return block_reduce<false>(v); }
__device__ __forceinline__ float block_max(float v) { return block_reduce<true>(v); }
"""#

    static let elementwise = #"""
extern "C" __global__ void embedding(const int* ids, const act* table, float* out, int dim) {
    const long long row = ids[blockIdx.x];
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        out[(long long)blockIdx.x * dim + i] = a2f(table[row * dim + i]);
}

// residual += x (when x is not null), then out = rmsnorm(residual) * w. One block per row; rows
// of at most 8 * blockDim values stay in registers between the sum of squares and the output.
extern "C" __global__ void add_rmsnorm(float* residual, const act* x, int x_stride, const act* w, act* out,
                                       int out_stride, int dim, float eps) {
    float* r = residual + (long long)blockIdx.x * dim;
    const act* xr = x ? x + (long long)blockIdx.x * x_stride : 0;
    act* o = out + (long long)blockIdx.x * out_stride;
    if (dim <= 8 * (int)blockDim.x) {
        float v[8];
        float ss = 0.0f;
        #pragma unroll
        for (int k = 0; k < 8; k++) {
            const int i = threadIdx.x + k * blockDim.x;
            v[k] = 0.0f;
            if (i < dim) {
                v[k] = xr ? r[i] + a2f(xr[i]) : r[i];
                ss += v[k] * v[k];
            }
        }
        ss = block_sum(ss);
        const float scale = rsqrtf(ss / (float)dim + eps);
        #pragma unroll
        for (int k = 0; k < 8; k++) {
            const int i = threadIdx.x + k * blockDim.x;
            if (i < dim) {
                if (xr) r[i] = v[k];
                o[i] = f2a(v[k] * scale * a2f(w[i]));
            }
        }
        return;
    }
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = r[i];
        if (xr) { v += a2f(xr[i]); r[i] = v; }
        ss += v * v;
    }
    ss = block_sum(ss);
    const float scale = rsqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = f2a(r[i] * scale * a2f(w[i]));
}

// Rotary embedding (rotate-half form) in place. grid (tokens, heads), block half.
extern "C" __global__ void rope(act* x, int stride, const int* positions, int head_dim, const float* inv_freq) {
    const int half = head_dim / 2;
    const int j = threadIdx.x;
    if (j >= half) return;
    act* v = x + (long long)blockIdx.x * stride + (long long)blockIdx.y * head_dim;
    float s, c;
    sincosf((float)positions[blockIdx.x] * inv_freq[j], &s, &c);
    const float x1 = a2f(v[j]), x2 = a2f(v[j + half]);
    v[j] = f2a(x1 * c - x2 * s);
    v[j + half] = f2a(x2 * c + x1 * s);
}

// out = silu(gate) * up over rows; each row of gate_up is gate (n) then up (n).
extern "C" __global__ void silu_mul(const act* gate_up, int stride, act* out, int n, int rows) {
    // grid (column blocks, row blocks): no 64-bit division per element (it cost 9.6 us a layer at 256 rows).
    for (int row = blockIdx.y; row < rows; row += gridDim.y) {
        const act* g_row = gate_up + (long long)row * stride;
        act* o_row = out + (long long)row * n;
        for (int col = blockIdx.x * blockDim.x + threadIdx.x; col < n; col += gridDim.x * blockDim.x) {
            const float g = a2f(g_row[col]);
            const float u = a2f(g_row[n + col]);
            o_row[col] = f2a(g / (1.0f + expf(-g)) * u);
        }
    }
}

// silu_mul with 8 values per thread in one vector load each of gate, up and out (16 bytes in
// bf16): the scalar kernel moved ~1.6 TB/s at 2,048 rows of Llama-3-8B's MLP on an H100. The host
// calls it only when n, the row stride and both base addresses are multiples of 8 values.
template <int N> struct alignas(N * sizeof(act)) act_vec { act v[N]; };
extern "C" __global__ void silu_mul_v8(const act* gate_up, int stride, act* out, int n, int rows) {
    typedef act_vec<8> V;
    const int vectors = n / 8;
    for (int row = blockIdx.y; row < rows; row += gridDim.y) {
        const V* g = (const V*)(gate_up + (long long)row * stride);
        const V* u = (const V*)(gate_up + (long long)row * stride + n);
        V* o = (V*)(out + (long long)row * n);
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < vectors; c += gridDim.x * blockDim.x) {
            const V gv = g[c], uv = u[c];
            V ov;
            #pragma unroll
            for (int k = 0; k < 8; k++) {
                const float x = a2f(gv.v[k]);
                ov.v[k] = f2a(x / (1.0f + expf(-x)) * a2f(uv.v[k]));
            }
            o[c] = ov;
        }
    }
}

// Keys and values of each token to its slot. One block per token.
extern "C" __global__ void kv_write(const act* k, const act* v, int stride, act* k_cache, act* v_cache,
                                    const int* slots, int kv_dim, int tokens_per_page, long long page_stride) {
    const int slot = slots[blockIdx.x];
    if (slot < 0) return;
    const long long base = (long long)(slot / tokens_per_page) * page_stride + (long long)(slot % tokens_per_page) * kv_dim;
    for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
        k_cache[base + i] = k[(long long)blockIdx.x * stride + i];
        v_cache[base + i] = v[(long long)blockIdx.x * stride + i];
    }
}

// rope then kv_write: grid (tokens, query heads + kv heads), block half a head (at least 32).
// Block y rotates head y of the token's row in place; a key head's block also stores its rotated
// key and its value head at the token's slot.
extern "C" __global__ void rope_kv_write(act* qkv, int stride, const int* positions, int q_heads, int kv_heads, int head_dim,
                                         const float* inv_freq, act* k_cache, act* v_cache, const int* slots,
                                         int tokens_per_page, long long page_stride) {
    const int half = head_dim / 2, j = threadIdx.x, h = blockIdx.y;
    if (j >= half) return;
    act* row = qkv + (long long)blockIdx.x * stride;
    act* v = row + h * head_dim;
    float s, c;
    sincosf((float)positions[blockIdx.x] * inv_freq[j], &s, &c);
    const float x1 = a2f(v[j]), x2 = a2f(v[j + half]);
    const act y1 = f2a(x1 * c - x2 * s), y2 = f2a(x2 * c + x1 * s);
    v[j] = y1;
    v[j + half] = y2;
    const int slot = slots[blockIdx.x];
    if (h < q_heads || slot < 0) return;
    const int kv_dim = kv_heads * head_dim, kvh = h - q_heads;
    const long long base = (long long)(slot / tokens_per_page) * page_stride + (long long)(slot % tokens_per_page) * kv_dim
                         + (long long)kvh * head_dim;
    k_cache[base + j] = y1;
    k_cache[base + j + half] = y2;
    const act* value = row + (q_heads + kv_heads) * head_dim + kvh * head_dim;
    v_cache[base + j] = value[j];
    v_cache[base + j + half] = value[j + half];
}

extern "C" __global__ void gather_rows(const act* x, int x_stride, const int* rows, act* out, int out_stride, int cols) {
    for (int i = threadIdx.x; i < cols; i += blockDim.x)
        out[(long long)blockIdx.x * out_stride + i] = x[(long long)rows[blockIdx.x] * x_stride + i];
}


extern "C" __global__ void bias_add(act* out, int stride, const float* bias, int cols) {
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        act* p = out + (long long)blockIdx.x * stride + i;
        *p = f2a(a2f(*p) + bias[i]);
    }
}

// Greedy rows without top log-probabilities in two kernels, so a row's vocabulary is read by many
// SMs: grid (rows, chunks), block 256, each block writes its chunk's (max, first argmax, sum of
// exp(x - max)); argmax_combine (one warp per row) merges them into the row's token id and its
// log-probability.
// Folds (om, os, oi) into (m, sum, index): the larger maximum, its first index, and the sums of
// exponentials rescaled to it (an empty side has maximum -inf).
__device__ __forceinline__ void merge_max_sum(float& m, float& sum, int& index, float om, float os, int oi) {
    const float NEG = -__int_as_float(0x7f800000);
    if (om == NEG) return;
    if (m == NEG) { m = om; sum = os; index = oi; return; }
    const float nm = fmaxf(m, om);
    sum = sum * expf(m - nm) + os * expf(om - nm);
    if (om > m || (om == m && oi < index)) index = oi;
    m = nm;
}
__device__ __forceinline__ void warp_merge_max_sum(float& m, float& sum, int& index) {
    for (int o = 16; o > 0; o >>= 1) {
        const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, sum, o);
        const int oi = __shfl_xor_sync(0xffffffffu, index, o);
        merge_max_sum(m, sum, index, om, os, oi);
    }
}
extern "C" __global__ void argmax_partial(const float* logits, int stride, int vocab, float* partial) {
    __shared__ float sv[8], ss[8];
    __shared__ int si[8];
    const float* x = logits + (long long)blockIdx.x * stride;
    const int chunk = (vocab + gridDim.y - 1) / gridDim.y;
    const int begin = blockIdx.y * chunk, end = min(vocab, begin + chunk);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float m = -__int_as_float(0x7f800000), sum = 0.0f;
    int index = 0x7fffffff;
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) merge_max_sum(m, sum, index, x[i], 1.0f, i);
    warp_merge_max_sum(m, sum, index);
    if (lane == 0) { sv[warp] = m; ss[warp] = sum; si[warp] = index; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) merge_max_sum(m, sum, index, sv[w], ss[w], si[w]);
        float* out = partial + ((long long)blockIdx.x * gridDim.y + blockIdx.y) * 3;
        out[0] = m; out[1] = sum; out[2] = __int_as_float(index);
    }
}
extern "C" __global__ void argmax_combine(const float* partial, int chunks, int* ids, float* logprobs) {
    const float* p = partial + (long long)blockIdx.x * chunks * 3;
    float m = -__int_as_float(0x7f800000), sum = 0.0f;
    int index = 0x7fffffff;
    for (int c = threadIdx.x; c < chunks; c += 32) merge_max_sum(m, sum, index, p[c * 3], p[c * 3 + 1], __float_as_int(p[c * 3 + 2]));
    warp_merge_max_sum(m, sum, index);
    // A row of -inf only (no finite logit) picks token 0, as the one-block kernel does.
    if (threadIdx.x == 0) { ids[blockIdx.x] = index == 0x7fffffff ? 0 : index; logprobs[blockIdx.x] = -logf(sum); }
}

// One block per row of f32 logits: argmax (first on ties), log-sum-exp, and the top `k`
// log-probabilities (value descending, index ascending on ties). Row r writes k + 1 entries
// to ids/logprobs: the argmax first, then the top k.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }
extern "C" __global__ void sample_rows(const float* logits, int stride, int vocab, int k, int* ids, float* logprobs) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const float* x = logits + (long long)blockIdx.x * stride;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    float prev_v = __int_as_float(0x7f800000); int prev_i = -1;
    float lse = 0.0f;
    for (int round = 0; round <= k; round++) {
        float bv = -__int_as_float(0x7f800000); int bi = 0x7fffffff;
        for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
            const float v = x[i];
            const bool after = v < prev_v || (v == prev_v && i > prev_i);
            if (after && better(v, i, bv, bi)) { bv = v; bi = i; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
        }
        __syncthreads();
        if (lane == 0) { sv[warp] = bv; si[warp] = bi; }
        __syncthreads();
        bv = lane < warps ? sv[lane] : -__int_as_float(0x7f800000);
        bi = lane < warps ? si[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
        }
        if (round == 0) {
            float s = 0.0f;
            for (int i = threadIdx.x; i < vocab; i += blockDim.x) s += expf(x[i] - bv);
            s = block_sum(s);
            lse = bv + logf(s);
            if (threadIdx.x == 0) { ids[blockIdx.x * (k + 1)] = bi; logprobs[blockIdx.x * (k + 1)] = bv - lse; }
            prev_v = __int_as_float(0x7f800000); prev_i = -1;   // the top-k list starts again at the top
            if (k > 0) {
                if (threadIdx.x == 0) { ids[blockIdx.x * (k + 1) + 1] = bi; logprobs[blockIdx.x * (k + 1) + 1] = bv - lse; }
                prev_v = bv; prev_i = bi;
                round++;   // the argmax is also the first of the top k
            }
        } else if (threadIdx.x == 0) {
            ids[blockIdx.x * (k + 1) + round] = bi;
            logprobs[blockIdx.x * (k + 1) + round] = bv - lse;
        }
        if (round > 0) { prev_v = bv; prev_i = bi; }
    }
}
"""#
}
