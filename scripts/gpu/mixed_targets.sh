#!/usr/bin/env bash
# Latency targets under `mux` with mixed jobs: `bench mux --check --policies mux-mixed,mux-mixed-slo`
# side by side, the same workload without and with each model's targets.
# Parts (PARTS, default "check 8b four"):
#   check  gpu-check of the golden fixtures against transformers (bf16 and f32 kernels);
#   8b     one Llama-3-8B at RATES (default 40) for each target scale in SCALES (default 2,3);
#   four   the four colocated models at alpha 2.1, RATES, policies FOUR_POLICIES (default
#          mux-slo,mux-mixed,mux-mixed-slo,temporal) at the default target scale (5).
# $MUX_ARGS adds arguments to every `bench mux` (e.g. "--prompt-mean 1500 --max-tokens-per-step 8192"),
# $TAG to the names of the outputs. Logs and JSON go to $OUT; a table of every run is printed last.
# Usage: LLMUX_BIN=… PARTS="8b" SCALES=2 bash scripts/gpu/mixed_targets.sh
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/common.sh"
export LLMUX_CACHE=/tmp/llmux-cache
PARTS=${PARTS:-check 8b four}; RATES=${RATES:-40}; SCALES=${SCALES:-2,3}; DURATION=${DURATION:-8}
FOUR_POLICIES=${FOUR_POLICIES:-mux-slo,mux-mixed,mux-mixed-slo,temporal}
TAG=${TAG:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for part in $PARTS; do
    case $part in
    check)
        REF=/tmp/llmux-reference-logits
        [ -d "$REF" ] || PYTHONUNBUFFERED=1 python3 "$HERE/reference_logits.py" Tests/Fixtures/golden "$REF" > "$OUT/reference-logits.log" 2>&1
        for precision in bf16 f32; do
            LLMUX_CUDA_PRECISION=$precision "$BIN" gpu-check --fixtures Tests/Fixtures/golden --reference-logits "$REF" --device cuda \
                > "$OUT/gpucheck-$precision.log" 2>&1
            echo "gpu-check $precision: rc=$? $(grep -c '| ok$' "$OUT/gpucheck-$precision.log") rows ok; $(tail -1 "$OUT/gpucheck-$precision.log")"
        done ;;
    8b)
        [ -f "$LLMUX_CACHE/bench-mux-llama3-8b/config.json" ] ||
            "$BIN" bench mux --device cuda --policies temporal --rates 1 --duration 1 > "$OUT/write-bf16.log" 2>&1
        for scale in ${SCALES//,/ }; do
            "$BIN" bench mux --device cuda --check --model llama3-8b=$LLMUX_CACHE/bench-mux-llama3-8b \
                --policies mux-mixed,mux-mixed-slo --target-scale "$scale" --rates "$RATES" --duration "$DURATION" ${MUX_ARGS:-} \
                --json "$OUT/mixed-slo-8b$TAG-scale$scale.json" > "$OUT/mixed-slo-8b$TAG-scale$scale.log" 2>&1
            echo "8b, target scale $scale: rc=$?"
        done ;;
    four)
        "$BIN" bench mux --device cuda --check --alpha 2.1 --policies "$FOUR_POLICIES" --rates "$RATES" --duration "$DURATION" ${MUX_ARGS:-} \
            --json "$OUT/mixed-slo-four$TAG.json" > "$OUT/mixed-slo-four$TAG.log" 2>&1
        echo "four models: rc=$?" ;;
    esac
done
grep -h '^\[.*check [a-z-]*:' "$OUT"/mixed-slo-*.log 2>/dev/null | sed 's/^\[[^]]*\] //' | sort | uniq -c
python3 - "$OUT" <<'PY'
import glob, json, sys
print(f"{'file':24} {'policy':14} {'rate':>4} {'tok/s':>6} {'window':>6} {'TTFT p50/p99 ms':>15} {'TPOT p50/p99 ms':>15} {'ITL p50/p99 ms':>15} {'SLO@5':>5} {'SLO@10':>6} {'end s':>5}")
for path in sorted(glob.glob(sys.argv[1] + "/mixed-slo-*.json")):
    result = json.load(open(path))
    for run in result["runs"]:
        o = run["overall"]
        itl = f"{o['itlP50']*1e3:7.1f}/{o['itlP99']*1e3:7.1f}" if o.get('itlP50') is not None else f"{'-':>15}"
        print(f"{path.split('/')[-1][10:-5]:24} {run['policy']:14} {run['rate']:4.0f} {o['tokensPerSecond']:6.0f} {run['windowTokensPerSecond']:6.0f} "
              f"{o['ttftP50']*1e3:7.1f}/{o['ttftP99']*1e3:7.1f} {o['tpotP50']*1e3:7.1f}/{o['tpotP99']*1e3:7.1f} {itl} "
              f"{o['sloAttainment5']*100:5.1f} {o['sloAttainment10']*100:6.1f} {run['seconds']:5.1f}")
PY
