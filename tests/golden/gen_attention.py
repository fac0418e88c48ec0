"""Goldens for the fused attention op (core/ops/attention.c) from F.scaled_dot_product_attention.

Our layout keeps heads interleaved: q [B, Tq, H, D], k [B, Tk, H, D], v [B, Tk, H, Dv] -> [B, Tq, H, Dv];
torch wants [B, H, T, D], so the reference permutes around the call. The boolean attn_mask is built here
from the key mask [B, Tk] and the causal flag, aligned at the end (query i sees key j iff
j <= i + Tk - Tq) as a KV cache needs; torch's is_causal aligns at the start, so it is not used.

A query row that sees no key gives NaN in torch; our op defines it as 0 with zero gradients. The
reference lets such rows attend everywhere (finite values) and then multiplies them by 0, which gives
exactly that: their output is 0 and, as their upstream gradient is then 0, they add nothing to any input
gradient.
"""
import os

import torch
import torch.nn.functional as F

from golden import randn, save_case


def reference(q, k, v, mask, causal, scale):
    B, Tq, H, D = q.shape
    Tk = k.shape[1]
    allowed = torch.ones(B, Tq, Tk, dtype=torch.bool)
    if mask is not None:
        allowed &= mask.bool()[:, None, :]
    if causal:
        i = torch.arange(Tq)[:, None]
        j = torch.arange(Tk)[None, :]
        allowed &= (j <= i + (Tk - Tq))[None]
    seen = allowed.any(dim=2)  # [B, Tq]
    allowed = allowed | ~seen[:, :, None]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         attn_mask=allowed[:, None], scale=scale if scale else None)
    out = out.transpose(1, 2)  # [B, Tq, H, Dv]
    return out * seen[:, :, None, None].to(out.dtype)


def generate(out):
    g = torch.Generator().manual_seed(11)
    # name, B, Tq, Tk, H, D, Dv, causal, masked (list of valid lengths per batch row, or None), scale
    cases = [
        ("self", 2, 5, 5, 3, 4, 4, False, None, 0.0),
        ("self_causal", 2, 6, 6, 2, 3, 3, True, None, 0.0),
        ("cross", 2, 4, 7, 2, 5, 3, False, None, 0.0),
        ("cross_causal_short_q", 2, 3, 6, 2, 4, 4, True, None, 0.0),    # Tq < Tk: a KV-cache step
        ("cross_causal_long_q", 1, 7, 4, 2, 3, 2, True, None, 0.0),     # Tq > Tk: rows 0..2 see no key
        ("masked", 3, 5, 6, 2, 4, 3, False, [6, 2, 0], 0.0),           # batch row 2 fully masked
        ("masked_causal", 2, 6, 6, 3, 2, 4, True, [4, 6], 0.0),
        ("scale", 2, 4, 5, 1, 3, 5, False, [3, 5], 0.7),
        ("size1", 1, 1, 1, 1, 1, 1, False, None, 0.0),
        # Scores of +-50..100 (inputs scaled by 6 below): the softmax must subtract each row's max.
        ("large_scores", 2, 5, 6, 2, 4, 3, True, [6, 4], 0.0),
        # Several query blocks (the kernel keeps >= 4 blocks per thread); B*H = 1 shares one head's blocks
        # between threads.
        ("long_causal_masked", 1, 300, 300, 1, 4, 4, True, [270], 0.0),
        # B*H = 2: a head per thread; cross, Dv != D.
        ("long_cross", 2, 300, 200, 1, 3, 2, False, [200, 150], 0.0),
    ]
    for name, B, Tq, Tk, H, D, Dv, causal, lengths, scale in cases:
        big = 6.0 if name == "large_scores" else 1.0
        q, k, v = randn(g, B, Tq, H, D, scale=big), randn(g, B, Tk, H, D, scale=big), randn(g, B, Tk, H, Dv)
        mask = None
        if lengths is not None:
            mask = torch.arange(Tk)[None, :] < torch.tensor(lengths)[:, None]
            if name == "masked":  # holes in the middle too, not only padding at the end
                mask[0, 1] = False
                mask[0, 4] = False

        def fn(q, k, v, mask, causal=causal, scale=scale):
            return reference(q, k, v, mask, causal, scale)

        save_case(os.path.join(out, name + ".safetensors"), {"q": q, "k": k, "v": v, "mask": mask}, fn,
                  {"causal": int(causal), "scale": scale})
