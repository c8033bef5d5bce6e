#!/usr/bin/env bash
# `llmux serve --device cuda` end to end with plain HTTP (no Python packages beyond the standard
# library): the Llama-3-8B shape, 32 concurrent sampled completions, seeded reproducibility, greedy
# reproducibility, a stream dropped mid-way, /metrics, then SIGTERM and a clean exit.
# Usage: LLMUX_BIN=… bash serve_smoke.sh   (log to $OUT, a verdict line last)
set -u -o pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${LLMUX_BIN:-$HERE/llmux-cuda}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
source "$HERE/cuda_env.sh" > /dev/null
export LLMUX_KERNEL_CACHE=/tmp/llmux-kernels
MODEL=${MODEL:-/tmp/m8b}
[ -f "$MODEL/config.json" ] || "$BIN" make-model --preset llama3-8b --dtype bf16 --out "$MODEL" > "$OUT/make_8b.log" 2>&1
PORT=8123
"$BIN" serve --model m8b="$MODEL" --device cuda --kv-cache-memory 8GiB --port $PORT > "$OUT/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break; sleep 1; done
python3 - "$PORT" <<'PY'
import json, sys, threading, urllib.request, socket
port = int(sys.argv[1])
base = f"http://127.0.0.1:{port}"
def post(body):
    request = urllib.request.Request(base + "/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.loads(response.read())
failures = []
results = [None] * 32
def worker(i):
    try: results[i] = post({"model": "m8b", "prompt": f"request {i} says", "max_tokens": 32, "temperature": 0.8, "top_p": 0.95, "seed": i})
    except Exception as error: results[i] = ("error", str(error))
threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
[t.start() for t in threads]; [t.join() for t in threads]
ok = [r for r in results if r and r[0] == 200 and r[1]["choices"][0]["finish_reason"] in ("length", "stop")]
print(f"32 concurrent sampled completions: {len(ok)} answered 200")
if len(ok) != 32: failures.append("concurrent")
again = post({"model": "m8b", "prompt": "request 5 says", "max_tokens": 32, "temperature": 0.8, "top_p": 0.95, "seed": 5})
same = results[5] and again[1]["choices"][0]["text"] == results[5][1]["choices"][0]["text"]
print(f"seed 5 again alone: same text {same}")
if not same: failures.append("seeded")
g1 = post({"model": "m8b", "prompt": "greedy", "max_tokens": 24, "temperature": 0})
g2 = post({"model": "m8b", "prompt": "greedy", "max_tokens": 24, "temperature": 0})
print(f"greedy twice: same text {g1[1]['choices'][0]['text'] == g2[1]['choices'][0]['text']}")
if g1[1]["choices"][0]["text"] != g2[1]["choices"][0]["text"]: failures.append("greedy")
# A stream dropped after its first chunks: the server goes on serving.
s = socket.create_connection(("127.0.0.1", port))
body = json.dumps({"model": "m8b", "prompt": "stream", "max_tokens": 400, "stream": True}).encode()
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
print("stream first bytes:", s.recv(200)[:40]); s.close()
after = post({"model": "m8b", "prompt": "after the drop", "max_tokens": 8, "temperature": 0})
print("after the dropped stream:", after[0])
if after[0] != 200: failures.append("after-drop")
metrics = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
print("metrics lines:", len(metrics.splitlines()))
print("SMOKE", "PASS" if not failures else "FAIL " + ",".join(failures))
PY
kill -TERM $SERVER
wait $SERVER
echo "serve exit status after SIGTERM: $?"
tail -3 "$OUT/serve.log"
