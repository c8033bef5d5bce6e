// Replays the 85 matmuls of one llama-100m decode step at batch 1 (bf16 W, the shapes of
// `llmux make-model --preset llama-100m`) against the read bandwidth measured in the same run, and
// per projection. No SwiftPM needed:
//   clang -std=c11 -O3 -ffp-contract=fast -fno-math-errno -ISources/CLLMuxKernels/include \
//     Sources/CLLMuxKernels/*.c scripts/bench/decode_step.c -o /tmp/decode_step -lpthread -lm
//   /tmp/decode_step [REPEATS]
#include "llmux_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
typedef struct { int N, K; } shape;
int main(int argc, char **argv) {
    int layers = 12, H = 768, KV = 256, I = 2048, V = 32000;
    shape per[7] = {{H,H},{KV,H},{KV,H},{H,H},{I,H},{I,H},{H,I}};
    int nm = layers * 7 + 1;
    void **w = malloc(sizeof(void*) * nm); shape *s = malloc(sizeof(shape) * nm);
    size_t total = 0;
    for (int i = 0; i < nm; i++) {
        s[i] = i == nm - 1 ? (shape){V, H} : per[i % 7];
        size_t b = (size_t)s[i].N * s[i].K * 2;
        w[i] = aligned_alloc(64, (b + 63) / 64 * 64);
        memset(w[i], 0x3c, b);
        total += b;
    }
    float *x = aligned_alloc(64, 4 * 32768), *y = aligned_alloc(64, 4 * 32768);
    for (int i = 0; i < 8192; i++) x[i] = 0.001f * i;
    double bw = llmux_measure_read_bandwidth(512u << 20, 4);
    int reps = argc > 1 ? atoi(argv[1]) : 50;
    double best = 1e9, sum = 0;
    for (int r = 0; r < reps + 3; r++) {
        double t0 = llmux_now_seconds();
        for (int i = 0; i < nm; i++) llmux_matmul(x, s[i].K, w[i], 2, NULL, y, s[i].N, 1, s[i].N, s[i].K);
        double t = llmux_now_seconds() - t0;
        if (r >= 3) { sum += t; if (t < best) best = t; }
    }
    double cls[8] = {0}; size_t clsb[8] = {0};
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < nm; i++) {
            double t0 = llmux_now_seconds();
            llmux_matmul(x, s[i].K, w[i], 2, NULL, y, s[i].N, 1, s[i].N, s[i].K);
            int c = i == nm - 1 ? 7 : i % 7;
            cls[c] += llmux_now_seconds() - t0; clsb[c] += (size_t)s[i].N * s[i].K * 2;
        }
    const char *nm_[8] = {"q","k","v","o","gate","up","down","lm_head"};
    for (int c = 0; c < 8; c++) printf("%-8s %6.3f ms/step %5.1f GB/s\n", nm_[c], cls[c] / reps * 1e3, clsb[c] / cls[c] / 1e9);
    printf("bytes %.1f MB, bw %.1f GB/s, floor %.3f ms; step best %.3f ms (%.0f%%), mean %.3f ms (%.0f%%)\n",
           total / 1e6, bw, total / bw / 1e6, best * 1e3, 100 * total / bw / 1e9 / best, sum / reps * 1e3, 100 * total / bw / 1e9 / (sum / reps));
    return 0;
}
