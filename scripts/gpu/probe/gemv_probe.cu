// Batch-1 decode products of the Llama-3-8B shape (bf16 weights, one token): cuBLAS against
// hand-written GEMV variants, over 32 layers of distinct weights so that L2 holds none of them,
// next to the plain read bandwidth of the same bytes. Prints ms per decode step's products and
// the rate in TB/s. Build: nvcc -O3 -arch=sm_90 -o gemv_probe gemv_probe.cu -lcublas
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <functional>
#include <math.h>
#include <vector>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)
typedef unsigned short bf16;

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ void bf16x8(uint4 v, float* f) {
    f[0] = __uint_as_float(v.x << 16); f[1] = __uint_as_float(v.x & 0xffff0000u);
    f[2] = __uint_as_float(v.y << 16); f[3] = __uint_as_float(v.y & 0xffff0000u);
    f[4] = __uint_as_float(v.z << 16); f[5] = __uint_as_float(v.z & 0xffff0000u);
    f[6] = __uint_as_float(v.w << 16); f[7] = __uint_as_float(v.w & 0xffff0000u);
}
__device__ __forceinline__ float dot8(uint4 w, uint4 x) {
    float a[8], b[8];
    bf16x8(w, a); bf16x8(x, b);
    float s = 0.0f;
    #pragma unroll
    for (int i = 0; i < 8; i++) s += a[i] * b[i];
    return s;
}
__device__ __forceinline__ uint4 load_stream(const uint4* p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
}

// The kernel LLMux had (one warp per row, x read from global memory per chunk).
__global__ void __launch_bounds__(256) gemv_old(const bf16* __restrict__ x, const bf16* __restrict__ w, float* out, int n, int k) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row = blockIdx.x * 8 + warp;
    if (row >= n) return;
    const bf16* wr = w + (long long)row * k;
    float acc = 0.0f;
    #pragma unroll 4
    for (int kk = lane * 8; kk < k; kk += 256) acc += dot8(*(const uint4*)(wr + kk), *(const uint4*)(x + kk));
    acc = warp_sum(acc);
    if (lane == 0) out[row] = acc;
}

// R rows per warp, x staged in shared memory, U chunks of 16 bytes per row loaded before use,
// weights read with a streaming (no L1 allocation) load.
template <int R, int U>
__global__ void __launch_bounds__(256) gemv_rows(const bf16* __restrict__ x, const bf16* __restrict__ w, float* out, int n, int k) {
    extern __shared__ uint4 xs[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int i = threadIdx.x; i < k / 8; i += blockDim.x) xs[i] = ((const uint4*)x)[i];
    __syncthreads();
    const int row0 = (blockIdx.x * 8 + warp) * R;
    if (row0 >= n) return;
    const int chunks = k / 8;
    const uint4* wr[R];
    #pragma unroll
    for (int r = 0; r < R; r++) wr[r] = (const uint4*)(w + (long long)min(row0 + r, n - 1) * k);
    float acc[R];
    #pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.0f;
    int c = lane;
    for (; c + 32 * (U - 1) < chunks; c += 32 * U) {
        uint4 v[R][U];
        #pragma unroll
        for (int u = 0; u < U; u++)
            #pragma unroll
            for (int r = 0; r < R; r++) v[r][u] = load_stream(wr[r] + c + 32 * u);
        #pragma unroll
        for (int u = 0; u < U; u++) {
            const uint4 xv = xs[c + 32 * u];
            #pragma unroll
            for (int r = 0; r < R; r++) acc[r] += dot8(v[r][u], xv);
        }
    }
    for (; c < chunks; c += 32) {
        const uint4 xv = xs[c];
        #pragma unroll
        for (int r = 0; r < R; r++) acc[r] += dot8(load_stream(wr[r] + c), xv);
    }
    #pragma unroll
    for (int r = 0; r < R; r++) {
        const float s = warp_sum(acc[r]);
        if (lane == 0 && row0 + r < n) out[row0 + r] = s;
    }
}

// Reads every byte once (the bandwidth these products could reach).
__global__ void read_all(const uint4* __restrict__ p, long long count, float* sink) {
    float s = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
        const uint4 v = load_stream(p + i);
        s += __uint_as_float(v.x) + __uint_as_float(v.w);
    }
    if (s == 12345.0f) *sink = s;
}

struct Shape { const char* name; int n, k; };

int main() {
    const Shape shapes[] = {{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096}, {"down", 4096, 14336}};
    const int layers = 32;
    const Shape head = {"lm_head", 128256, 4096};
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device %s, %d SMs\n", prop.name, prop.multiProcessorCount);
    // One slab: 32 layers of the four products, then the head.
    size_t layerBytes = 0;
    for (auto& s : shapes) layerBytes += (size_t)s.n * s.k * 2;
    const size_t total = layerBytes * layers + (size_t)head.n * head.k * 2;
    char* slab;
    CHECK(cudaMalloc(&slab, total));
    CHECK(cudaMemset(slab, 0x3c, total));   // small finite bf16 values
    bf16* x; float* out; float* ref;
    CHECK(cudaMalloc(&x, 16384 * 2));
    CHECK(cudaMalloc(&out, 128256 * 4));
    CHECK(cudaMalloc(&ref, 128256 * 4));
    std::vector<bf16> hx(16384);
    for (int i = 0; i < 16384; i++) hx[i] = (bf16)(0x3f80 + (i % 7) - 3);
    CHECK(cudaMemcpy(x, hx.data(), 16384 * 2, cudaMemcpyHostToDevice));
    cublasHandle_t handle;
    cublasCreate(&handle);
    cudaEvent_t a, b;
    cudaEventCreate(&a); cudaEventCreate(&b);

    struct Product { const bf16* w; int n, k; };
    std::vector<Product> step;
    size_t offset = 0;
    for (int l = 0; l < layers; l++)
        for (auto& s : shapes) { step.push_back({(const bf16*)(slab + offset), s.n, s.k}); offset += (size_t)s.n * s.k * 2; }
    step.push_back({(const bf16*)(slab + offset), head.n, head.k});

    auto cublas = [&](const Product& p) {
        const float one = 1.0f, zero = 0.0f;
        cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, p.n, 1, p.k, &one, p.w, CUDA_R_16BF, p.k, x, CUDA_R_16BF, p.k, &zero,
                     out, CUDA_R_32F, p.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    };
    auto old = [&](const Product& p) { gemv_old<<<(p.n + 7) / 8, 256>>>(x, p.w, out, p.n, p.k); };
#define ROWS(R, U) [&](const Product& p) { gemv_rows<R, U><<<(p.n + 8 * R - 1) / (8 * R), 256, p.k * 2>>>(x, p.w, out, p.n, p.k); }
    std::vector<std::pair<const char*, std::function<void(const Product&)>>> variants = {
        {"cublas", cublas}, {"old", old}, {"rows1_u4", ROWS(1, 4)}, {"rows1_u8", ROWS(1, 8)}, {"rows2_u4", ROWS(2, 4)},
        {"rows2_u2", ROWS(2, 2)}, {"rows4_u2", ROWS(4, 2)}, {"rows4_u1", ROWS(4, 1)},
    };
    // Correctness of every variant against cuBLAS on the head and the down product.
    for (auto& v : variants) {
        double worst = 0;
        for (const Product* p : {&step.back(), &step[3]}) {
            cublas(*p); CHECK(cudaMemcpy(ref, out, p->n * 4, cudaMemcpyDeviceToDevice));
            v.second(*p); CHECK(cudaDeviceSynchronize());
            std::vector<float> h1(p->n), h2(p->n);
            cudaMemcpy(h1.data(), ref, p->n * 4, cudaMemcpyDeviceToHost);
            cudaMemcpy(h2.data(), out, p->n * 4, cudaMemcpyDeviceToHost);
            for (int i = 0; i < p->n; i++) worst = fmax(worst, fabs(h1[i] - h2[i]) / fmax(1e-3, fabs(h1[i])));
        }
        printf("check %-10s max rel diff vs cublas %.2e\n", v.first, worst);
    }
    auto timeIt = [&](auto&& body, int reps) {
        body(); CHECK(cudaDeviceSynchronize());
        float best = 1e30f;
        for (int r = 0; r < reps; r++) {
            cudaEventRecord(a);
            body();
            cudaEventRecord(b);
            cudaEventSynchronize(b);
            float ms; cudaEventElapsedTime(&ms, a, b);
            best = fminf(best, ms);
        }
        return best;
    };
    float* sink; CHECK(cudaMalloc(&sink, 4));
    const float readMs = timeIt([&] { read_all<<<prop.multiProcessorCount * 8, 256>>>((const uint4*)slab, total / 16, sink); }, 10);
    char* copyDst; CHECK(cudaMalloc(&copyDst, 1ull << 30));
    const float copyMs = timeIt([&] { cudaMemcpyAsync(copyDst, slab, 1ull << 30, cudaMemcpyDeviceToDevice); }, 10);
    printf("bytes per step %.2f GB; read kernel %.3f ms = %.2f TB/s; copy 1 GiB %.3f ms = %.2f TB/s (read+write)\n",
           total / 1e9, readMs, total / readMs / 1e9, copyMs, 2.0 * (1ull << 30) / copyMs / 1e9);
    printf("%-10s %9s %7s %7s | per product ms (32 layers): qkv o gate_up down head\n", "variant", "step ms", "TB/s", "of read");
    for (auto& v : variants) {
        const float ms = timeIt([&] { for (auto& p : step) v.second(p); }, 5);
        float per[5];
        for (int s = 0; s < 5; s++)
            per[s] = s < 4 ? timeIt([&] { for (int i = s; i < 4 * layers; i += 4) v.second(step[i]); }, 3)
                           : timeIt([&] { v.second(step.back()); }, 3);
        printf("%-10s %9.3f %7.2f %6.0f%% | %.3f %.3f %.3f %.3f %.3f\n", v.first, ms, total / ms / 1e9, 100.0 * readMs / ms,
               per[0], per[1], per[2], per[3], per[4]);
    }
    return 0;
}
