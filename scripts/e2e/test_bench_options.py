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
    (["bench", "gateway", "--repeats", "0"], "--repeats must be at least 1"),
    (["bench", "gateway", "--concurrency", "64,x"], "--concurrency takes positive whole numbers"),
    (["bench", "gateway", "--targets", "none", "--url", "gw"], "--url takes NAME=http://HOST:PORT"),
    (["bench", "gateway", "--targets", "direct,llmx"], "--targets takes direct, llmux, nginx and smg"),
    (["serve", "--demo", "--mux-jobs", "both"], "--mux-jobs must be split, mixed or hybrid"),
])
def test_bad_bench_lists_are_refused_at_once(args, message, tmp_path):
    # A cache folder of its own: if validation did not stop the command it would start writing
    # models there, and the timeout would fail the test.
    env = {"LLMUX_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([llmux_binary()] + args, capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
