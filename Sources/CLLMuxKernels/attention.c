// Causal attention over a paged KV cache, flat batch of prefill chunks and decode tokens.
// Work item = (sequence, head, block of up to QB queries); items are taken dynamically by the pool.
// Each item walks the keys in page-sized chunks with an online (streaming) softmax per query.
#include "llmux_kernels.h"
#include "kernels_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#define QB 16       // queries per work item
#define KCHUNK 64   // keys scored at once (bounded by the page size too)

typedef struct {
    const float *q; int q_stride; float *out;
    const float *k_cache, *v_cache;
    int n_heads, n_kv_heads, head_dim, block_size; int64_t page_stride;
    int n_seqs; const int32_t *query_start, *context_lens, *block_tables; int max_blocks; float scale;
    int64_t *item_start; // prefix sums of items per sequence (n_seqs + 1)
    _Atomic int64_t next;
    int64_t n_items;
} attn_args;

static float dot_scalar(const float *a, const float *b, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_scale_scalar(float *acc, float corr, const float *v, float p, int n) {
    for (int i = 0; i < n; i++) acc[i] = acc[i] * corr + p * v[i];
}

#if LLMUX_X86
static LLMUX_AVX2 float dot_avx2(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = llmux_hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
#endif

// One query against keys [t0, t0+nk) stored contiguously with stride kv_dim (one page chunk).
// Updates running max m, sum l and accumulator acc (head_dim floats).
static void attend_chunk_scalar(const float *qv, const float *kp, const float *vp, size_t kv_dim, int nk, int d,
                                float scale, float *m, float *l, float *acc) {
    float s[KCHUNK];
    float mx = *m;
    for (int j = 0; j < nk; j++) { s[j] = dot_scalar(qv, kp + (size_t)j * kv_dim, d) * scale; mx = s[j] > mx ? s[j] : mx; }
    float corr = expf(*m - mx); // 0 on the first chunk (m = -inf)
    float sum = 0;
    for (int j = 0; j < nk; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
    *l = *l * corr + sum;
    *m = mx;
    for (int i = 0; i < d; i++) acc[i] *= corr;
    for (int j = 0; j < nk; j++) axpy_scale_scalar(acc, 1.0f, vp + (size_t)j * kv_dim, s[j], d);
}

#if LLMUX_X86
static LLMUX_AVX2 void attend_chunk_avx2(const float *qv, const float *kp, const float *vp, size_t kv_dim, int nk,
                                         int d, float scale, float *m, float *l, float *acc) {
    float s[KCHUNK];
    float mx = *m;
    for (int j = 0; j < nk; j++) { s[j] = dot_avx2(qv, kp + (size_t)j * kv_dim, d) * scale; mx = s[j] > mx ? s[j] : mx; }
    float corr = expf(*m - mx); // 0 on the first chunk (m = -inf)
    float sum = 0;
    int j = 0;
    {
        __m256 mv = _mm256_set1_ps(mx), sv = _mm256_setzero_ps();
        for (; j + 8 <= nk; j += 8) {
            __m256 e = llmux_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
            _mm256_storeu_ps(s + j, e);
            sv = _mm256_add_ps(sv, e);
        }
        sum = llmux_hsum8(sv);
    }
    for (; j < nk; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
    *l = *l * corr + sum;
    *m = mx;
    // acc = acc*corr + sum_j s[j] * v_j, vectorised over head_dim in 16/8-wide strips.
    int i = 0;
    __m256 c = _mm256_set1_ps(corr);
    for (; i + 16 <= d; i += 16) {
        __m256 a0 = _mm256_mul_ps(_mm256_loadu_ps(acc + i), c), a1 = _mm256_mul_ps(_mm256_loadu_ps(acc + i + 8), c);
        for (int jj = 0; jj < nk; jj++) {
            const float *v = vp + (size_t)jj * kv_dim + i;
            __m256 p = _mm256_set1_ps(s[jj]);
            a0 = _mm256_fmadd_ps(p, _mm256_loadu_ps(v), a0);
            a1 = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8), a1);
        }
        _mm256_storeu_ps(acc + i, a0); _mm256_storeu_ps(acc + i + 8, a1);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 a0 = _mm256_mul_ps(_mm256_loadu_ps(acc + i), c);
        for (int jj = 0; jj < nk; jj++)
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(s[jj]), _mm256_loadu_ps(vp + (size_t)jj * kv_dim + i), a0);
        _mm256_storeu_ps(acc + i, a0);
    }
    for (; i < d; i++) {
        float a = acc[i] * corr;
        for (int jj = 0; jj < nk; jj++) a += s[jj] * vp[(size_t)jj * kv_dim + i];
        acc[i] = a;
    }
}
#endif

static void attend_chunk(const float *qv, const float *kp, const float *vp, size_t kv_dim, int nk, int d,
                         float scale, float *m, float *l, float *acc, int simd) {
#if LLMUX_X86
    if (simd) { attend_chunk_avx2(qv, kp, vp, kv_dim, nk, d, scale, m, l, acc); return; }
#endif
    (void)simd;
    attend_chunk_scalar(qv, kp, vp, kv_dim, nk, d, scale, m, l, acc);
}

static void run_item(const attn_args *a, int s, int64_t local, float *acc, int simd) {
    const int n_q = a->query_start[s + 1] - a->query_start[s];
    const int n_qb = (n_q + QB - 1) / QB;
    const int h = (int)(local / n_qb), qb = (int)(local % n_qb);
    const int group = a->n_heads / a->n_kv_heads;
    const int kvh = h / group;
    const int d = a->head_dim;
    const size_t kv_dim = (size_t)a->n_kv_heads * d;
    const int L = a->context_lens[s];
    const int i0 = qb * QB, i1 = (i0 + QB < n_q) ? i0 + QB : n_q;
    const int32_t *bt = a->block_tables + (size_t)s * a->max_blocks;
    float m[QB], l[QB];
    for (int i = 0; i < i1 - i0; i++) { m[i] = -INFINITY; l[i] = 0.0f; }
    memset(acc, 0, sizeof(float) * (size_t)QB * d);
    const int last_pos = L - n_q + i1 - 1;
    for (int t0 = 0; t0 <= last_pos;) {
        const int blk = t0 / a->block_size, off = t0 % a->block_size;
        int nk = a->block_size - off;
        if (nk > KCHUNK) nk = KCHUNK;
        if (t0 + nk > last_pos + 1) nk = last_pos + 1 - t0;
        const size_t base = (size_t)bt[blk] * (size_t)a->page_stride + (size_t)off * kv_dim + (size_t)kvh * d;
        const float *kp = a->k_cache + base, *vp = a->v_cache + base;
        for (int i = i0; i < i1; i++) {
            const int pos = L - n_q + i;
            if (pos < t0) continue;
            int n = pos + 1 - t0 < nk ? pos + 1 - t0 : nk;
            const float *qv = a->q + (size_t)(a->query_start[s] + i) * a->q_stride + (size_t)h * d;
            attend_chunk(qv, kp, vp, kv_dim, n, d, a->scale, &m[i - i0], &l[i - i0], acc + (size_t)(i - i0) * d, simd);
        }
        t0 += nk;
    }
    const size_t out_stride = (size_t)a->n_heads * d;
    for (int i = i0; i < i1; i++) {
        float *o = a->out + (size_t)(a->query_start[s] + i) * out_stride + (size_t)h * d;
        const float *ac = acc + (size_t)(i - i0) * d;
        float inv = l[i - i0] > 0 ? 1.0f / l[i - i0] : 0.0f;
        for (int j = 0; j < d; j++) o[j] = ac[j] * inv;
    }
}

static void attn_task(void *ctx, int ith, int nth) {
    (void)ith; (void)nth;
    attn_args *a = ctx;
    const int simd = llmux_internal_simd();
    float stack_acc[QB * 256];
    float *acc = a->head_dim <= 256 ? stack_acc : malloc(sizeof(float) * (size_t)QB * a->head_dim);
    if (!acc) return;
    int s = 0;
    for (;;) {
        int64_t item = atomic_fetch_add_explicit(&a->next, 1, memory_order_relaxed);
        if (item >= a->n_items) break;
        // items are handed out in increasing order, so the sequence index only moves forward
        if (a->item_start[s] > item) s = 0;
        while (a->item_start[s + 1] <= item) s++;
        run_item(a, s, item - a->item_start[s], acc, simd);
    }
    if (acc != stack_acc) free(acc);
}

void llmux_paged_attention(const float *q, int q_stride, float *out,
                           const float *k_cache, const float *v_cache,
                           int n_heads, int n_kv_heads, int head_dim, int block_size, int64_t page_stride,
                           int n_seqs, const int32_t *query_start, const int32_t *context_lens,
                           const int32_t *block_tables, int max_blocks, float scale) {
    if (n_seqs <= 0 || n_heads <= 0 || head_dim <= 0) return;
    int64_t stack_items[65];
    int64_t *item_start = n_seqs < 64 ? stack_items : malloc(sizeof(int64_t) * (size_t)(n_seqs + 1));
    if (!item_start) return;
    item_start[0] = 0;
    double work = 0;
    for (int s = 0; s < n_seqs; s++) {
        int n_q = query_start[s + 1] - query_start[s];
        int n_qb = n_q > 0 ? (n_q + QB - 1) / QB : 0;
        item_start[s + 1] = item_start[s] + (int64_t)n_heads * n_qb;
        work += (double)n_q * context_lens[s];
    }
    attn_args a = {q, q_stride, out, k_cache, v_cache, n_heads, n_kv_heads, head_dim, block_size, page_stride,
                   n_seqs, query_start, context_lens, block_tables, max_blocks, scale, item_start, 0, item_start[n_seqs]};
    atomic_init(&a.next, 0);
    if (a.n_items > 0) {
        int threads = (a.n_items < 2 || work * n_heads * head_dim < 65536.0) ? 1 : 0;
        llmux_parallel(attn_task, &a, threads);
    }
    if (item_start != stack_items) free(item_start);
}
