#!/usr/bin/env bash
# Kernel times of LLMux decode steps under Nsight Compute (ncu, one metric: GPU duration), summed
# by kernel name. Usage: LLMUX_BIN=… bash profile_decode.sh MODEL BATCH [STEPS]   (CSV to $OUT)
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${LLMUX_BIN:-$HERE/llmux-cuda}
MODEL=$1 BATCH=$2 STEPS=${3:-2}
OUT=${OUT:-$PWD/gpu-out}
source "$HERE/cuda_env.sh" > /dev/null
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
LLMUX_PROFILE_DECODE=1 timeout 300 "$NCU" --profile-from-start off --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv \
    "$BIN" bench engine --device cuda --model "$MODEL" --batches "$BATCH" --prompt-length 128 --decode-steps "$STEPS" \
    > "$OUT/ncu_b$BATCH.csv" 2> "$OUT/ncu_b$BATCH.err"
python3 - "$OUT/ncu_b$BATCH.csv" "$STEPS" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
head, body = rows[0], rows[1:]
name, value = head.index("Kernel Name"), head.index("Metric Value")
total, count = collections.Counter(), collections.Counter()
for r in body:
    key = r[name].split("(")[0][:60]
    total[key] += float(r[value].replace(",", "")) / 1000
    count[key] += 1
steps = int(sys.argv[2])
all_us = sum(total.values())
print(f"{'kernel':60} {'calls/step':>10} {'us/step':>9} {'share':>6}")
for key, us in total.most_common():
    print(f"{key:60} {count[key] / steps:10.1f} {us / steps:9.1f} {100 * us / all_us:5.1f}%")
print(f"{'all (serialised by ncu)':60} {sum(count.values()) / steps:10.1f} {all_us / steps:9.1f}")
PY
