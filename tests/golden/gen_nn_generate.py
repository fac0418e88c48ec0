"""Goldens for the logits processing of generation (nn/sampling.c).

Fixed logits go through transformers' own processors, in the order MusicGen's generate applies them:
ClassifierFreeGuidanceLogitsProcessor (cond rows first, uncond rows second), TemperatureLogitsWarper,
TopKLogitsWarper, TopPLogitsWarper (min_tokens_to_keep = 1). Stages a case switches off are skipped, as
generate() skips them. Filtered entries stay -inf.

sampling.safetensors:
    in.cond [R, card], in.uncond [R, card]    f32 logits (no ties, so the sort order is unambiguous)
    out.<case> [R, card]                      the processed scores
metadata "cases" = comma-separated case names; "case.<name>" = "cfg=..,temperature=..,top_k=..,top_p=.."
(cfg 0 = no guidance: the cond rows alone; top_k 0 / top_p 0 = stage off)
"""
import os

import torch
from safetensors.torch import save_file
from transformers.generation.logits_process import (
    ClassifierFreeGuidanceLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from golden import canonicalise_header

ROWS, CARD = 6, 64

CASES = {
    # GVMGen's reference: cfg 3, top-k 250 (here: fewer than card so it bites), top-p off, temperature 1
    "ref": dict(cfg=3.0, temperature=1.0, top_k=12, top_p=0.0),
    "all": dict(cfg=3.0, temperature=0.7, top_k=10, top_p=0.8),
    "topp": dict(cfg=2.0, temperature=1.0, top_k=0, top_p=0.9),
    "topk_temp": dict(cfg=1.5, temperature=1.3, top_k=20, top_p=0.0),
    "nocfg": dict(cfg=0.0, temperature=0.5, top_k=5, top_p=0.5),
    "tiny_p": dict(cfg=0.0, temperature=1.0, top_k=0, top_p=0.01),  # min_tokens_to_keep: the max survives
    "big_k": dict(cfg=3.0, temperature=2.0, top_k=100, top_p=0.95),  # top_k > card: no-op
}


def process(cond, uncond, c):
    ids = torch.zeros(cond.shape[0], 1, dtype=torch.long)
    if c["cfg"] > 0:
        scores = ClassifierFreeGuidanceLogitsProcessor(c["cfg"])(ids, torch.cat([cond, uncond], 0))
    else:
        scores = cond.clone()
    if c["temperature"] != 1.0:
        scores = TemperatureLogitsWarper(c["temperature"])(ids, scores)
    if c["top_k"] > 0:
        scores = TopKLogitsWarper(c["top_k"])(ids, scores)
    if 0 < c["top_p"] < 1:
        scores = TopPLogitsWarper(c["top_p"])(ids, scores)
    return scores


def generate(out_dir):
    gen = torch.Generator().manual_seed(2024)
    # flat enough that top-p keeps several entries; uncond correlated with cond, as a real model's are
    base = torch.randn(ROWS, CARD, generator=gen, dtype=torch.float64)
    cond = (base * 0.6 + torch.randn(ROWS, CARD, generator=gen, dtype=torch.float64) * 0.15).float()
    uncond = (base * 0.6 + torch.randn(ROWS, CARD, generator=gen, dtype=torch.float64) * 0.3).float()
    for t in (cond, uncond):
        for r in range(ROWS):
            assert len(set(t[r].tolist())) == CARD, "ties in the fixed logits"
    tensors = {"in.cond": cond.contiguous(), "in.uncond": uncond.contiguous()}
    meta = {"cases": ",".join(CASES)}
    for name, c in CASES.items():
        out = process(cond, uncond, c)
        assert out.dtype == torch.float32
        tensors["out." + name] = out.contiguous()
        meta["case." + name] = ",".join(f"{k}={v}" for k, v in c.items())
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "sampling.safetensors")
    save_file(tensors, path, metadata=meta)
    canonicalise_header(path)
