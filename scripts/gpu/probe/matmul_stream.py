"""Back-to-back bf16 products of one Llama-3-8B decode step at M tokens (32 layers of distinct
weights plus the head), timed as a whole and one product at a time with a sync between: whether
products slow down when they run back to back (power and clocks) or only in isolation.
Usage: python3 matmul_stream.py [M ...]"""
import sys
import time

import torch

shapes = [(6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336)]
layers = [[torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02 for n, k in shapes] for _ in range(32)]
head = torch.randn(128256, 4096, device="cuda", dtype=torch.bfloat16) * 0.02
for m in [int(a) for a in sys.argv[1:]] or [1, 64, 256]:
    xs = {k: torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for k in (4096, 14336)}

    def step():
        for layer in layers:
            for w in layer:
                torch.matmul(xs[w.shape[1]], w.t())
        torch.matmul(xs[4096], head.t())

    step(); torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(5): step()
    torch.cuda.synchronize()
    together = (time.perf_counter() - start) / 5
    alone = 0.0
    for layer in layers:
        for w in layer:
            torch.cuda.synchronize(); t = time.perf_counter(); torch.matmul(xs[w.shape[1]], w.t()); torch.cuda.synchronize()
            alone += time.perf_counter() - t
    flops = 2 * m * (sum(n * k for n, k in shapes) * 32 + 128256 * 4096)
    print(f"M={m}: products of a step back to back {together * 1e3:.2f} ms ({flops / together / 1e12:.0f} TFLOP/s); "
          f"one at a time (32 layers, host sync each) {alone * 1e3:.2f} ms", flush=True)
