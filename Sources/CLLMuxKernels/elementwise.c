// Conversions, norms, RoPE, activations, KV cache writes, softmax.
#include "llmux_kernels.h"
#include "kernels_internal.h"

#include <math.h>
#include <stdlib.h>

// Minimum elements of work before a kernel is spread over the pool.
#define PAR_MIN_ELEMS 32768

// ---------------------------------------------------------------------------------------------
// Conversions

#if LLMUX_X86
static LLMUX_AVX2 void widen_avx2(const void *src, int dt, float *dst, size_t n) {
    size_t i = 0;
    if (dt == LLMUX_BF16) {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, llmux_load8_bf16((const uint16_t *)src + i));
    } else if (dt == LLMUX_F16) {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, llmux_load8_f16((const uint16_t *)src + i));
    }
    for (; i < n; i++) dst[i] = llmux_load_w(src, dt, i);
}

static LLMUX_AVX2 void to_bf16_avx2(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), qnan = _mm256_set1_epi32(0x40);
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int h = 0; h < 2; h++) {
            __m256i u = _mm256_castps_si256(_mm256_loadu_ps(src + i + 8 * h));
            __m256i isnan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absmask), inf);
            __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
            __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), 16);
            __m256i nanv = _mm256_or_si256(_mm256_srli_epi32(u, 16), qnan);
            r[h] = _mm256_blendv_epi8(rounded, nanv, isnan);
        }
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xD8);
        _mm256_storeu_si256((__m256i *)(dst + i), packed);
    }
    for (; i < n; i++) dst[i] = llmux_f32_to_bf16_1(src[i]);
}

static LLMUX_AVX2 void to_f16_avx2(const float *src, uint16_t *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = llmux_f32_to_f16_1(src[i]);
}
#endif

void llmux_convert_to_f32(const void *src, int src_dtype, float *dst, size_t n) {
    if (src_dtype == LLMUX_F32) { memmove(dst, src, n * sizeof(float)); return; }
#if LLMUX_X86
    if (llmux_internal_simd()) { widen_avx2(src, src_dtype, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = llmux_load_w(src, src_dtype, i);
}

void llmux_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
#if LLMUX_X86
    if (llmux_internal_simd()) { to_bf16_avx2(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = llmux_f32_to_bf16_1(src[i]);
}

void llmux_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
#if LLMUX_X86
    if (llmux_internal_simd()) { to_f16_avx2(src, dst, n); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = llmux_f32_to_f16_1(src[i]);
}

void llmux_embedding(const int32_t *ids, int n_tokens, const void *table, int dtype, int dim, float *out) {
    const size_t es = llmux_dtype_size(dtype);
    for (int t = 0; t < n_tokens; t++)
        llmux_convert_to_f32((const char *)table + (size_t)ids[t] * dim * es, dtype, out + (size_t)t * dim, (size_t)dim);
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

typedef struct {
    float *residual; const float *x; const void *w; int dt; float *y; int rows, dim; float eps; int add;
} norm_args;

static float sumsq_scalar(const float *x, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) { s0 += x[i] * x[i]; s1 += x[i + 1] * x[i + 1]; s2 += x[i + 2] * x[i + 2]; s3 += x[i + 3] * x[i + 3]; }
    for (; i < n; i++) s0 += x[i] * x[i];
    return (s0 + s1) + (s2 + s3);
}

#if LLMUX_X86
static LLMUX_AVX2 void norm_row_avx2(const norm_args *a, int r) {
    const int dim = a->dim;
    float *res = a->add ? a->residual + (size_t)r * dim : NULL;
    const float *xin = a->x + (size_t)r * dim;
    const float *src = res ? res : xin;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    if (res) {
        for (; i + 8 <= dim; i += 8) {
            __m256 v = _mm256_add_ps(_mm256_loadu_ps(res + i), _mm256_loadu_ps(xin + i));
            _mm256_storeu_ps(res + i, v);
            s0 = _mm256_fmadd_ps(v, v, s0);
        }
        float t = llmux_hsum8(s0);
        for (; i < dim; i++) { res[i] += xin[i]; t += res[i] * res[i]; }
        s0 = _mm256_setzero_ps(); s0 = _mm256_insertf128_ps(s0, _mm_set_ss(t), 0);
    } else {
        for (; i + 16 <= dim; i += 16) {
            __m256 v0 = _mm256_loadu_ps(src + i), v1 = _mm256_loadu_ps(src + i + 8);
            s0 = _mm256_fmadd_ps(v0, v0, s0); s1 = _mm256_fmadd_ps(v1, v1, s1);
        }
        for (; i + 8 <= dim; i += 8) { __m256 v = _mm256_loadu_ps(src + i); s0 = _mm256_fmadd_ps(v, v, s0); }
        float t = llmux_hsum8(_mm256_add_ps(s0, s1));
        for (; i < dim; i++) t += src[i] * src[i];
        s0 = _mm256_setzero_ps(); s0 = _mm256_insertf128_ps(s0, _mm_set_ss(t), 0);
    }
    float ss = _mm_cvtss_f32(_mm256_castps256_ps128(s0));
    float scale = 1.0f / sqrtf(ss / (float)dim + a->eps);
    float *y = a->y + (size_t)r * dim;
    __m256 sc = _mm256_set1_ps(scale);
    i = 0;
    for (; i + 8 <= dim; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(src + i), sc), llmux_load8_w(a->w, a->dt, (size_t)i)));
    for (; i < dim; i++) y[i] = src[i] * scale * llmux_load_w(a->w, a->dt, (size_t)i);
}
#endif

static void norm_row_scalar(const norm_args *a, int r) {
    const int dim = a->dim;
    const float *src = a->x + (size_t)r * dim;
    if (a->add) {
        float *res = a->residual + (size_t)r * dim;
        for (int i = 0; i < dim; i++) res[i] += src[i];
        src = res;
    }
    float scale = 1.0f / sqrtf(sumsq_scalar(src, dim) / (float)dim + a->eps);
    float *y = a->y + (size_t)r * dim;
    for (int i = 0; i < dim; i++) y[i] = src[i] * scale * llmux_load_w(a->w, a->dt, (size_t)i);
}

static void norm_task(void *ctx, int ith, int nth) {
    const norm_args *a = ctx;
    int64_t b, e;
    llmux_split(a->rows, ith, nth, 1, &b, &e);
    for (int64_t r = b; r < e; r++) {
#if LLMUX_X86
        if (llmux_internal_simd()) { norm_row_avx2(a, (int)r); continue; }
#endif
        norm_row_scalar(a, (int)r);
    }
}

static int threads_for(size_t elems, int rows) {
    return (elems >= PAR_MIN_ELEMS && rows > 1) ? 0 : 1;
}

void llmux_rmsnorm(const float *x, const void *w, int w_dtype, float *y, int rows, int dim, float eps) {
    if (rows <= 0 || dim <= 0) return;
    norm_args a = {NULL, x, w, w_dtype, y, rows, dim, eps, 0};
    llmux_parallel(norm_task, &a, threads_for((size_t)rows * dim, rows));
}

void llmux_add_rmsnorm(float *residual, const float *x, const void *w, int w_dtype, float *y,
                       int rows, int dim, float eps) {
    if (rows <= 0 || dim <= 0) return;
    norm_args a = {residual, x, w, w_dtype, y, rows, dim, eps, 1};
    llmux_parallel(norm_task, &a, threads_for((size_t)rows * dim, rows));
}

void llmux_add_inplace(float *residual, const float *x, size_t n) {
    // Memory-bound; the compiler vectorises this loop with the baseline ISA.
    for (size_t i = 0; i < n; i++) residual[i] += x[i];
}

// ---------------------------------------------------------------------------------------------
// RoPE

typedef struct {
    float *x; int row_stride; const int32_t *pos; int n_tokens, n_heads, head_dim; const float *inv_freq;
} rope_args;

static void rope_task(void *ctx, int ith, int nth) {
    const rope_args *a = ctx;
    const int half = a->head_dim / 2;
    float stack_cs[2 * 256];
    float *cs = half <= 256 ? stack_cs : malloc(sizeof(float) * 2 * (size_t)half);
    if (!cs) return;
    float *cosv = cs, *sinv = cs + half;
    int64_t b, e;
    llmux_split(a->n_tokens, ith, nth, 1, &b, &e);
    for (int64_t t = b; t < e; t++) {
        float p = (float)a->pos[t];
        for (int j = 0; j < half; j++) {
            float ang = p * a->inv_freq[j];
            cosv[j] = cosf(ang);
            sinv[j] = sinf(ang);
        }
        for (int h = 0; h < a->n_heads; h++) {
            float *v = a->x + (size_t)t * a->row_stride + (size_t)h * a->head_dim;
            float *v2 = v + half;
            for (int j = 0; j < half; j++) { // vectorised by the compiler
                float x1 = v[j], x2 = v2[j];
                v[j] = x1 * cosv[j] - x2 * sinv[j];
                v2[j] = x2 * cosv[j] + x1 * sinv[j];
            }
        }
    }
    if (cs != stack_cs) free(cs);
}

void llmux_rope(float *x, int row_stride, const int32_t *positions, int n_tokens, int n_heads,
                int head_dim, const float *inv_freq) {
    if (n_tokens <= 0 || n_heads <= 0 || head_dim < 2) return;
    rope_args a = {x, row_stride, positions, n_tokens, n_heads, head_dim, inv_freq};
    llmux_parallel(rope_task, &a, threads_for((size_t)n_tokens * n_heads * head_dim, n_tokens));
}

// ---------------------------------------------------------------------------------------------
// SiLU * up

typedef struct { const float *gu; int ld; float *out; int rows, inter; } silu_args;

#if LLMUX_X86
static LLMUX_AVX2 void silu_row_avx2(const float *g, const float *u, float *o, int n) {
    int i = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        __m256 den = _mm256_add_ps(one, llmux_exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv)));
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_div_ps(gv, den), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
#endif

static void silu_task(void *ctx, int ith, int nth) {
    const silu_args *a = ctx;
    int64_t b, e;
    if (a->rows >= nth) {
        llmux_split(a->rows, ith, nth, 1, &b, &e);
    } else { b = 0; e = a->rows; }
    // With fewer rows than threads, split each row's columns instead.
    int64_t c0 = 0, c1 = a->inter;
    if (a->rows < nth) llmux_split(a->inter, ith, nth, 8, &c0, &c1);
    for (int64_t r = b; r < e; r++) {
        const float *g = a->gu + (size_t)r * a->ld + c0, *u = g + a->inter;
        float *o = a->out + (size_t)r * a->inter + c0;
        int n = (int)(c1 - c0);
#if LLMUX_X86
        if (llmux_internal_simd()) { silu_row_avx2(g, u, o, n); continue; }
#endif
        for (int i = 0; i < n; i++) o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

void llmux_silu_mul(const float *gate_up, int ld, float *out, int rows, int inter) {
    if (rows <= 0 || inter <= 0) return;
    silu_args a = {gate_up, ld, out, rows, inter};
    llmux_parallel(silu_task, &a, (size_t)rows * inter >= PAR_MIN_ELEMS ? 0 : 1);
}

// ---------------------------------------------------------------------------------------------
// KV cache write

void llmux_kv_write(const float *k, const float *v, int row_stride, float *k_cache, float *v_cache,
                    const int32_t *slots, int n_tokens, int n_kv_heads, int head_dim,
                    int block_size, int64_t page_stride) {
    const size_t kv_dim = (size_t)n_kv_heads * head_dim;
    for (int t = 0; t < n_tokens; t++) {
        int32_t s = slots[t];
        if (s < 0) continue; // padding token
        size_t off = (size_t)(s / block_size) * (size_t)page_stride + (size_t)(s % block_size) * kv_dim;
        memcpy(k_cache + off, k + (size_t)t * row_stride, kv_dim * sizeof(float));
        memcpy(v_cache + off, v + (size_t)t * row_stride, kv_dim * sizeof(float));
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax

#if LLMUX_X86
static LLMUX_AVX2 float max_avx2(const float *x, int n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    float r = llmux_hmax8(m);
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

#endif

// Returns max of x[0..n).
static float row_max(const float *x, int n) {
    int i = 0;
    float m = -INFINITY;
#if LLMUX_X86
    if (llmux_internal_simd() && n >= 8) {
        return max_avx2(x, n);
    }
#endif
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

#if LLMUX_X86
// out[i] = exp(x[i] - mx) (out may alias x); returns the sum.
static LLMUX_AVX2 float exp_sum_avx2(const float *x, float *out, int n, float mx) {
    __m256 s = _mm256_setzero_ps(), mv = _mm256_set1_ps(mx);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = llmux_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        if (out) _mm256_storeu_ps(out + i, e);
        s = _mm256_add_ps(s, e);
    }
    float r = llmux_hsum8(s);
    for (; i < n; i++) { float e = expf(x[i] - mx); if (out) out[i] = e; r += e; }
    return r;
}
#endif

static float exp_sum(const float *x, float *out, int n, float mx) {
#if LLMUX_X86
    if (llmux_internal_simd()) return exp_sum_avx2(x, out, n, mx);
#endif
    float r = 0;
    for (int i = 0; i < n; i++) { float e = expf(x[i] - mx); if (out) out[i] = e; r += e; }
    return r;
}

typedef struct { float *x; int rows, n; } sm_args;

static void softmax_task(void *ctx, int ith, int nth) {
    const sm_args *a = ctx;
    int64_t b, e;
    llmux_split(a->rows, ith, nth, 1, &b, &e);
    for (int64_t r = b; r < e; r++) {
        float *x = a->x + (size_t)r * a->n;
        float mx = row_max(x, a->n);
        if (mx == -INFINITY) { for (int i = 0; i < a->n; i++) x[i] = 0.0f; continue; }
        float inv = 1.0f / exp_sum(x, x, a->n, mx);
        for (int i = 0; i < a->n; i++) x[i] *= inv;
    }
}

void llmux_softmax(float *x, int rows, int n) {
    if (rows <= 0 || n <= 0) return;
    sm_args a = {x, rows, n};
    llmux_parallel(softmax_task, &a, threads_for((size_t)rows * n, rows));
}

void llmux_log_softmax(const float *x, float *out, int n) {
    if (n <= 0) return;
    float mx = row_max(x, n);
    float lse = mx + logf(exp_sum(x, NULL, n, mx));
    for (int i = 0; i < n; i++) out[i] = x[i] - lse;
}
