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
    (["bench", "gateway", "--targets", "direct,llmx"], "--targets takes direct, llmux, nginx and smg"),
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
