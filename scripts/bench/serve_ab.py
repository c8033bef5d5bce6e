"""A/B of two `llmux` binaries serving `--demo`: tokens/s and server CPU per token under many
concurrent non-streamed completions, the two binaries alternating run by run.

    python scripts/bench/serve_ab.py OLD_BINARY NEW_BINARY [--concurrency 256] [--tokens 128] [--rounds 1] [--reps 5]

Needs `httpx` (the end-to-end venv has it). Prints one line per run and a summary with medians.
"""
import argparse
import concurrent.futures
import os
import statistics
import subprocess
import time

try:  # recent openai releases ship the client as httpx2
    import httpx2 as httpx
except ImportError:
    import httpx


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(binary, port, concurrency, tokens, rounds):
    server = subprocess.Popen([binary, "serve", "--demo", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in server.stdout:
            if "listening" in line:
                break
        url = f"http://127.0.0.1:{port}/v1/completions"
        client = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=concurrency))
        body = {"model": "demo", "prompt": "def f(x):", "max_tokens": tokens, "ignore_eos": True, "temperature": 0}

        def one(_):
            return client.post(url, json=body).json()["usage"]["completion_tokens"]

        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(concurrency)))  # warm-up
            cpu_before, start, generated = cpu_seconds(server.pid), time.time(), 0
            for _ in range(rounds):
                generated += sum(pool.map(one, range(concurrency)))
            elapsed, cpu = time.time() - start, cpu_seconds(server.pid) - cpu_before
        return generated / elapsed, cpu / generated * 1000
    finally:
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--base-port", type=int, default=18900)
    args = parser.parse_args()
    results = {"old": [], "new": []}
    for rep in range(args.reps):
        for index, (name, binary) in enumerate((("old", args.old), ("new", args.new))):
            rate, cpu = run(binary, args.base_port + 2 * rep + index, args.concurrency, args.tokens, args.rounds)
            results[name].append((rate, cpu))
            print(f"{name} run {rep + 1}: {rate:.0f} tokens/s, server CPU {cpu:.3f} ms/token", flush=True)
    for name, runs in results.items():
        print(f"{name}: median {statistics.median(r for r, _ in runs):.0f} tokens/s, "
              f"{statistics.median(c for _, c in runs):.3f} ms CPU/token over {len(runs)} runs")
    old, new = (statistics.median(r for r, _ in results[k]) for k in ("old", "new"))
    print(f"new / old tokens/s: {new / old:.3f}")


if __name__ == "__main__":
    main()
