"""Goldens for matmul and linear (core/ops/matmul.c)."""
import os

import torch

from golden import randn, save_case


def generate(out):
    g = torch.Generator().manual_seed(1)
    # (name, a shape, b shape, trans_a, trans_b)
    cases = [
        ("mm_2d", (5, 7), (7, 3), 0, 0),
        ("mm_ta", (7, 5), (7, 3), 1, 0),
        ("mm_tb", (5, 7), (3, 7), 0, 1),
        ("mm_tatb", (7, 5), (3, 7), 1, 1),
        ("bmm", (2, 3, 4, 6), (2, 3, 6, 5), 0, 0),
        ("bmm_tb", (2, 3, 4, 6), (2, 3, 5, 6), 0, 1),
        ("bmm_ta", (3, 6, 4), (3, 6, 5), 1, 0),
        ("shared_b", (2, 3, 4, 6), (6, 5), 0, 0),
        ("shared_b_tb", (2, 4, 6), (5, 6), 0, 1),
        ("shared_b_ta", (2, 6, 4), (6, 5), 1, 0),
        ("size1", (1, 1, 9), (9, 1), 0, 0),
    ]
    for name, sa, sb, ta, tb in cases:
        a, b = randn(g, *sa), randn(g, *sb)

        def fn(a, b, ta=ta, tb=tb):
            return torch.matmul(a.transpose(-1, -2) if ta else a, b.transpose(-1, -2) if tb else b)

        save_case(os.path.join(out, name + ".safetensors"), {"a": a, "b": b}, fn, {"trans_a": ta, "trans_b": tb})

    for name, xs, o, bias in [("linear", (2, 5, 8), 6, True), ("linear_nobias", (7, 8), 3, False),
                              ("linear_4d", (2, 1, 3, 4), 5, True)]:
        x, w = randn(g, *xs), randn(g, o, xs[-1])
        b = randn(g, o) if bias else None
        save_case(os.path.join(out, name + ".safetensors"), {"x": x, "w": w, "b": b},
                  lambda x, w, b: torch.nn.functional.linear(x, w, b))
