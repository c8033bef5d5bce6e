#!/usr/bin/env bash
# CPU benchmarks of issues 2 and 3 in one go: `llmux bench engine` (decode/prefill against the
# bandwidth and BLAS rooflines) and `llmux bench mux` (the three policies), pinned to two cores
# with taskset so that a bigger, quieter host (e.g. a lent GPU machine) measures "2 cores".
# Usage: LLMUX_BIN=path/to/llmux scripts/bench/cpu_benchmarks.sh OUT_DIR [CORES]
set -euo pipefail
out=${1:?output folder}
cores=${2:-0,1}
bin=${LLMUX_BIN:-.build/release/llmux}
mkdir -p "$out"
export LLMUX_CACHE=${LLMUX_CACHE:-/tmp/llmux-cache}
pin=(taskset -c "$cores")
command -v taskset >/dev/null || pin=()
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), cores $cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"${pin[@]}" "$bin" bench engine --threads 2 --json "$out/engine.json" 2>"$out/engine.log" | tee "$out/engine.txt"
"${pin[@]}" "$bin" bench mux --threads 2 --rates "${MUX_RATES:-0.5,1,2}" --alpha "${MUX_ALPHA:-2.1}" --duration "${MUX_DURATION:-20}" \
    --json "$out/mux.json" --plot "$out/mux.svg" 2>"$out/mux.log" | tee "$out/mux.txt"
