/// CUDA C source of the bf16 matrix-vector kernels of decode steps (up to 4 rows of x).
///
/// At one token a decode step is a stream of weight reads; cuBLASLt's kernels for M = 1 reached
/// 84 % of the plain read rate on an H100 (Llama-3-8B shapes, scripts/gpu/probe/gemv_probe.cu),
/// these 91-92 %. One warp per weight row, 16-byte loads that bypass L1 (every weight byte is read
/// once per step), four loads in flight per thread before any arithmetic, fp32 accumulation.
extension KernelSource {
    static let gemv = #"""
__device__ __forceinline__ void bf16x8_to_float(uint4 v, float* f) {
    f[0] = __uint_as_float(v.x << 16); f[1] = __uint_as_float(v.x & 0xffff0000u);
    f[2] = __uint_as_float(v.y << 16); f[3] = __uint_as_float(v.y & 0xffff0000u);
    f[4] = __uint_as_float(v.z << 16); f[5] = __uint_as_float(v.z & 0xffff0000u);
    f[6] = __uint_as_float(v.w << 16); f[7] = __uint_as_float(v.w & 0xffff0000u);
}
__device__ __forceinline__ float dot_bf16x8(uint4 w, uint4 x) {
    float a[8], b[8];
    bf16x8_to_float(w, a);
    bf16x8_to_float(x, b);
    float s = 0.0f;
    #pragma unroll
    for (int i = 0; i < 8; i++) s += a[i] * b[i];
    return s;
}
__device__ __forceinline__ uint4 load_streaming(const uint4* p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
}
// out[m][row] = x[m] . w[row] for M rows of x. grid ceil(n / 8), block 256 (a warp per row).
// k, ldx and ldw are multiples of 8; x and w 16-byte aligned.
template <int M>
__device__ __forceinline__ void gemv_body(const bf16* __restrict__ x, int ldx, const bf16* __restrict__ w, int ldw,
                                          void* out, int ldo, int out_f32, int n, int k) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row = blockIdx.x * 8 + warp;
    if (row >= n) return;
    const uint4* wr = (const uint4*)(w + (long long)row * ldw);
    const int chunks = k >> 3;
    float acc[M];
    #pragma unroll
    for (int m = 0; m < M; m++) acc[m] = 0.0f;
    int c = lane;
    for (; c + 96 < chunks; c += 128) {
        uint4 v[4];
        #pragma unroll
        for (int u = 0; u < 4; u++) v[u] = load_streaming(wr + c + 32 * u);
        #pragma unroll
        for (int u = 0; u < 4; u++)
            #pragma unroll
            for (int m = 0; m < M; m++) acc[m] += dot_bf16x8(v[u], *(const uint4*)(x + (long long)m * ldx + (c + 32 * u) * 8));
    }
    for (; c < chunks; c += 32) {
        const uint4 v = load_streaming(wr + c);
        #pragma unroll
        for (int m = 0; m < M; m++) acc[m] += dot_bf16x8(v, *(const uint4*)(x + (long long)m * ldx + c * 8));
    }
    #pragma unroll
    for (int m = 0; m < M; m++) {
        const float s = warp_sum(acc[m]);
        if (lane == 0) {
            if (out_f32) ((float*)out)[(long long)m * ldo + row] = s;
            else ((bf16*)out)[(long long)m * ldo + row] = f2bf(s);
        }
    }
}
#define GEMV_ROWS(M) \
extern "C" __global__ void __launch_bounds__(256) gemv_bf16_##M(const bf16* __restrict__ x, int ldx, \
        const bf16* __restrict__ w, int ldw, void* out, int ldo, int out_f32, int n, int k) { \
    gemv_body<M>(x, ldx, w, ldw, out, ldo, out_f32, n, k); \
}
GEMV_ROWS(1)
GEMV_ROWS(2)
GEMV_ROWS(3)
GEMV_ROWS(4)
"""#
}
