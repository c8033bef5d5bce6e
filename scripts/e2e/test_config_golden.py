"""`llmux serve --config` with two units, checked against transformers' golden outputs.

The golden fixtures (Tests/Fixtures/golden, made by scripts/fixtures/make_golden.py) hold
random-weight checkpoints and transformers' fp32 greedy tokens with top-5 log-probabilities;
served through the OpenAI API they must come back the same.
"""
import json
import os

import openai
import pytest

from conftest import ROOT, Server

GOLDEN = os.path.join(ROOT, "Tests", "Fixtures", "golden")


@pytest.fixture(scope="module", params=["split", "mixed", "hybrid"])
def two_units(request, tmp_path_factory):
    # The mux unit forms its jobs both ways (`mux_jobs`); the answers must not change.
    config = tmp_path_factory.mktemp("config") / "llmux.yaml"
    config.write_text(f"""
policy: mux
mux_jobs: {request.param}
kv_cache_memory: 64MiB
models:
  - {{name: llama, path: {GOLDEN}/llama-bf16, rate: 2.0, slo_ttft_ms: 400, slo_tpot_ms: 40}}
  - {{name: qwen, path: {GOLDEN}/qwen2-bf16, rate: 0.5}}
  - {{name: mistral, path: {GOLDEN}/mistral-f16}}
units:
  - {{devices: [cpu], models: [llama, qwen]}}
  - {{devices: [cpu], models: [mistral], kv_cache_memory: 16MiB, policy: temporal}}
""")
    srv = Server("--config", str(config))
    srv.mux_jobs = request.param
    yield srv
    assert srv.stop() == 0, "".join(srv.stderr_lines[-20:])


def golden_cases(name):
    with open(os.path.join(GOLDEN, name, "golden.json")) as f:
        return json.load(f)["cases"]


@pytest.mark.parametrize("model,fixture", [("llama", "llama-bf16"), ("qwen", "qwen2-bf16"), ("mistral", "mistral-f16")])
def test_completions_match_transformers(two_units, model, fixture):
    client = openai.OpenAI(base_url=two_units.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    for case in golden_cases(fixture):
        steps = case["steps"]
        response = client.completions.create(
            model=model, prompt=case["prompt_token_ids"], max_tokens=len(steps), temperature=0, logprobs=5,
            extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
        choice = response.choices[0]
        got_ids = [int(token.split(":")[1]) for token in choice.logprobs.tokens]
        assert got_ids == [s["token_id"] for s in steps], f"{model}, prompt of {len(case['prompt_token_ids'])}"
        for got, step in zip(choice.logprobs.token_logprobs, steps):
            assert abs(got - step["logprob"]) < 1e-3
        for got_top, step in zip(choice.logprobs.top_logprobs, steps):
            for entry in step["top"]:
                assert abs(got_top[f"token_id:{entry['token_id']}"] - entry["logprob"]) < 1e-3
        assert response.usage.prompt_tokens == len(case["prompt_token_ids"])
        assert response.usage.completion_tokens == len(steps)


def test_models_of_every_unit_are_listed(two_units):
    client = openai.OpenAI(base_url=two_units.url + "/v1", api_key="unused", max_retries=0)
    assert sorted(m.id for m in client.models.list().data) == ["llama", "mistral", "qwen"]


def test_latency_targets_are_taken_per_model(two_units):
    """llama's targets reach its unit (the config's slo_*_ms); the other models set none."""
    lines = [line for line in two_units.stderr_lines if "latency targets" in line]
    assert len(lines) == 1, "".join(two_units.stderr_lines[-20:])
    assert "unit 0" in lines[0] and "llama TTFT 400 ms, TPOT 40 ms" in lines[0]
    assert "qwen" not in lines[0] and "mistral" not in lines[0]
    mixed = two_units.mux_jobs != "split"
    # Mixed jobs size their prompt chunks by the targets; split and hybrid weigh them in the SM split.
    assert ("mixed job's prompt chunk" in lines[0]) == mixed, lines[0]
    assert ("SM split" in lines[0]) == (two_units.mux_jobs != "mixed"), lines[0]
    unit_line = next(line for line in two_units.stderr_lines if "unit 0 on" in line)
    assert (f"(mux, {two_units.mux_jobs} jobs)" in unit_line) == mixed, unit_line


def serve_refuses(config_path, text):
    """Writes `text` to `config_path`, runs `llmux serve --config` on it, and returns its standard
    error after checking that it exited with failure."""
    import subprocess
    from conftest import llmux_binary
    config_path.write_text(text)
    result = subprocess.run([llmux_binary(), "serve", "--config", str(config_path), "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    return result.stderr


def test_bad_latency_target_names_file_and_key(tmp_path):
    stderr = serve_refuses(tmp_path / "slo.yaml", f"models:\n  - {{name: a, path: {GOLDEN}/llama-bf16, slo_tpot_ms: -5}}\n")
    assert "slo.yaml" in stderr and "models[0].slo_tpot_ms must be > 0" in stderr


def test_bad_mux_jobs_names_file_and_key(tmp_path):
    stderr = serve_refuses(tmp_path / "jobs.yaml", f"mux_jobs: fused\nmodels:\n  - {{name: a, path: {GOLDEN}/llama-bf16}}\n")
    assert "jobs.yaml" in stderr and "'mux_jobs' must be split, mixed or hybrid, got 'fused'" in stderr


def test_bad_config_names_file_and_key(tmp_path):
    stderr = serve_refuses(tmp_path / "bad.yaml", f"models:\n  - {{name: a, path: {GOLDEN}/llama-bf16}}\nunits:\n  - {{models: [a, b]}}\n")
    assert "bad.yaml" in stderr and "'b'" in stderr


def test_plan_emitted_config_format_is_served(tmp_path):
    """The shape `llmux plan --emit config` writes: expected_rate, unit models as objects, KV bytes."""
    config = tmp_path / "serve-host-0.yaml"
    config.write_text(f"""# from a plan
models:
  - name: "llama"
    path: "{GOLDEN}/llama-bf16"
    expected_rate: 1.5
units:
  - devices: [cpu]
    policy: mux
    kv_cache_memory: 8388608
    prefill_sm_share: 0.5
    models:
      - name: "llama"
        expected_rate: 1.5
        kv_quota: 4194304
        sm_share: 1
""")
    srv = Server("--config", str(config))
    try:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        case = golden_cases("llama-bf16")[1]
        response = client.completions.create(model="llama", prompt=case["prompt_token_ids"], max_tokens=3, temperature=0,
                                             extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
        assert response.choices[0].text is not None and response.usage.completion_tokens == 3
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("mux_jobs", [None, "split"])
def test_a_unit_of_one_model_forms_mixed_jobs_unless_told(tmp_path, mux_jobs):
    """With nothing to colocate a split only takes SMs from the model's decode jobs (BENCHMARKS
    round 11), so a mux unit of one model forms mixed jobs by default; units of several models
    keep MuxServe's split, and an explicit mux_jobs applies to every unit."""
    config = tmp_path / "llmux.yaml"
    config.write_text((f"mux_jobs: {mux_jobs}\n" if mux_jobs else "") + f"""policy: mux
kv_cache_memory: 16MiB
models:
  - {{name: llama, path: {GOLDEN}/llama-bf16}}
  - {{name: qwen, path: {GOLDEN}/qwen2-bf16}}
  - {{name: mistral, path: {GOLDEN}/mistral-f16}}
units:
  - {{devices: [cpu], models: [llama, qwen]}}
  - {{devices: [cpu], models: [mistral]}}
""")
    srv = Server("--config", str(config))
    try:
        log = "".join(srv.stderr_lines)
        assert "unit 0 on cpu (mux): llama, qwen" in log, log
        expected = "unit 1 on cpu (mux): mistral" if mux_jobs == "split" else "unit 1 on cpu (mux, mixed jobs): mistral"
        assert expected in log, log
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        case = golden_cases("mistral-f16")[0]
        response = client.completions.create(model="mistral", prompt=case["prompt_token_ids"], max_tokens=len(case["steps"]),
                                             temperature=0, logprobs=1,
                                             extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True})
        tokens = [int(token.split(":")[1]) for token in response.choices[0].logprobs.tokens]
        assert tokens == [step["token_id"] for step in case["steps"]]
    finally:
        assert srv.stop() == 0
