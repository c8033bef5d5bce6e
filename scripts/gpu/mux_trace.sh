#!/usr/bin/env bash
# Where the host time of `bench mux --device cuda` goes, variants side by side in one call: each
# variant runs `llmux bench mux` with LLMUX_TRACE_JOBS=1 (a line per job launched and collected)
# and scripts/gpu/mux_trace.py summarises every lane: launches, host time, launches over 3 ms, time
# in flight, and the idle gap between one job's collection and the next launch on the lane.
# Variants are lines "NAME ENV=VALUE … --bench-option VALUE …" in $VARIANTS ("default" sets
# nothing): words with "=" are environment, the rest go to `bench mux`.
# Usage: LLMUX_BIN=… [VARIANTS=…] bash scripts/gpu/mux_trace.sh [POLICIES] [ALPHA] [RATE] [DURATION]
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
POLICIES=${1:-mux,temporal}; ALPHA=${2:-2.1}; RATE=${3:-40}; DURATION=${4:-8}
BIN=${LLMUX_BIN:-dist/llmux}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
source "$HERE/cuda_env.sh" > /dev/null
export LLMUX_KERNEL_CACHE=/tmp/llmux-kernels LLMUX_CACHE=/tmp/llmux-cache
VARIANTS=${VARIANTS:-default}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1
names=()
while read -r name words; do
    [ -n "$name" ] || continue
    names+=("$name")
    split_variant "$words"; envs=$VARIANT_ENV; args=$VARIANT_ARGS
    # shellcheck disable=SC2086
    env LLMUX_TRACE_JOBS=1 $envs "$BIN" bench mux --device cuda --policies "$POLICIES" --alpha "$ALPHA" --rates "$RATE" \
        --duration "$DURATION" $args --json "$OUT/mux-$name.json" > "$OUT/mux-$name.log" 2> "$OUT/trace-$name.log"
    echo "bench mux $name: rc=$?"
    python3 "$HERE/mux_trace.py" "$OUT/trace-$name.log" ${POLICIES//,/ } > "$OUT/lanes-$name.txt"
    grep -E "^[0-9.]+ +\| (mux|spatial|temporal) " "$OUT/mux-$name.log" | head -8
done <<< "$VARIANTS"
for name in "${names[@]}"; do
    echo; echo "#### $name"; cat "$OUT/lanes-$name.txt"
done
python3 - "$OUT" "${names[@]}" <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
print("\nvariant          policy     rate  tok/s  seconds  TPOT p50 ms  TTFT p50 ms  SLO@10")
for name in names:
    try:
        runs = json.load(open(f"{out}/mux-{name}.json"))["runs"]
    except Exception as error:
        print(name, "missing:", error)
        continue
    for run in runs:
        o = run["overall"]
        print(f"{name:<16} {run['policy']:<9} {run['rate']:>5} {o['tokensPerSecond']:>6.0f} {run['seconds']:>8.1f} "
              f"{o['tpotP50'] * 1000:>12.1f} {o['ttftP50'] * 1000:>12.1f} {100 * o['sloAttainment10']:>6.0f}%")
PY
