#!/usr/bin/env bash
# Engine switches side by side in one call: the golden fixtures' teacher-forced logits against
# transformers fp32 under each variant, then `bench engine --trace` on the Llama-3-8B shape at
# 256 concurrent sequences (128 in, 128 out) under each: GPU and host time per prefill (mixed)
# step and per decode step, cuBLASLt planning during the prefill steps, output tokens/s.
# Variants are lines "NAME ENV=VALUE … --bench-option VALUE …" in $VARIANTS (default below;
# "default" sets nothing): words with "=" are environment, the rest go to `bench engine`.
# Usage: LLMUX_BIN=… bash engine_variants.sh   (logs to $OUT, a table last)
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${LLMUX_BIN:-$HERE/llmux-cuda}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
source "$HERE/cuda_env.sh" > /dev/null
export LLMUX_KERNEL_CACHE=/tmp/llmux-kernels
MODEL=${MODEL:-/tmp/m8b}
BATCHES=${BATCHES:-256}
VARIANTS=${VARIANTS:-"default
steps2048 --max-tokens-per-step 2048"}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1
[ -f "$MODEL/config.json" ] || "$BIN" make-model --preset llama3-8b --dtype bf16 --out "$MODEL" > "$OUT/make_8b.log" 2>&1
REF=/tmp/llmux-ref
[ -d "$REF" ] || python3 "$HERE/reference_logits.py" Tests/Fixtures/golden "$REF" > "$OUT/reference.log" 2>&1
names=()
while read -r name words; do
    [ -n "$name" ] || continue
    names+=("$name")
    split_variant "$words"; envs=$VARIANT_ENV; args=$VARIANT_ARGS
    # shellcheck disable=SC2086
    env $envs "$BIN" gpu-check --fixtures Tests/Fixtures/golden --reference-logits "$REF" --device cuda > "$OUT/gpucheck-$name.log" 2>&1
    echo "gpu-check $name: rc=$?"
    grep -iE "relative|max" "$OUT/gpucheck-$name.log" | head -6
    # Greedy tokens of the 8B shape for one 200-token prompt (compared across variants below).
    ids=$(python3 -c "print(','.join(str((i * 7919) % 120000 + 1000) for i in range(200)))")
    # shellcheck disable=SC2086
    env $envs "$BIN" generate --model "$MODEL" --device cuda --prompt-ids "$ids" --max-tokens 48 --ignore-eos --logprobs 1 --json \
        > "$OUT/gen8b-$name.json" 2> "$OUT/gen8b-$name.err"
    # shellcheck disable=SC2086
    env $envs timeout 300 "$BIN" bench engine --device cuda --model "$MODEL" --batches "$BATCHES" --prompt-length 128 \
        --decode-steps 127 --trace $args --json "$OUT/bench-$name.json" > "$OUT/bench-$name.log" 2>&1
    echo "bench $name: rc=$?"
    grep -E "step median" "$OUT/bench-$name.log"
done <<< "$VARIANTS"
python3 - "$OUT" "${names[@]}" <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
def med(v): v = sorted(v); return v[len(v) // 2] if v else 0
try:
    base = json.load(open(f"{out}/gen8b-{names[0]}.json"))
    for n in names[1:]:
        other = json.load(open(f"{out}/gen8b-{n}.json"))
        same = sum(x == y for x, y in zip(base["token_ids"], other["token_ids"]))
        print(f"8B greedy tokens {names[0]} vs {n}: {same}/{len(base['token_ids'])} equal")
except Exception as error:
    print("greedy comparison failed:", error)
print("\nvariant        batch  prefill s  prefill step host/GPU ms  decode step host/GPU ms  plans  ms  output tok/s")
for n in names:
    try: d = json.load(open(f"{out}/bench-{n}.json"))
    except Exception: print(n, "missing"); continue
    for r in d["rows"]:
        p, t = r.get("prefillTrace") or {}, r.get("decodeTrace") or {}
        ps = r["batch"] * d["promptLength"] / r["prefillTokensPerSecond"]
        plans = f"{p.get('matmulPlans', 0)} {p.get('matmulPlanningMilliseconds', 0):.1f}"
        print(f"{n:14s} {r['batch']:5d} {ps:10.3f} {med(p.get('wallMilliseconds', [])):12.2f}/{med(p.get('gpuMilliseconds', [])):<12.2f}"
              f" {med(t.get('wallMilliseconds', [])):11.2f}/{med(t.get('gpuMilliseconds', [])):<11.2f} {plans:>15s} {r['outputTokensPerSecond']:13.1f}")
PY
