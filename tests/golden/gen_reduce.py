"""Goldens for the reductions (core/ops/reduce.c): sum, mean, max over one axis (negative axes, keepdim)
or over everything (axis=1000 is GVM_AXIS_ALL), and masked mean pooling, which has no direct PyTorch twin
and is built here from a masked sum divided by the clamped count."""
import os

import torch

from golden import randn, save_case

ALL = 1000  # GVM_AXIS_ALL


def reduce_fn(kind, axis, keepdim):
    keepdim = bool(keepdim)
    def fn(x):
        if axis == ALL:
            r = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}[kind](x)
            return r.reshape((1,) * x.dim()) if keepdim else r
        if kind == "max":
            return torch.max(x, dim=axis, keepdim=keepdim).values
        return getattr(torch, kind)(x, dim=axis, keepdim=keepdim)
    return fn


def mean_pool(x, mask, axis):
    if mask is None:
        return x.mean(dim=axis)
    m = mask.to(x.dtype).reshape(tuple(mask.shape) + (1,) * (x.dim() - axis - 1))
    count = m.sum(dim=axis).clamp(min=1)  # all-masked rows: 0 / 1 = 0
    return (x * m).sum(dim=axis) / count


def generate(out):
    g = torch.Generator().manual_seed(11)
    # (shape, axis, keepdim): leading, middle, last and negative axes, size-1 dims, odd sizes, 0-d results.
    cases = [
        ((3, 5, 7), 0, 0), ((3, 5, 7), 1, 0), ((3, 5, 7), -1, 1), ((3, 5, 7), -2, 1),
        ((4, 1, 6), 1, 0), ((2, 3, 4, 5), 2, 0), ((1, 9), 0, 1), ((13,), 0, 0),
        ((5, 300), -1, 0), ((130, 3), 0, 0), ((3, 200, 2), 1, 1),  # > one 128-output block / long rows
        ((3, 5, 7), ALL, 0), ((2, 3, 1), ALL, 1), ((1,), ALL, 0),
    ]
    for kind in ("sum", "mean", "max"):
        for i, (shape, axis, keepdim) in enumerate(cases):
            x = randn(g, *shape)
            name = f"{kind}_{i}"
            save_case(os.path.join(out, name + ".safetensors"), {"x": x}, reduce_fn(kind, axis, keepdim),
                      {"axis": axis, "keepdim": keepdim}, seed=i)

    # Masked mean pooling: mask has x's dims up to and including the axis; rows with no valid position give 0.
    pool_cases = [
        ("pool_btd", (3, 6, 5), 1, "bool"),
        ("pool_axis0", (7, 4), 0, "bool"),
        ("pool_last", (2, 3, 5), 2, "u8"),
        ("pool_4d", (2, 3, 4, 3), 2, "bool"),
        ("pool_nomask", (3, 6, 5), 1, None),
        ("pool_nomask_last", (4, 7), -1, None),
        ("pool_all_masked", (2, 5, 3), 1, "all0"),
    ]
    for i, (name, shape, axis, mtype) in enumerate(pool_cases):
        x = randn(g, *shape)
        ax = axis % len(shape)
        mask = None
        if mtype is not None:
            mshape = shape[:ax + 1]
            mask = torch.rand(mshape, generator=g) < 0.6
            if mtype == "all0":
                mask[0] = False  # batch row 0 has no valid position
                mask[1, 2] = True
            else:
                mask.reshape(-1, mshape[-1])[0] = False  # first row fully masked
            if mtype == "u8":
                mask = mask.to(torch.uint8)
        save_case(os.path.join(out, name + ".safetensors"), {"x": x, "mask": mask},
                  lambda x, mask, ax=ax: mean_pool(x, mask, ax), {"axis": axis}, seed=100 + i)
