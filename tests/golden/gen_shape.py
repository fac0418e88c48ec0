"""Goldens for the shape and indexing ops (core/ops/shape.c, core/ops/index.c): reshape, permute, transpose,
contiguous, concat, split, slice, index_select, gather, embedding and cast. Lists in params are written with
':' between entries ("perm=0:2:1:3") because ',' separates the params themselves."""
import os

import torch
import torch.nn.functional as F

from golden import randn, save_case


def lst(values):
    return ":".join(str(v) for v in values)


def generate(out):
    g = torch.Generator().manual_seed(21)

    def save(name, inputs, fn, params=None, seed=0):
        save_case(os.path.join(out, name + ".safetensors"), inputs, fn, params, seed=seed)

    # ---- reshape (a view; gradient in the same element order) ----
    for i, (shape, new) in enumerate([((2, 3, 4), (4, -1)), ((6, 4), (2, 3, 2, 2)), ((2, 3, 4), (24,)),
                                      ((1, 5, 1), (-1,)), ((1,), ())]):
        save(f"reshape_{i}", {"x": randn(g, *shape)}, lambda x, new=new: x.reshape(new), {"shape": lst(new)}, i)

    # ---- permute / transpose: attention [B,T,H,D] -> [B,H,T,D], 2-D transposes over several tiles,
    # size-1 dims, merged dims, 5-D ----
    perm_cases = [
        ((2, 5, 3, 4), (0, 2, 1, 3)), ((37, 45), (1, 0)), ((3, 1, 5, 2), (3, 0, 2, 1)), ((4, 6, 5), (2, 0, 1)),
        ((4, 6, 5), (1, 2, 0)), ((4, 6, 5), (0, 1, 2)), ((2, 3, 2, 3, 2), (4, 1, 3, 0, 2)), ((2, 33, 35), (0, 2, 1)),
        ((1, 7), (1, 0)),
    ]
    for i, (shape, perm) in enumerate(perm_cases):
        save(f"permute_{i}", {"x": randn(g, *shape)}, lambda x, perm=perm: x.permute(perm), {"perm": lst(perm)}, i)
    for i, (shape, d0, d1) in enumerate([((3, 4, 5), 0, 2), ((3, 4, 5), -1, -2), ((6, 1, 7), 1, 2)]):
        save(f"transpose_{i}", {"x": randn(g, *shape)}, lambda x, d0=d0, d1=d1: x.transpose(d0, d1),
             {"dim0": d0, "dim1": d1}, i)
    save("contiguous", {"x": randn(g, 3, 7)}, lambda x: x.clone())

    # ---- concat: 2..7 parts (more than a tape node's 6 inputs), every axis ----
    concat_cases = [((2, 3, 4), (2, 1, 4), (2, 5, 4), 1), ((1, 3), (4, 3), 0), ((2, 3), (2, 1), (2, 2), -1)]
    for i, case in enumerate(concat_cases):
        shapes, axis = case[:-1], case[-1]
        parts = {f"p{k}": randn(g, *s) for k, s in enumerate(shapes)}
        save(f"concat_{i}", parts, lambda axis=axis, **p: torch.cat(list(p.values()), dim=axis),
             {"axis": axis, "n_parts": len(parts)}, i)
    parts = {f"p{k}": randn(g, 2, k % 3 + 1, 3) for k in range(7)}
    save("concat_7", parts, lambda **p: torch.cat(list(p.values()), dim=1), {"axis": 1, "n_parts": 7})

    # ---- split: each file checks one part (the others unused: their gradient must not leak) ----
    split_cases = [((3, 6, 2), 1, (2, 3, 1)), ((5, 3), 0, (1, 4)), ((2, 7), -1, (3, 0, 4))]
    for i, (shape, axis, sizes) in enumerate(split_cases):
        x = randn(g, *shape)
        for part in range(len(sizes)):
            if sizes[part] == 0:
                continue
            save(f"split_{i}_{part}", {"x": x}, lambda x, axis=axis, sizes=sizes, part=part:
                 torch.split(x, list(sizes), dim=axis)[part], {"axis": axis, "sizes": lst(sizes), "part": part}, i)

    # ---- slice: axis 0 is a view, other axes copy; negative bounds count from the end ----
    slice_cases = [((5, 3, 2), 0, 1, 4), ((3, 6, 2), 1, 2, 5), ((2, 3, 7), -1, 0, 7), ((4, 5), 1, -3, -1),
                   ((6,), 0, 5, 6)]
    for i, (shape, axis, start, end) in enumerate(slice_cases):
        def fn(x, axis=axis, start=start, end=end):
            idx = [slice(None)] * x.dim()
            idx[axis] = slice(start, end)
            return x[tuple(idx)]
        save(f"slice_{i}", {"x": randn(g, *shape)}, fn, {"axis": axis, "start": start, "end": end}, i)

    # ---- index_select (duplicates accumulate in the backward pass) ----
    sel_cases = [((5, 3), 0, [4, 0, 4, 2, 4], torch.int64), ((2, 6, 3), 1, [5, 5, 0], torch.int32),
                 ((3, 4, 2), -1, [1, 1, 0, 1], torch.int64), ((1, 3), 0, [0, 0], torch.int32)]
    for i, (shape, axis, idx, dt) in enumerate(sel_cases):
        save(f"index_select_{i}", {"x": randn(g, *shape), "idx": torch.tensor(idx, dtype=dt)},
             lambda x, idx, axis=axis: torch.index_select(x, axis, idx.long()), {"axis": axis}, i)

    # ---- gather (torch.gather; index dims may be smaller than the source's) ----
    gather_cases = [((3, 4, 5), 0, (2, 4, 3), torch.int64), ((3, 4, 5), 1, (3, 6, 5), torch.int32),
                    ((3, 4, 5), 2, (2, 3, 7), torch.int64), ((3, 4, 5), -2, (1, 2, 2), torch.int32),
                    ((7,), 0, (9,), torch.int64), ((4, 1), 0, (5, 1), torch.int32)]
    for i, (shape, axis, ishape, dt) in enumerate(gather_cases):
        idx = torch.randint(0, shape[axis], ishape, generator=g).to(dt)
        save(f"gather_{i}", {"x": randn(g, *shape), "idx": idx},
             lambda x, idx, axis=axis: torch.gather(x, axis, idx.long()), {"axis": axis}, i)

    # ---- embedding (repeated tokens accumulate) ----
    emb_cases = [((7, 4), [[1, 3, 1, 6, 0], [6, 6, 2, 1, 1]], torch.int64), ((5, 3), [4, 0, 4, 4], torch.int32),
                 ((3, 1), [[[2], [0]], [[2], [2]]], torch.int32), ((4, 5), 3, torch.int64)]
    for i, (wshape, idx, dt) in enumerate(emb_cases):
        save(f"embedding_{i}", {"w": randn(g, *wshape), "idx": torch.tensor(idx, dtype=dt)},
             lambda w, idx: F.embedding(idx.long(), w), {}, i)

    # ---- cast: gvm_tensor_copy's rules (floats to integers truncate toward zero; round to nearest even
    # between floats). f16/bf16 results are compared after a cast back to f32 (param via). ----
    x = torch.tensor([0.0, 1.0, -1.0, 2.7, -2.7, 0.49, 100.2, -3.5, 1e-3, 7.0], dtype=torch.float32)
    pos = x.abs()
    save("cast_f32_i32", {"x": x}, lambda x: x.float().to(torch.int32), {"dtype": "i32"})
    save("cast_f32_i64", {"x": x}, lambda x: x.float().to(torch.int64), {"dtype": "i64"})
    save("cast_f32_u8", {"x": pos}, lambda x: x.float().to(torch.uint8), {"dtype": "u8"})
    save("cast_f32_bool", {"x": x}, lambda x: x.float().to(torch.bool), {"dtype": "bool"})
    save("cast_i64_f32", {"x": torch.tensor([[-5, 0, 3], [1 << 20, 7, -1]], dtype=torch.int64)},
         lambda x: x.to(torch.float32), {"dtype": "f32"})
    save("cast_i32_f32", {"x": torch.tensor([-2, 9, 0, 123456], dtype=torch.int32)}, lambda x: x.to(torch.float32),
         {"dtype": "f32"})
    save("cast_bool_f32", {"x": torch.tensor([True, False, True])}, lambda x: x.to(torch.float32), {"dtype": "f32"})
    save("cast_i64_i32", {"x": torch.tensor([-7, 0, 65536], dtype=torch.int64)}, lambda x: x.to(torch.int32),
         {"dtype": "i32"})
    # Rounding: ties to even (1 + 2^-11 -> 1, 1 + 3*2^-11 -> 1 + 2^-9), f16 subnormals, random values.
    ties = torch.tensor([1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 3e-6, -6e-8, 1e-8, 65504.0, 1 + 2 ** -8,
                         1 + 3 * 2 ** -8, 0.1], dtype=torch.float32)
    rnd = torch.cat([ties, randn(g, 30, scale=10.0)]).reshape(5, 8)
    # gvm passes the gradient of a float -> float cast straight through in f32; torch would round it to the
    # narrow dtype on the way back, so the golden uses the straight-through form x + (round(x) - x).detach().
    def through(x, dt):
        return x + (x.float().to(dt).double() - x).detach()
    save("cast_f32_f16_f32", {"x": rnd}, lambda x: through(x, torch.float16), {"dtype": "f32", "via": "f16"})
    save("cast_f32_bf16_f32", {"x": rnd}, lambda x: through(x, torch.bfloat16), {"dtype": "f32", "via": "bf16"})
    save("cast_f16_f32", {"x": randn(g, 3, 4).half()}, lambda x: x.float(), {"dtype": "f32"})
    save("cast_bf16_f32", {"x": randn(g, 3, 4).bfloat16()}, lambda x: x.float(), {"dtype": "f32"})
    save("cast_f32_f32", {"x": randn(g, 2, 3)}, lambda x: x.float(), {"dtype": "f32"})
