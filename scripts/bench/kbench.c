// Stand-alone driver for the C kernels (no SwiftPM needed): correctness spot-check of matmul
// against a double reference, then the benchmark report. Build + run: scripts/bench/run.sh
#include "llmux_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static float frand(unsigned *s) { *s = *s * 1664525u + 1013904223u; return ((float)(*s >> 8) / 16777216.0f) * 2.0f - 1.0f; }

static int check(int M, int N, int K, int dt, int use_bias, int pad) {
    unsigned seed = (unsigned)(M * 131 + N * 7 + K + dt);
    int ldx = K + pad, ldy = N + pad;
    float *x = malloc(sizeof(float) * (size_t)M * ldx), *y = malloc(sizeof(float) * (size_t)M * ldy);
    float *wf = malloc(sizeof(float) * (size_t)N * K), *b = malloc(sizeof(float) * N);
    uint16_t *wh = malloc(2 * (size_t)N * K);
    for (size_t i = 0; i < (size_t)M * ldx; i++) x[i] = frand(&seed);
    for (size_t i = 0; i < (size_t)N * K; i++) wf[i] = frand(&seed);
    for (int i = 0; i < N; i++) b[i] = frand(&seed);
    const void *w = wf;
    if (dt == LLMUX_BF16) { llmux_f32_to_bf16(wf, wh, (size_t)N * K); llmux_convert_to_f32(wh, dt, wf, (size_t)N * K); w = wh; }
    if (dt == LLMUX_F16) { llmux_f32_to_f16(wf, wh, (size_t)N * K); llmux_convert_to_f32(wh, dt, wf, (size_t)N * K); w = wh; }
    llmux_matmul(x, ldx, w, dt, use_bias ? b : NULL, y, ldy, M, N, K);
    double maxerr = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = use_bias ? b[n] : 0, sa = fabs(s);
            for (int k = 0; k < K; k++) { s += (double)x[(size_t)m * ldx + k] * wf[(size_t)n * K + k]; sa += fabs((double)x[(size_t)m * ldx + k] * wf[(size_t)n * K + k]); }
            double e = fabs(y[(size_t)m * ldy + n] - s) / (sa + 1e-30);
            if (e > maxerr) maxerr = e;
        }
    free(x); free(y); free(wf); free(b); free(wh);
    if (maxerr > 1e-5) { printf("FAIL M=%d N=%d K=%d dt=%d bias=%d err=%g\n", M, N, K, dt, use_bias, maxerr); return 1; }
    return 0;
}

int main(int argc, char **argv) {
    int fails = 0;
    int Ms[] = {1, 2, 3, 4, 5, 7, 13, 14, 15, 16, 33, 64, 130};
    int Ns[] = {1, 17, 100, 300};
    int Ks[] = {1, 9, 517, 1030}; // 1030: f32 rows of W over 4 KB (the 8-row GEMV tile at M = 1)
    for (int dt = 0; dt < 3; dt++)
        for (int a = 0; a < 13; a++)
            for (int b = 0; b < 4; b++)
                for (int c = 0; c < 4; c++) fails += check(Ms[a], Ns[b], Ks[c], dt, (a + b + c) & 1, (a + c) % 3);
    printf("matmul spot-check: %d failures\n", fails);
    if (argc > 1 && argv[1][0] == 'q') return fails != 0;
    static char buf[8192];
    llmux_bench_kernels(buf, sizeof buf);
    fputs(buf, stdout);
    return fails != 0;
}
