// Bandwidth roofline and kernel throughput measurements (used by the gated benchmark test).
#include "llmux_kernels.h"
#include "kernels_internal.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const float *buf;
    size_t n;
    double sums[256];
} bw_args;

#if LLMUX_X86
// Reads the buffer as groups of 8 rows of 16 KB walked side by side (the access pattern of a GEMV
// over 8 weight rows): a single sequential stream per core keeps too few misses in flight.
static LLMUX_AVX2 double read_sum_avx2(const float *p, size_t n) {
    enum { ROW = 4096, ROWS = 8 };
    __m256 s[ROWS];
    for (int j = 0; j < ROWS; j++) s[j] = _mm256_setzero_ps();
    size_t done = 0;
    for (; done + ROW * ROWS <= n; done += ROW * ROWS) {
        const float *blk = p + done;
        for (size_t i = 0; i < ROW; i += 16) {
            for (int j = 0; j < ROWS; j++) {
                const float *q = blk + (size_t)j * ROW + i;
                s[j] = _mm256_add_ps(s[j], _mm256_add_ps(_mm256_loadu_ps(q), _mm256_loadu_ps(q + 8)));
            }
        }
    }
    __m256 t = _mm256_setzero_ps();
    for (int j = 0; j < ROWS; j++) t = _mm256_add_ps(t, s[j]);
    float r = llmux_hsum8(t);
    for (size_t i = done; i < n; i++) r += p[i];
    return r;
}
#endif

static double read_sum_scalar(const float *p, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) { s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]; }
    for (; i < n; i++) s0 += p[i];
    return (double)s0 + s1 + s2 + s3;
}

static void bw_task(void *ctx, int ith, int nth) {
    bw_args *a = ctx;
    int64_t b, e;
    llmux_split((int64_t)a->n, ith, nth, 1024, &b, &e);
    double s;
#if LLMUX_X86
    if (llmux_internal_simd()) s = read_sum_avx2(a->buf + b, (size_t)(e - b));
    else
#endif
        s = read_sum_scalar(a->buf + b, (size_t)(e - b));
    if (ith < 256) a->sums[ith] = s;
}

static volatile double g_sink;

// One timed pass over buf (n floats); returns GB/s.
static double bw_pass(const float *buf, size_t n) {
    bw_args a = {buf, n, {0}};
    double t0 = llmux_now_seconds();
    llmux_parallel(bw_task, &a, 0);
    double dt = llmux_now_seconds() - t0;
    g_sink += a.sums[0];
    return (double)(n * sizeof(float)) / dt / 1e9;
}

static float *bw_buffer(size_t bytes, size_t *n_out) {
    if (bytes < ((size_t)256 << 20)) bytes = (size_t)256 << 20;
    size_t n = bytes / sizeof(float);
    float *buf = aligned_alloc(64, n * sizeof(float));
    if (buf) for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 1023) * 1e-3f;
    *n_out = n;
    return buf;
}

double llmux_measure_read_bandwidth(size_t bytes, int repeats) {
    if (repeats < 1) repeats = 1;
    size_t n;
    float *buf = bw_buffer(bytes, &n);
    if (!buf) return 0.0;
    double best = 0.0;
    bw_pass(buf, n); // warms the pool and the page tables
    for (int r = 0; r < repeats; r++) {
        double gbs = bw_pass(buf, n);
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}

static void fill_random(float *p, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = ((float)(s >> 8) / 16777216.0f) * 2.0f - 1.0f;
    }
}

// Best time of `reps` calls of matmul on (x, w[i % nw]).
static double time_matmul(const float *x, void *const *w, int nw, int dt, float *y, int M, int N, int K, int reps) {
    double best = 1e30;
    // Warm up on the last matrix so the first timed one (w[0]) was touched nw-1 matrices ago and
    // is no longer in the L3 cache.
    llmux_matmul(x, K, w[nw - 1], dt, NULL, y, N, M, N, K);
    for (int r = 0; r < reps; r++) {
        double t0 = llmux_now_seconds();
        llmux_matmul(x, K, w[r % nw], dt, NULL, y, N, M, N, K);
        double dt_s = llmux_now_seconds() - t0;
        if (dt_s < best) best = dt_s;
    }
    return best;
}

int llmux_bench_kernels(char *out, size_t out_len) {
    if (!out || out_len == 0) return -1;
    size_t used = 0;
#define EMIT(...) do { if (used < out_len) { int w_ = snprintf(out + used, out_len - used, __VA_ARGS__); if (w_ > 0) used += (size_t)w_; } } while (0)
    EMIT("threads=%d simd=%d\n", llmux_get_num_threads(), llmux_simd_level());

    // GEMM M=512, N=K=2048
    {
        int M = 512, N = 2048, K = 2048;
        float *x = malloc(sizeof(float) * (size_t)M * K), *y = malloc(sizeof(float) * (size_t)M * N);
        float *wf = malloc(sizeof(float) * (size_t)N * K);
        uint16_t *wb = malloc(sizeof(uint16_t) * (size_t)N * K);
        if (!x || !y || !wf || !wb) { free(x); free(y); free(wf); free(wb); return -1; }
        fill_random(x, (size_t)M * K, 1); fill_random(wf, (size_t)N * K, 2);
        llmux_f32_to_bf16(wf, wb, (size_t)N * K);
        void *w1[1] = {wf}, *w2[1] = {wb};
        double tf = time_matmul(x, w1, 1, LLMUX_F32, y, M, N, K, 8);
        double tb = time_matmul(x, w2, 1, LLMUX_BF16, y, M, N, K, 8);
        double fl = 2.0 * M * N * K;
        EMIT("gemm M=%d N=%d K=%d: f32 %.1f GFLOP/s, bf16 %.1f GFLOP/s\n", M, N, K, fl / tf / 1e9, fl / tb / 1e9);
        free(x); free(y); free(wf); free(wb);
    }
    // GEMV M=1, N=K=4096; rotate over several weight matrices so the L3 cache does not help.
    {
        int N = 4096, K = 4096, nw = 4;
        float *x = malloc(sizeof(float) * K), *y = malloc(sizeof(float) * (size_t)N * 32);
        float *x32 = malloc(sizeof(float) * (size_t)K * 32);
        void *wf[4] = {0}, *wb[4] = {0};
        int ok = x && y && x32;
        for (int i = 0; i < nw && ok; i++) {
            wf[i] = malloc(sizeof(float) * (size_t)N * K);
            wb[i] = malloc(sizeof(uint16_t) * (size_t)N * K);
            if (!wf[i] || !wb[i]) { ok = 0; break; }
            fill_random(wf[i], (size_t)N * K, 10 + i);
            llmux_f32_to_bf16(wf[i], wb[i], (size_t)N * K);
        }
        if (ok) {
            fill_random(x, K, 3); fill_random(x32, (size_t)K * 32, 4);
            // Interleave the roofline passes with the GEMV runs (best of each) so that a busy
            // neighbour on a shared machine affects both alike.
            size_t nbw;
            float *bwbuf = bw_buffer((size_t)512 << 20, &nbw);
            double bw = 0, tf = 1e30, tb = 1e30;
            if (bwbuf) bw_pass(bwbuf, nbw);
            for (int rep = 0; rep < 8; rep++) {
                if (bwbuf) { double g = bw_pass(bwbuf, nbw); if (g > bw) bw = g; }
                double t = time_matmul(x, wf, nw, LLMUX_F32, y, 1, N, K, 4); if (t < tf) tf = t;
                t = time_matmul(x, wb, nw, LLMUX_BF16, y, 1, N, K, 4); if (t < tb) tb = t;
            }
            free(bwbuf);
            EMIT("read bandwidth (8-row AVX2 read+sum, 512 MB, best of 8): %.2f GB/s\n", bw);
            double bf = 4.0 * N * K, bb = 2.0 * N * K;
            EMIT("gemv M=1 N=%d K=%d: f32 %.2f GB/s (%.0f%% of read bw, %.3f ms), bf16 %.2f GB/s (%.0f%%, %.3f ms)\n",
                 N, K, bf / tf / 1e9, 100.0 * bf / tf / 1e9 / bw, tf * 1e3, bb / tb / 1e9, 100.0 * bb / tb / 1e9 / bw, tb * 1e3);
            // Decode batches: M = 2..32 against bf16 weights.
            int ms[] = {2, 4, 8, 16, 32};
            for (int i = 0; i < 5; i++) {
                double t = time_matmul(x32, wb, nw, LLMUX_BF16, y, ms[i], N, K, 10);
                EMIT("decode M=%d bf16: %.3f ms (%.1f GB/s W, %.1f GFLOP/s)\n", ms[i], t * 1e3, bb / t / 1e9,
                     2.0 * ms[i] * N * K / t / 1e9);
            }
        }
        for (int i = 0; i < nw; i++) { free(wf[i]); free(wb[i]); }
        free(x); free(y); free(x32);
        if (!ok) return -1;
    }
    // Paged attention, Llama-3-8B-like heads (32 query heads, 8 kv heads, head_dim 128, pages of 16).
    {
        const int H = 32, KV = 8, D = 128, B = 16, L = 512, nb = L / B, S = 8;
        const int64_t ps = (int64_t)B * KV * D;
        float *kc = malloc(sizeof(float) * (size_t)ps * nb * S), *vc = malloc(sizeof(float) * (size_t)ps * nb * S);
        float *q = malloc(sizeof(float) * (size_t)L * H * D), *o = malloc(sizeof(float) * (size_t)L * H * D);
        int32_t *bt = malloc(sizeof(int32_t) * (size_t)nb * S);
        if (kc && vc && q && o && bt) {
            fill_random(kc, (size_t)ps * nb * S, 7); fill_random(vc, (size_t)ps * nb * S, 8);
            fill_random(q, (size_t)L * H * D, 9);
            for (int i = 0; i < nb * S; i++) bt[i] = (i * 7919) % (nb * S); // scattered pages
            int32_t qs[S + 1], cl[S];
            qs[0] = 0; qs[1] = L; cl[0] = L;
            double best = 1e30;
            for (int r = 0; r < 4; r++) {
                double t0 = llmux_now_seconds();
                llmux_paged_attention(q, H * D, o, kc, vc, H, KV, D, B, ps, 1, qs, cl, bt, nb, 0.0884f);
                double t = llmux_now_seconds() - t0;
                if (t < best) best = t;
            }
            double fl = 4.0 * H * D * (double)L * (L + 1) / 2;
            EMIT("attention prefill L=%d (32q/8kv heads, d=128): %.2f ms, %.1f GFLOP/s\n", L, best * 1e3, fl / best / 1e9);
            for (int s = 0; s < S; s++) { qs[s] = s; cl[s] = L; }
            qs[S] = S;
            best = 1e30;
            for (int r = 0; r < 10; r++) {
                double t0 = llmux_now_seconds();
                llmux_paged_attention(q, H * D, o, kc, vc, H, KV, D, B, ps, S, qs, cl, bt, nb, 0.0884f);
                double t = llmux_now_seconds() - t0;
                if (t < best) best = t;
            }
            EMIT("attention decode %d seqs x ctx %d: %.3f ms (%.1f GB/s of K/V)\n", S, L, best * 1e3,
                 (double)S * 2 * L * KV * D * 4 / best / 1e9);
        }
        free(kc); free(vc); free(q); free(o); free(bt);
    }
    // Dispatch latency of an empty-ish kernel.
    {
        float a[64], b[64];
        fill_random(a, 64, 5); fill_random(b, 64, 6);
        int reps = 20000;
        double t0 = llmux_now_seconds();
        for (int r = 0; r < reps; r++) llmux_bench_dispatch_noop();
        double t = (llmux_now_seconds() - t0) / reps;
        EMIT("pool dispatch (no-op parallel region): %.2f us\n", t * 1e6);
    }
#undef EMIT
    return (int)used;
}

static void noop_task(void *ctx, int ith, int nth) { (void)ctx; (void)ith; (void)nth; }
void llmux_bench_dispatch_noop(void) { llmux_parallel(noop_task, NULL, 0); }
