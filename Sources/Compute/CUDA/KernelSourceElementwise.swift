/// CUDA C source of the element-wise kernels (compiled at run time by NVRTC; no headers, so
/// bf16 is handled as its 16 bits). Activations are bf16, the residual stream and logits f32.
enum KernelSource {
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
// Sum over the block (any multiple of 32 threads up to 1024); every thread gets the result.
__device__ float block_sum(float v) {
    __shared__ float partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < warps ? partial[lane] : 0.0f;
    return warp_sum(v);
}
"""#

    static let elementwise = #"""
extern "C" __global__ void embedding(const int* ids, const bf16* table, float* out, int dim) {
    const long long row = ids[blockIdx.x];
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        out[(long long)blockIdx.x * dim + i] = bf2f(table[row * dim + i]);
}

// residual += x (when x is not null), then out = rmsnorm(residual) * w. One block per row.
extern "C" __global__ void add_rmsnorm(float* residual, const bf16* x, int x_stride, const bf16* w, bf16* out,
                                       int out_stride, int dim, float eps) {
    float* r = residual + (long long)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = r[i];
        if (x) { v += bf2f(x[(long long)blockIdx.x * x_stride + i]); r[i] = v; }
        ss += v * v;
    }
    ss = block_sum(ss);
    const float scale = rsqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        out[(long long)blockIdx.x * out_stride + i] = f2bf(r[i] * scale * bf2f(w[i]));
}

// Rotary embedding (rotate-half form) in place. grid (tokens, heads), block half.
extern "C" __global__ void rope(bf16* x, int stride, const int* positions, int head_dim, const float* inv_freq) {
    const int half = head_dim / 2;
    const int j = threadIdx.x;
    if (j >= half) return;
    bf16* v = x + (long long)blockIdx.x * stride + (long long)blockIdx.y * head_dim;
    float s, c;
    sincosf((float)positions[blockIdx.x] * inv_freq[j], &s, &c);
    const float x1 = bf2f(v[j]), x2 = bf2f(v[j + half]);
    v[j] = f2bf(x1 * c - x2 * s);
    v[j + half] = f2bf(x2 * c + x1 * s);
}

// out = silu(gate) * up over rows; each row of gate_up is gate (n) then up (n).
extern "C" __global__ void silu_mul(const bf16* gate_up, int stride, bf16* out, int n, long long total) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / n, col = i % n;
        const float g = bf2f(gate_up[row * stride + col]);
        const float u = bf2f(gate_up[row * stride + n + col]);
        out[i] = f2bf(g / (1.0f + expf(-g)) * u);
    }
}

// Keys and values of each token to its slot. One block per token.
extern "C" __global__ void kv_write(const bf16* k, const bf16* v, int stride, bf16* k_cache, bf16* v_cache,
                                    const int* slots, int kv_dim, int tokens_per_page, long long page_stride) {
    const int slot = slots[blockIdx.x];
    if (slot < 0) return;
    const long long base = (long long)(slot / tokens_per_page) * page_stride + (long long)(slot % tokens_per_page) * kv_dim;
    for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
        k_cache[base + i] = k[(long long)blockIdx.x * stride + i];
        v_cache[base + i] = v[(long long)blockIdx.x * stride + i];
    }
}

extern "C" __global__ void gather_rows(const bf16* x, int x_stride, const int* rows, bf16* out, int out_stride, int cols) {
    for (int i = threadIdx.x; i < cols; i += blockDim.x)
        out[(long long)blockIdx.x * out_stride + i] = x[(long long)rows[blockIdx.x] * x_stride + i];
}

// out[m][n] = x[m] . w[n] for up to 4 rows of x (decode): one warp per output column n, 16-byte
// loads of the weight row, fp32 accumulation. k, ldx and ldw are multiples of 8; x and w 16-byte aligned.
__device__ __forceinline__ void bf16x8_to_float(uint4 v, float* f) {
    f[0] = __uint_as_float(v.x << 16); f[1] = __uint_as_float(v.x & 0xffff0000u);
    f[2] = __uint_as_float(v.y << 16); f[3] = __uint_as_float(v.y & 0xffff0000u);
    f[4] = __uint_as_float(v.z << 16); f[5] = __uint_as_float(v.z & 0xffff0000u);
    f[6] = __uint_as_float(v.w << 16); f[7] = __uint_as_float(v.w & 0xffff0000u);
}
extern "C" __global__ void __launch_bounds__(256) gemv_bf16(const bf16* __restrict__ x, int ldx, const bf16* __restrict__ w, int ldw,
                                                           void* out, int ldo, int out_f32, int m_count, int n, int k) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row = blockIdx.x * 8 + warp;
    if (row >= n) return;
    const bf16* wr = w + (long long)row * ldw;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    #pragma unroll 4
    for (int kk = lane * 8; kk < k; kk += 256) {
        float wf[8];
        bf16x8_to_float(*(const uint4*)(wr + kk), wf);
        #pragma unroll
        for (int m = 0; m < 4; m++) {
            if (m < m_count) {
                float xf[8];
                bf16x8_to_float(*(const uint4*)(x + (long long)m * ldx + kk), xf);
                #pragma unroll
                for (int i = 0; i < 8; i++) acc[m] += wf[i] * xf[i];
            }
        }
    }
    #pragma unroll
    for (int m = 0; m < 4; m++) {
        if (m < m_count) {
            const float v = warp_sum(acc[m]);
            if (lane == 0) {
                if (out_f32) ((float*)out)[(long long)m * ldo + row] = v;
                else ((bf16*)out)[(long long)m * ldo + row] = f2bf(v);
            }
        }
    }
}

extern "C" __global__ void bias_add(bf16* out, int stride, const float* bias, int cols) {
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        bf16* p = out + (long long)blockIdx.x * stride + i;
        *p = f2bf(bf2f(*p) + bias[i]);
    }
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
