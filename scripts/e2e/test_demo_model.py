"""The demo model served by `llmux serve --demo` writes what PyTorch writes.

Models/demo-python/reference.json (scripts/train/train_demo_model.py) holds transformers' fp32
greedy completions of fixed Python prompts with every step's top-two logit gap; the server's
greedy completion of the same prompt text must give the same tokens up to the first step where
the reference is a near tie (gap <= 0.05), and at least 8 tokens must be compared in all.
"""
import json
import os

from conftest import ROOT

REFERENCE = os.path.join(ROOT, "Models", "demo-python", "reference.json")
NEAR_TIE = 0.05


def reference():
    with open(REFERENCE) as f:
        return json.load(f)


def test_greedy_completions_match_pytorch(client):
    compared = 0
    for case in reference()["greedy"]:
        steps = case["steps"]
        result = client.completions.create(model="demo", prompt=case["prompt"], max_tokens=len(steps), temperature=0,
                                           logprobs=1, extra_body={"return_tokens_as_token_ids": True, "ignore_eos": True})
        choice = result.choices[0]
        assert result.usage.prompt_tokens == len(case["prompt_token_ids"])
        got = [int(t.split(":", 1)[1]) for t in choice.logprobs.tokens]
        for index, (token, step) in enumerate(zip(got, steps)):
            if step["top_two_gap"] <= NEAR_TIE:
                break
            assert token == step["token_id"], f"{case['prompt']!r}, step {index}: {got} vs {case['token_ids']}"
            assert abs(choice.logprobs.token_logprobs[index] - step["logprob"]) < 1e-3
            compared += 1
        if got == case["token_ids"]:
            assert choice.text == case["text"]
    assert compared >= 8, f"only {compared} decisive steps compared"

