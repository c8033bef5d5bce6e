// Causal attention over a paged KV cache, flat batch of prefill chunks and decode tokens.
// Work item = (sequence, kv head, range of that kv head's query heads, block of up to QB queries):
// the heads sharing a kv head are processed together so each key/value chunk is read once for all
// of them. Items are taken dynamically by the pool threads. Keys are walked in page-sized chunks
// with an online (streaming) softmax per (query, head) row, all in fp32.
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
    int group;           // query heads per kv head
    int hsplit;          // sub-ranges of a group's heads that become separate items
    int64_t *item_start; // prefix sums of items per sequence (n_seqs + 1)
    _Atomic int64_t next;
    int64_t n_items;
} attn_args;

// ---- per-row primitives: scores of one query row against nk keys, softmax update, V accumulation

static void scores_scalar(const float *q, const float *kp, size_t kv_dim, int nk, int d, float scale, float *s) {
    for (int j = 0; j < nk; j++) {
        const float *k = kp + (size_t)j * kv_dim;
        float a = 0;
        for (int i = 0; i < d; i++) a += q[i] * k[i];
        s[j] = a * scale;
    }
}

static void accum_scalar(float *acc, float corr, const float *p, const float *vp, size_t kv_dim, int nk, int d) {
    for (int i = 0; i < d; i++) acc[i] *= corr;
    for (int j = 0; j < nk; j++) {
        const float *v = vp + (size_t)j * kv_dim;
        for (int i = 0; i < d; i++) acc[i] += p[j] * v[i];
    }
}

// s[0..n) -> exp(s - new max) in place; updates running max m and sum l; returns the rescale factor.
static float softmax_update_scalar(float *s, int n, float *m, float *l) {
    float mx = *m;
    for (int j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    float corr = expf(*m - mx), sum = 0; // corr = 0 on the first chunk (m = -inf)
    for (int j = 0; j < n; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
    *l = *l * corr + sum;
    *m = mx;
    return corr;
}

#if LLMUX_X86
static LLMUX_AVX2 void scores_avx2(const float *q, const float *kp, size_t kv_dim, int nk, int d, float scale, float *s) {
    int j = 0;
    const int d8 = d & ~7;
    for (; j + 4 <= nk; j += 4) {
        const float *k0 = kp + (size_t)j * kv_dim, *k1 = k0 + kv_dim, *k2 = k1 + kv_dim, *k3 = k2 + kv_dim;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < d8; i += 8) {
            __m256 qv = _mm256_loadu_ps(q + i);
            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + i), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + i), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + i), a3);
        }
        __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
        __m128 r = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
        float tail[4] = {0, 0, 0, 0};
        for (int i = d8; i < d; i++) { tail[0] += q[i] * k0[i]; tail[1] += q[i] * k1[i]; tail[2] += q[i] * k2[i]; tail[3] += q[i] * k3[i]; }
        r = _mm_mul_ps(_mm_add_ps(r, _mm_loadu_ps(tail)), _mm_set1_ps(scale));
        _mm_storeu_ps(s + j, r);
    }
    for (; j < nk; j++) {
        const float *k = kp + (size_t)j * kv_dim;
        __m256 a = _mm256_setzero_ps();
        for (int i = 0; i < d8; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), a);
        float r = llmux_hsum8(a);
        for (int i = d8; i < d; i++) r += q[i] * k[i];
        s[j] = r * scale;
    }
}

static LLMUX_AVX2 float softmax_update_avx2(float *s, int n, float *m, float *l) {
    float mx = *m;
    int j = 0;
    if (n >= 8) {
        __m256 mv = _mm256_set1_ps(mx);
        for (; j + 8 <= n; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + j));
        mx = llmux_hmax8(mv);
    }
    for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    float corr = expf(*m - mx); // 0 on the first chunk (m = -inf)
    __m256 mv = _mm256_set1_ps(mx), sv = _mm256_setzero_ps();
    j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = llmux_exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
        _mm256_storeu_ps(s + j, e);
        sv = _mm256_add_ps(sv, e);
    }
    float sum = llmux_hsum8(sv);
    for (; j < n; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
    *l = *l * corr + sum;
    *m = mx;
    return corr;
}

// acc[0..d) = acc*corr + sum_j p[j] * v_j. Blocks of 64 columns keep 8 independent FMA chains.
static LLMUX_AVX2 void accum_avx2(float *acc, float corr, const float *p, const float *vp, size_t kv_dim, int nk, int d) {
    const __m256 c = _mm256_set1_ps(corr);
    int i = 0;
    for (; i + 64 <= d; i += 64) {
        __m256 a[8];
        for (int u = 0; u < 8; u++) a[u] = _mm256_mul_ps(_mm256_loadu_ps(acc + i + 8 * u), c);
        for (int j = 0; j < nk; j++) {
            const float *v = vp + (size_t)j * kv_dim + i;
            __m256 pj = _mm256_set1_ps(p[j]);
            for (int u = 0; u < 8; u++) a[u] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(v + 8 * u), a[u]);
        }
        for (int u = 0; u < 8; u++) _mm256_storeu_ps(acc + i + 8 * u, a[u]);
    }
    for (; i + 32 <= d; i += 32) {
        __m256 a[4];
        for (int u = 0; u < 4; u++) a[u] = _mm256_mul_ps(_mm256_loadu_ps(acc + i + 8 * u), c);
        for (int j = 0; j < nk; j++) {
            const float *v = vp + (size_t)j * kv_dim + i;
            __m256 pj = _mm256_set1_ps(p[j]);
            for (int u = 0; u < 4; u++) a[u] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(v + 8 * u), a[u]);
        }
        for (int u = 0; u < 4; u++) _mm256_storeu_ps(acc + i + 8 * u, a[u]);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 a = _mm256_mul_ps(_mm256_loadu_ps(acc + i), c);
        for (int j = 0; j < nk; j++)
            a = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(vp + (size_t)j * kv_dim + i), a);
        _mm256_storeu_ps(acc + i, a);
    }
    for (; i < d; i++) {
        float a = acc[i] * corr;
        for (int j = 0; j < nk; j++) a += p[j] * vp[(size_t)j * kv_dim + i];
        acc[i] = a;
    }
}
#endif

static void attend_row(const float *qv, const float *kp, const float *vp, size_t kv_dim, int nk, int d,
                       float scale, float *m, float *l, float *acc, int simd) {
    float s[KCHUNK];
#if LLMUX_X86
    if (simd) {
        scores_avx2(qv, kp, kv_dim, nk, d, scale, s);
        float corr = softmax_update_avx2(s, nk, m, l);
        accum_avx2(acc, corr, s, vp, kv_dim, nk, d);
        return;
    }
#endif
    (void)simd;
    scores_scalar(qv, kp, kv_dim, nk, d, scale, s);
    float corr = softmax_update_scalar(s, nk, m, l);
    accum_scalar(acc, corr, s, vp, kv_dim, nk, d);
}

// ---- work items

static void run_item(const attn_args *a, int s, int64_t local, float *acc, float *m, float *l, int simd) {
    const int n_q = a->query_start[s + 1] - a->query_start[s];
    const int n_qb = (n_q + QB - 1) / QB;
    const int per_kv = a->hsplit * n_qb;
    const int kvh = (int)(local / per_kv);
    const int rest = (int)(local % per_kv);
    const int hs = rest / n_qb, qb = rest % n_qb;
    const int h0 = kvh * a->group + (int)((int64_t)a->group * hs / a->hsplit);
    const int h1 = kvh * a->group + (int)((int64_t)a->group * (hs + 1) / a->hsplit);
    const int nh = h1 - h0;
    const int d = a->head_dim;
    const size_t kv_dim = (size_t)a->n_kv_heads * d;
    const int L = a->context_lens[s];
    const int i0 = qb * QB, i1 = (i0 + QB < n_q) ? i0 + QB : n_q;
    const int rows = (i1 - i0) * nh;
    const int32_t *bt = a->block_tables + (size_t)s * a->max_blocks;
    for (int r = 0; r < rows; r++) { m[r] = -INFINITY; l[r] = 0.0f; }
    memset(acc, 0, sizeof(float) * (size_t)rows * d);
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
            const int n = pos + 1 - t0 < nk ? pos + 1 - t0 : nk;
            const float *qrow = a->q + (size_t)(a->query_start[s] + i) * a->q_stride;
            for (int h = h0; h < h1; h++) {
                const int r = (i - i0) * nh + (h - h0);
                attend_row(qrow + (size_t)h * d, kp, vp, kv_dim, n, d, a->scale, &m[r], &l[r], acc + (size_t)r * d, simd);
            }
        }
        t0 += nk;
    }
    const size_t out_stride = (size_t)a->n_heads * d;
    for (int i = i0; i < i1; i++) {
        for (int h = h0; h < h1; h++) {
            const int r = (i - i0) * nh + (h - h0);
            float *o = a->out + (size_t)(a->query_start[s] + i) * out_stride + (size_t)h * d;
            const float *ac = acc + (size_t)r * d;
            const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
            for (int j = 0; j < d; j++) o[j] = ac[j] * inv;
        }
    }
}

static void attn_task(void *ctx, int ith, int nth) {
    (void)ith; (void)nth;
    attn_args *a = ctx;
    const int simd = llmux_internal_simd();
    const int max_rows = QB * ((a->group + a->hsplit - 1) / a->hsplit);
    float *scratch = malloc(sizeof(float) * (size_t)max_rows * (a->head_dim + 2));
    if (!scratch) return;
    float *m = scratch, *l = scratch + max_rows, *acc = scratch + 2 * max_rows;
    int s = 0;
    for (;;) {
        int64_t item = atomic_fetch_add_explicit(&a->next, 1, memory_order_relaxed);
        if (item >= a->n_items) break;
        // items are handed out in increasing order, so the sequence index only moves forward
        while (a->item_start[s + 1] <= item) s++;
        run_item(a, s, item - a->item_start[s], acc, m, l, simd);
    }
    free(scratch);
}

void llmux_paged_attention(const float *q, int q_stride, float *out,
                           const float *k_cache, const float *v_cache,
                           int n_heads, int n_kv_heads, int head_dim, int block_size, int64_t page_stride,
                           int n_seqs, const int32_t *query_start, const int32_t *context_lens,
                           const int32_t *block_tables, int max_blocks, float scale) {
    if (n_seqs <= 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0) return;
    int64_t stack_items[65];
    int64_t *item_start = n_seqs < 64 ? stack_items : malloc(sizeof(int64_t) * (size_t)(n_seqs + 1));
    if (!item_start) return;
    const int group = n_heads / n_kv_heads;
    const int nth = llmux_get_num_threads();
    // Count (sequence, kv head, query block) items, then split groups of heads while there are
    // too few items to keep every thread busy.
    int64_t base_items = 0;
    double work = 0;
    for (int s = 0; s < n_seqs; s++) {
        int n_q = query_start[s + 1] - query_start[s];
        base_items += (int64_t)n_kv_heads * ((n_q + QB - 1) / QB);
        work += (double)n_q * context_lens[s];
    }
    int hsplit = 1;
    while (hsplit < group && base_items * hsplit < 4 * (int64_t)nth) hsplit *= 2;
    if (hsplit > group) hsplit = group;
    item_start[0] = 0;
    for (int s = 0; s < n_seqs; s++) {
        int n_q = query_start[s + 1] - query_start[s];
        item_start[s + 1] = item_start[s] + (int64_t)n_kv_heads * hsplit * ((n_q + QB - 1) / QB);
    }
    attn_args a = {q, q_stride, out, k_cache, v_cache, n_heads, n_kv_heads, head_dim, block_size, page_stride,
                   n_seqs, query_start, context_lens, block_tables, max_blocks, scale, group, hsplit,
                   item_start, 0, item_start[n_seqs]};
    atomic_init(&a.next, 0);
    if (a.n_items > 0) {
        int threads = (a.n_items < 2 || work * n_heads * head_dim < 65536.0) ? 1 : 0;
        llmux_parallel(attn_task, &a, threads);
    }
    if (item_start != stack_items) free(item_start);
}
