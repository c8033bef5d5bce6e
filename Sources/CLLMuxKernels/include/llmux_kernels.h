// CPU kernels of LLMux's Compute backend, written by hand in C (AVX2/FMA/F16C with a scalar
// fallback chosen at run time). All arithmetic is fp32; weights may be stored as f32, f16 or bf16
// and are widened on the fly, so a memory-mapped checkpoint is used in place.
#ifndef LLMUX_KERNELS_H
#define LLMUX_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Weight element types (match Compute.DType.kernelCode).
#define LLMUX_F32 0
#define LLMUX_F16 1
#define LLMUX_BF16 2

// Thread pool used by every kernel below. Default: the number of online CPUs (or the environment
// variable LLMUX_NUM_THREADS when set). LLMUX_NO_SIMD=1 forces the portable paths.
void llmux_set_num_threads(int n);
int llmux_get_num_threads(void);
// 1 when the AVX2+FMA+F16C paths are in use, 0 for the portable fallback.
int llmux_simd_level(void);

// y[M,N] = x[M,K] * W^T (+ bias[N] when bias != NULL), W stored row-major as N rows of K
// elements of type w_dtype (the Hugging Face nn.Linear layout). x, y, bias are f32.
// ldx/ldy: row strides of x and y in elements (>= K and >= N).
void llmux_matmul(const float *x, int ldx, const void *w, int w_dtype, const float *bias,
                  float *y, int ldy, int M, int N, int K);

// dst[i] = (float)src[i] for src of type src_dtype; f32 -> bf16 / f16 with round-to-nearest-even.
void llmux_convert_to_f32(const void *src, int src_dtype, float *dst, size_t n);
void llmux_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
void llmux_f32_to_f16(const float *src, uint16_t *dst, size_t n);

// Embedding gather: out[t,:] = table[ids[t],:] widened to f32. table is [vocab, dim] of dtype.
void llmux_embedding(const int32_t *ids, int n_tokens, const void *table, int dtype, int dim, float *out);

// RMSNorm (Llama): y = x / sqrt(mean(x^2) + eps) * w. w of type w_dtype, length dim.
void llmux_rmsnorm(const float *x, const void *w, int w_dtype, float *y, int rows, int dim, float eps);
// Fused residual add then RMSNorm: residual += x; y = rmsnorm(residual).
void llmux_add_rmsnorm(float *residual, const float *x, const void *w, int w_dtype, float *y,
                       int rows, int dim, float eps);
// residual += x
void llmux_add_inplace(float *residual, const float *x, size_t n);

// Rotary embedding, Hugging Face Llama convention (rotate_half: pairs (i, i + rot_dim/2)).
// x: [n_tokens, row_stride] where heads start at x + t*row_stride + h*head_dim, n_heads of them.
// inv_freq has head_dim/2 entries (already scaled for linear / llama3 rope scaling).
void llmux_rope(float *x, int row_stride, const int32_t *positions, int n_tokens, int n_heads,
                int head_dim, const float *inv_freq);

// SiLU-gated MLP activation: out[r,i] = silu(gate[r,i]) * up[r,i], with gate at
// gate_up + r*ld and up at gate_up + r*ld + inter. out is [rows, inter] contiguous.
void llmux_silu_mul(const float *gate_up, int ld, float *out, int rows, int inter);

// Paged KV cache. A slot is page * block_size + offset. Key of token slot s, kv head h lives at
// k_cache + page(s) * page_stride + offset(s) * kv_dim + h * head_dim (kv_dim = n_kv_heads*head_dim);
// same for v_cache. page_stride is in floats, so pages may hold other layers/models in between.
// k, v: [n_tokens, row_stride], heads at + h*head_dim.
void llmux_kv_write(const float *k, const float *v, int row_stride, float *k_cache, float *v_cache,
                    const int32_t *slots, int n_tokens, int n_kv_heads, int head_dim,
                    int block_size, int64_t page_stride);

// Causal attention over the paged cache for a flat batch of sequences (prefill chunks and
// decode tokens mixed). For sequence s: its queries are tokens query_start[s] .. query_start[s+1]-1
// of the flat batch, at positions context_lens[s] - n_q .. context_lens[s] - 1; each query attends
// to cached tokens 0 .. its own position (the cache already holds this step's keys).
// q: [n_tokens, q_stride], head h at + h*head_dim; out: [n_tokens, n_heads*head_dim] contiguous.
// block_tables: [n_seqs, max_blocks] page ids. Grouped-query: head h uses kv head h / (n_heads/n_kv_heads).
void llmux_paged_attention(const float *q, int q_stride, float *out,
                           const float *k_cache, const float *v_cache,
                           int n_heads, int n_kv_heads, int head_dim, int block_size, int64_t page_stride,
                           int n_seqs, const int32_t *query_start, const int32_t *context_lens,
                           const int32_t *block_tables, int max_blocks, float scale);

// In-place softmax over each row of x[rows, n]; returns nothing. log_softmax writes log-probs.
void llmux_softmax(float *x, int rows, int n);
void llmux_log_softmax(const float *x, float *out, int n);

// ---- Benchmark helpers ----
// Monotonic clock in seconds.
double llmux_now_seconds(void);
// GB/s of a multithreaded read-and-sum over a buffer of max(bytes, 256 MB); best of `repeats`.
double llmux_measure_read_bandwidth(size_t bytes, int repeats);
// Runs the kernel benchmarks (read bandwidth, GEMM GFLOP/s, GEMV GB/s, dispatch latency) and
// writes a text report into out. Returns the number of characters written, or -1 on failure.
int llmux_bench_kernels(char *out, size_t out_len);
// One parallel region that does nothing (measures thread pool dispatch latency).
void llmux_bench_dispatch_noop(void);

#ifdef __cplusplus
}
#endif
#endif
