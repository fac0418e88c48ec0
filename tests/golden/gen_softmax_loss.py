"""Goldens for softmax, log-softmax (core/ops/softmax.c) and the losses (core/ops/loss.c): cross-entropy
with i32/i64 targets and ignore_index, MSE and L1.

Every case stores "op" in its params so the C test picks the op from the file. Edge cases: large logits
(a 1e3 spread), rows holding -1e30 (masked-out logits, where PyTorch stays finite), size-1 axes, middle
axes wider than the kernels' 64-column tiles, all targets ignored, and exact ties for L1's sign(0).

CASES lists every file written; tests/test_softmax_loss.c keeps the same list.
"""
import os

import torch
import torch.nn.functional as F

from golden import randn, save_case

# (name, shape, axis, kind): kind "randn", "large" (scale 1e3) or "masked" (some -1e30 entries and one
# row made entirely of -1e30, where softmax is uniform).
SOFTMAX_SHAPES = [
    ("1d", (10,), 0, "randn"),
    ("last", (4, 7), -1, "randn"),
    ("last3d", (2, 3, 33), -1, "randn"),
    ("mid", (3, 5, 4), 1, "randn"),
    ("first", (6, 2, 3), 0, "randn"),
    ("mid_wide", (2, 5, 70), 1, "randn"),  # inner 70: one full 64-wide tile and a 6-wide tail
    ("n1", (4, 1), -1, "randn"),
    ("large", (3, 9), -1, "large"),
    ("large_mid", (2, 6, 3), 1, "large"),
    ("masked", (4, 11), -1, "masked"),
    ("masked_mid", (3, 5, 2), -2, "masked"),
]

# (name, N, C, target dtype, ignore_index, how many targets to ignore, logit scale)
CE_CASES = [
    ("ce_basic", 6, 5, torch.int64, -100, 0, 1.0),
    ("ce_ignore", 7, 4, torch.int64, -100, 3, 1.0),
    ("ce_i32", 5, 9, torch.int32, -100, 0, 1.0),
    ("ce_ignore_i32", 8, 6, torch.int32, 2, 2, 1.0),  # ignore_index is also a real class id
    ("ce_all_ignored", 3, 4, torch.int64, -1, 3, 1.0),
    ("ce_c1", 3, 1, torch.int64, -100, 0, 1.0),
    ("ce_large", 5, 129, torch.int64, -100, 1, 1e3),
    ("ce_masked", 4, 33, torch.int32, -100, 0, "masked"),
    ("ce_n1", 1, 17, torch.int64, -100, 0, 1.0),
]

# (name, shape, ties): ties makes b equal to a at a few positions (L1's gradient there is 0).
PAIR_CASES = [("1d", (7,), False), ("3d", (3, 4, 5), True), ("one", (1,), False), ("ties", (2, 9), True)]


def softmax_input(g, shape, kind, axis=-1):
    if kind == "large":
        return randn(g, *shape, scale=1e3)
    x = randn(g, *shape)
    if kind == "masked":
        flat = x.view(-1)
        flat[torch.randperm(flat.numel(), generator=g)[: flat.numel() // 3]] = -1e30
        idx = [0] * x.dim()
        idx[axis] = slice(None)
        x[tuple(idx)] = -1e30  # one whole line along the softmax axis masked: uniform output
    return x


def ce_targets(g, N, C, dtype, ignore_index, n_ignored):
    t = torch.randint(0, C, (N,), generator=g)
    if n_ignored:
        t[torch.randperm(N, generator=g)[:n_ignored]] = ignore_index
    if ignore_index >= 0:  # an ignore_index inside 0..C-1: make sure some targets use other classes
        t[t == ignore_index] = (ignore_index + 1) % C
        t[torch.randperm(N, generator=g)[:n_ignored]] = ignore_index
    return t.to(dtype)


def cross_entropy_mean(ignore_index):
    def fn(logits, targets):
        t = targets.long()
        valid = int((t != ignore_index).sum())
        if valid == 0:  # PyTorch gives NaN (0/0); gvm defines the loss as 0 with zero gradients
            return (logits * 0).sum()
        return F.cross_entropy(logits, t, ignore_index=ignore_index, reduction="mean")
    return fn


CASES = []


def generate(out):
    g = torch.Generator().manual_seed(21)
    CASES.clear()

    def save(name, inputs, fn, params, seed):
        CASES.append(name)
        save_case(os.path.join(out, name + ".safetensors"), inputs, fn, params, seed=seed)

    for i, (name, shape, axis, kind) in enumerate(SOFTMAX_SHAPES):
        for op in ("softmax", "log_softmax"):
            x = softmax_input(g, shape, kind, axis)
            torch_fn = getattr(torch, op)
            save(f"{op}_{name}", {"x": x}, lambda x, f=torch_fn, a=axis: f(x, dim=a), {"op": op, "axis": axis}, i)

    for i, (name, N, C, dtype, ii, n_ign, scale) in enumerate(CE_CASES):
        logits = softmax_input(g, (N, C), "masked") if scale == "masked" else randn(g, N, C, scale=scale)
        t = ce_targets(g, N, C, dtype, ii, n_ign)
        if scale == "masked":  # a masked logit is never the target, except in the all-masked row 0
            for r in range(1, N):
                if logits[r, t[r]] == -1e30:
                    t[r] = int(logits[r].argmax())
        save(name, {"logits": logits, "targets": t}, cross_entropy_mean(ii),
             {"op": "cross_entropy", "ignore_index": ii}, 100 + i)

    for i, (name, shape, ties) in enumerate(PAIR_CASES):
        for op, fn in (("mse_loss", F.mse_loss), ("l1_loss", F.l1_loss)):
            a, b = randn(g, *shape), randn(g, *shape)
            if ties:
                fa, fb = a.view(-1), b.view(-1)
                fb[::3] = fa[::3]
            save(f"{op}_{name}", {"a": a, "b": b}, lambda a, b, f=fn: f(a, b), {"op": op}, 200 + i)
