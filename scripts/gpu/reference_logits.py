#!/usr/bin/env python3
"""Teacher-forced reference logits of the golden fixtures from transformers, for
`llmux gpu-check --reference-logits DIR`.

For every fixture (a folder with golden.json) and every case, the input is the prompt followed
by the golden tokens; the logits that predict each golden step are written as float32 rows to
DIR/<fixture>.f32 (fp32 weights and activations, TF32 off, eager attention). The same model in
bf16 (weights and activations, as transformers runs it) is compared with the fp32 rows by the
metric gpu-check uses (relative L2 error of each logits row; log-probability error of the
reference's top 5), which is the reference for what bf16 arithmetic alone costs.

Usage: python3 reference_logits.py FIXTURES_DIR OUT_DIR
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False


def load(directory, dtype, device):
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, attn_implementation="eager")
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(directory, torch_dtype=dtype, attn_implementation="eager")
    return model.to(device).eval()


def teacher_logits(model, golden, device):
    rows = []
    with torch.no_grad():
        for case in golden["cases"]:
            prompt = case["prompt_token_ids"]
            steps = [s["token_id"] for s in case["steps"]]
            ids = torch.tensor([prompt + steps[:-1]], device=device)
            logits = model(ids).logits[0, len(prompt) - 1:].float()
            assert logits.shape[0] == len(steps)
            rows.append(logits)
    return torch.cat(rows)


def compare(mine, ref, golden):
    rel = (mine.double() - ref.double()).norm(dim=1) / ref.double().norm(dim=1)
    lm, lr = torch.log_softmax(mine.double(), 1), torch.log_softmax(ref.double(), 1)
    worst, row = 0.0, 0
    for case in golden["cases"]:
        for step in case["steps"]:
            for entry in step["top"]:
                worst = max(worst, abs(lm[row, entry["token_id"]] - lr[row, entry["token_id"]]).item())
            row += 1
    return rel.max().item(), rel.mean().item(), worst


def main():
    root, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__} on {device}")
    print("transformers: fixture | compared | rows | max rel L2 | mean rel L2 | max |dlogprob| (ref top 5)")
    for name in sorted(os.listdir(root)):
        directory = os.path.join(root, name)
        path = os.path.join(directory, "golden.json")
        if not os.path.exists(path):
            continue
        golden = json.load(open(path))
        ref = teacher_logits(load(directory, torch.float32, device), golden, device)
        ref.cpu().numpy().astype("<f4").tofile(os.path.join(out, f"{name}.f32"))
        cpu = teacher_logits(load(directory, torch.float32, "cpu"), golden, "cpu")
        bf16 = teacher_logits(load(directory, torch.bfloat16, device), golden, device)
        for label, mine in (("fp32 cpu vs fp32 gpu", cpu.to(device)), ("bf16 vs fp32", bf16)):
            worst, mean, lp = compare(mine, ref, golden)
            print(f"transformers: {name} | {label} | {ref.shape[0]} | {worst:.5f} | {mean:.5f} | {lp:.5f}")


if __name__ == "__main__":
    main()
