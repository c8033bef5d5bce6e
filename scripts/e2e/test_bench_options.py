"""Benchmark commands refuse bad lists before loading anything (a typo in --rates used to be
reported only after the models were loaded and checked, minutes into a GPU run)."""
import subprocess

import pytest

from conftest import llmux_binary


@pytest.mark.parametrize("args, message", [
    (["bench", "mux", "--rates", "1,x"], "--rates takes positive numbers"),
    (["bench", "mux", "--rates", "0"], "--rates takes positive numbers"),
    (["bench", "mux", "--alpha", "2.1,y"], "--alpha takes non-negative numbers"),
    (["bench", "mux", "--policies", "mux,bogus"], "unknown policy bogus"),
    (["bench", "mux", "--policies", "mux-hybrid,mux-mixd"], "unknown policy mux-mixd"),
    (["bench", "mux", "--target-scale", "0"], "--target-scale must be positive"),
    (["bench", "gateway", "--repeats", "0"], "--repeats must be at least 1"),
    (["bench", "gateway", "--concurrency", "64,x"], "--concurrency takes positive whole numbers"),
    (["bench", "gateway", "--targets", "none", "--url", "gw"], "--url takes NAME=http://HOST:PORT"),
    (["bench", "gateway", "--targets", "direct,llmx"], "--targets takes direct, floor, llmux, nginx and smg"),
    (["serve", "--demo", "--mux-jobs", "both"], "--mux-jobs must be split, mixed or hybrid"),
    (["bench", "mux", "--plot-from", "a.json"], "--plot-from needs --plot"),
    (["bench", "mux", "--plot-from", "/nonexistent/a.json", "--plot", "p.svg"], "cannot read /nonexistent/a.json as a bench mux result"),
])
def test_bad_bench_lists_are_refused_at_once(args, message, tmp_path):
    # A cache folder of its own: if validation did not stop the command it would start writing
    # models there, and the timeout would fail the test.
    env = {"LLMUX_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([llmux_binary()] + args, capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def free_port_block(count):
    """The first of `count` consecutive ports that are all free now."""
    import random
    import socket
    for _ in range(50):
        base = random.randrange(20000, 60000)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no block of free ports")


def test_bench_gateway_measures_the_relay_floor_beside_the_gateway(tmp_path):
    """The floor target (a C relay with no HTTP work) runs beside direct and llmux's gateway
    through the same load, and the table gives each proxy's figure beyond it."""
    import json
    import re
    out = tmp_path / "gateway.json"
    result = subprocess.run([llmux_binary(), "bench", "gateway", "--targets", "direct,floor,llmux", "--concurrency", "4",
                             "--duration", "0.5", "--warmup", "0.2", "--tokens", "4", "--interval-ms", "5",
                             "--base-port", str(free_port_block(6)), "--json", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = json.load(open(out))["rows"]
    assert sorted(row["target"] for row in rows) == ["direct", "floor", "llmux"]
    for row in rows:
        assert row["errors"] == 0 and row["requests"] > 0, row
    assert "beyond the floor" in result.stdout
    # One row beyond the floor, for the gateway: signed TTFB figures and ratios.
    assert re.search(r"^\| 4 \| llmux \| [+-]\d+\.\d{3} \| [+-]\d+\.\d{3} \| [+-]\d+\.\d{3} \| \d+\.\d\d \| \d+\.\d\d \|$",
                     result.stdout, re.M), result.stdout


def test_plot_from_several_runs_draws_every_policy_in_rate_order(tmp_path):
    """A rate sweep spread over several GPU calls (each under the device's time limit) drawn as
    one plot: the committed results of round 11 (10 and 20/s in one run, 30/s in another)."""
    import json
    import os
    import re
    results = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "results", "mux-h100-r11")
    files = [os.path.join(results, name) for name in ("mux-r11-sweep.json", "mux-r11-sweep30.json")]
    out = tmp_path / "sweep.svg"
    result = subprocess.run([llmux_binary(), "bench", "mux", "--plot-from", ",".join(files), "--plot", str(out)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    svg = out.read_text()
    runs = [run for name in files for run in json.load(open(name))["runs"]]
    policies = sorted({run["policy"] for run in runs})
    assert policies == ["mux", "mux-mixed", "spatial", "temporal"]
    for policy in policies:
        assert f">{policy}</text>" in svg, policy
    # One polyline per policy with a point per rate (10, 20, 30): the x values rise along each.
    lines = re.findall(r'<polyline[^>]*points="([^"]+)"', svg)
    assert len(lines) == len(policies)
    for line in lines:
        xs = [float(point.split(",")[0]) for point in line.split()]
        assert len(xs) == 3 and xs == sorted(xs)


def test_mux_check_runs_every_model_at_once_then_each_alone(tmp_path):
    """`bench mux --check` on the CPU with emulated SM partitions (jobs go through the
    asynchronous executor as on a GPU): under hybrid, each of the four built-in models is checked
    with the others and alone, where its long prompt's prefill-lane job runs beside its own mixed
    job (on a GPU the two once shared activation buffers)."""
    env = {"LLMUX_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([llmux_binary(), "bench", "mux", "--check", "--emulate-multiprocessors", "132",
                             "--policies", "mux-hybrid", "--rates", "1", "--duration", "0.5", "--threads", "2"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("llama-s", "qwen2-m", "mistral-l", "llama-xl"):
        assert f"check: {name} alone under mux-hybrid" in result.stderr
    assert "check mux-hybrid: PASS — 32 sequences" in result.stdout + result.stderr


def test_mixed_jobs_with_latency_targets_keep_outputs_and_report_inter_token_latency(tmp_path):
    """`mux-mixed-slo` on the CPU with emulated SM partitions: the four built-in models' outputs
    with tight targets (twice each model's solo latencies, so prompt chunks are held back) equal
    their outputs alone, and the JSON reports inter-token latency beside TPOT."""
    import json
    env = {"LLMUX_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = tmp_path / "mixed-slo.json"
    result = subprocess.run([llmux_binary(), "bench", "mux", "--check", "--emulate-multiprocessors", "132",
                             "--policies", "mux-mixed,mux-mixed-slo", "--target-scale", "2", "--rates", "4",
                             "--duration", "1", "--threads", "2", "--json", str(out)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "check mux-mixed-slo: PASS — 32 sequences" in result.stdout + result.stderr
    runs = json.loads(out.read_text())["runs"]
    assert [run["policy"] for run in runs] == ["mux-mixed", "mux-mixed-slo"]
    for run in runs:
        overall = run["overall"]
        assert overall["completed"] == overall["requests"] > 0
        assert 0 < overall["itlP50"] <= overall["itlP99"]
