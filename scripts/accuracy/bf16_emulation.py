#!/usr/bin/env python3
"""Which bf16 roundings cost how much accuracy on a fixture: a float64 numpy forward pass of a
Llama/Mistral/Qwen2 checkpoint (teacher forcing over the cases of its golden.json), run once
exactly and once with bf16 rounding (round to nearest even) at chosen points: the residual stream,
RMSNorm outputs, q/k/v products, RoPE outputs, the KV cache, attention outputs, projection
outputs, the SiLU-gated activation, and the weights themselves. Prints the max relative L2
error of the logits rows, the metric `llmux gpu-check` uses against transformers fp32.
No torch needed (numpy only); the model math follows Hugging Face's modeling_llama
(rotate-half RoPE, llama3/linear rope scaling).

Usage: python3 scripts/accuracy/bf16_emulation.py Tests/Fixtures/golden/llama-bf16
"""
import json, struct, sys, math
import numpy as np
d = sys.argv[1]
cfg = json.load(open(f"{d}/config.json"))
def load(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]; hdr = json.loads(raw[8:8+n]); base = 8 + n; out = {}
    for k, v in hdr.items():
        if k == '__metadata__': continue
        a, b = v['data_offsets']; buf = raw[base+a:base+b]
        if v['dtype'] == 'BF16': x = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif v['dtype'] == 'F16': x = np.frombuffer(buf, np.float16).astype(np.float32)
        else: x = np.frombuffer(buf, np.float32)
        out[k] = x.reshape(v['shape']).astype(np.float64)
    return out
import glob
W = {}
for f in glob.glob(f"{d}/*.safetensors"): W.update(load(f))
H = cfg['hidden_size']; nh = cfg['num_attention_heads']; nkv = cfg['num_key_value_heads']; hd = cfg.get('head_dim') or H // nh
L = cfg['num_hidden_layers']; eps = cfg['rms_norm_eps']
rp = cfg.get('rope_parameters') or cfg.get('rope_scaling') or {}
theta = rp.get('rope_theta', cfg.get('rope_theta', 10000.0))
inv = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
if rp.get('rope_type') == 'llama3':
    f, lo, hi, om = rp['factor'], rp['low_freq_factor'], rp['high_freq_factor'], rp['original_max_position_embeddings']
    wl = 2 * math.pi / inv; lw, hw = om / lo, om / hi
    new = np.where(wl > lw, inv / f, inv)
    sm = (om / wl - lo) / (hi - lo)
    smoothed = (1 - sm) * inv / f + sm * inv
    mid = (wl <= lw) & (wl >= hw)
    inv = np.where(mid, smoothed, new)
elif rp.get('rope_type') == 'linear': inv = inv / rp['factor']
def bf16(x):
    x32 = np.asarray(x, np.float32); u = x32.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32).astype(np.float64)
def fwd(ids, R):
    r = lambda name, x: bf16(x) if name in R else x
    T = len(ids); pos = np.arange(T)
    h = W['model.embed_tokens.weight'][ids]; h = r('resid', h)
    ang = pos[:, None] * inv[None, :]; cos, sin = np.cos(ang), np.sin(ang)
    def rope(x):  # x: T, heads, hd (rotate-half)
        x1, x2 = x[..., :hd//2], x[..., hd//2:]
        c, s = cos[:, None, :], sin[:, None, :]
        return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], -1)
    def norm(x, w): return r('norm', x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w)
    for l in range(L):
        p = f'model.layers.{l}.'
        x = norm(h, W[p+'input_layernorm.weight'])
        def lin(name, x):
            y = x @ W[p+name+'.weight'].T
            if p+name+'.bias' in W: y = y + W[p+name+'.bias']
            return y
        q = r('qkv', lin('self_attn.q_proj', x)).reshape(T, nh, hd)
        k = r('qkv', lin('self_attn.k_proj', x)).reshape(T, nkv, hd)
        v = r('qkv', lin('self_attn.v_proj', x)).reshape(T, nkv, hd)
        q = r('rope', rope(q)); k = r('kv', rope(k)); v = r('kv', v)
        g = nh // nkv
        k = np.repeat(k, g, 1); v = np.repeat(v, g, 1)
        s = np.einsum('thd,shd->hts', q, k) / math.sqrt(hd)
        s = s + np.triu(np.full((T, T), -np.inf), 1)[None]
        s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
        a = r('attn', np.einsum('hts,shd->thd', s, v).reshape(T, nh * hd))
        o = r('proj', lin('self_attn.o_proj', a))
        h = r('resid', h + o)
        x = norm(h, W[p+'post_attention_layernorm.weight'])
        gt = r('proj', lin('mlp.gate_proj', x)); up = r('proj', lin('mlp.up_proj', x))
        act = r('act', gt / (1 + np.exp(-gt)) * up)
        h = r('resid', h + r('proj', lin('mlp.down_proj', act)))
    x = norm(h, W['model.norm.weight'])
    lm = W.get('lm_head.weight', W['model.embed_tokens.weight'])
    return x @ lm.T
gold = json.load(open(f"{d}/golden.json"))
sets = {'all': {'resid','norm','qkv','rope','kv','attn','proj','act'}, 'no-resid': {'norm','qkv','rope','kv','attn','proj','act'},
        'matmul-in+kv': {'norm','attn','act','kv'}, 'matmul-in': {'norm','attn','act'}, 'resid-only': {'resid'}, 'kv-only': {'kv'}, 'none': set(), 'weights-only': {'weights'}, 'all+weights': {'resid','norm','qkv','rope','kv','attn','proj','act','weights'}}
W0 = dict(W)
for name, R in sets.items():
    W = {k: (bf16(v) if 'weights' in R else v) for k, v in W0.items()}
    worst = 0
    for case in gold['cases']:
        ids = case['prompt_token_ids'] + [s['token_id'] for s in case['steps']][:-1]
        got = fwd(ids, R); Wg = W; W = W0; ref = fwd(ids, set()); W = Wg
        n = len(case['steps']); P = len(case['prompt_token_ids'])
        for t in range(P - 1, P - 1 + n):
            e = np.linalg.norm(got[t] - ref[t]) / np.linalg.norm(ref[t]); worst = max(worst, e)
    print(f"{d.split('/')[-1]:18s} {name:14s} max rel L2 {worst:.4f}")
