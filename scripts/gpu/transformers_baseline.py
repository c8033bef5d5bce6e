#!/usr/bin/env python3
"""Hugging Face transformers on the same checkpoint as `llmux bench engine`: the peer measured in
the same run as LLMux's decode figures (issue 6).

- `generate` at batch 1: a 128-token prompt, 128 new tokens, greedy; output tokens per second.
- `generate_batch` (transformers' continuous batching) with 64 and 256 concurrent requests of
  128 random prompt tokens and 128 new tokens each: output tokens per second over the whole call.

Prints one JSON object last. Usage: python3 transformers_baseline.py CHECKPOINT [--concurrency 64,256]
"""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM, GenerationConfig


def load(path, attention):
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation=attention).to("cuda").eval()
    except (ValueError, ImportError) as error:
        print(f"attention {attention} unavailable ({error}); using the default", flush=True)
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).to("cuda").eval()


def prompts(count, length, vocabulary, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocabulary, (count, length), generator=generator).tolist()


def config(new_tokens):
    # No end-of-sequence token, so every request produces exactly `new_tokens` (random weights).
    return GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)


def batch_one(model, vocabulary, prompt_length, new_tokens):
    ids = torch.tensor(prompts(1, prompt_length, vocabulary, 1), device="cuda")
    with torch.no_grad():
        model.generate(ids, generation_config=config(8))   # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(ids, generation_config=config(new_tokens))
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    produced = out.shape[1] - prompt_length
    return {"requests": 1, "output_tokens": produced, "seconds": seconds, "output_tokens_per_second": produced / seconds}


def continuous(model, vocabulary, count, prompt_length, new_tokens):
    inputs = prompts(count, prompt_length, vocabulary, 2)
    with torch.no_grad():
        model.generate_batch(inputs=inputs[:4], generation_config=config(8), progress_bar=False)   # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        results = model.generate_batch(inputs=inputs, generation_config=config(new_tokens), progress_bar=False)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    produced = sum(len(r.generated_tokens) for r in results.values())
    return {"requests": count, "output_tokens": produced, "seconds": seconds, "output_tokens_per_second": produced / seconds}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--concurrency", default="64,256")
    parser.add_argument("--prompt-length", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--attention", default="sdpa")
    args = parser.parse_args()
    import transformers
    model = load(args.checkpoint, args.attention)
    vocabulary = model.config.vocab_size
    report = {"transformers": transformers.__version__, "torch": torch.__version__,
              "device": torch.cuda.get_device_name(), "checkpoint": args.checkpoint, "runs": {}}
    report["runs"]["generate_batch1"] = batch_one(model, vocabulary, args.prompt_length, args.new_tokens)
    report["generate_attention"] = getattr(model.config, "_attn_implementation", None)
    print("generate batch 1:", report["runs"]["generate_batch1"], flush=True)
    # generate_batch sets up its paged cache and attention itself (forcing "paged|sdpa" on the
    # model breaks the plain forward passes it also runs, transformers 5.17).
    for count in [int(c) for c in args.concurrency.split(",") if c]:
        try:
            report["runs"][f"generate_batch_{count}"] = continuous(model, vocabulary, count, args.prompt_length, args.new_tokens)
        except Exception as error:  # recorded, so the other figures still come back
            report["runs"][f"generate_batch_{count}"] = {"error": repr(error)}
        print(f"generate_batch {count}:", report["runs"][f"generate_batch_{count}"], flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
