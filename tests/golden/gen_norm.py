"""Goldens for the normalisations (core/ops/norm.c): layer_norm, rms_norm, l2_normalize (F.normalize),
cosine_similarity and weight_norm (torch._weight_norm, dim 0).

Every case stores "op" in its params so the C test picks the op from the file; an input given as None is
passed to the C op as NULL (weight/bias absent). Edge cases: D = 1, rows with a large mean (layer norm's
variance must not cancel), several eps, norms below eps (the clamp is active: F.normalize's gradient
stops at the clamp, cosine_similarity's does not, see core/ops/norm.c), zero vectors, middle axes wider
than the kernels' 64-column tiles.
"""
import os

import torch
import torch.nn.functional as F

from golden import randn, save_case

# (name, x shape, has weight, has bias, eps, x offset)
LAYER_NORM = [
    ("ln_basic", (4, 10), True, True, 1e-5, 0.0),
    ("ln_3d", (2, 3, 17), True, True, 1e-5, 0.0),
    ("ln_no_weight", (3, 8), False, True, 1e-5, 0.0),
    ("ln_no_bias", (3, 8), True, False, 1e-6, 0.0),
    ("ln_plain", (5, 6), False, False, 1e-3, 0.0),
    ("ln_d1", (4, 1), True, True, 1e-5, 0.0),
    ("ln_offset", (3, 12), True, True, 1e-5, 100.0),
    ("ln_wide", (2, 130), True, True, 1e-5, 0.0),
    ("ln_1d", (9,), True, False, 1e-5, 0.0),
]

# (name, x shape, has weight, eps)
RMS_NORM = [
    ("rms_basic", (4, 10), True, 1e-6),
    ("rms_no_weight", (3, 7), False, 1e-5),
    ("rms_d1", (5, 1), True, 1e-6),
    ("rms_3d", (2, 3, 33), True, 1e-3),
    ("rms_big_eps", (3, 5), True, 1.0),
]

# (name, x shape, axis, eps, kind): kind "randn", "small" (norms below eps: clamped), "zero_row"
L2_NORMALIZE = [
    ("l2n_last", (4, 7), -1, 1e-12, "randn"),
    ("l2n_mid", (3, 5, 4), 1, 1e-12, "randn"),
    ("l2n_first", (5, 3), 0, 1e-12, "randn"),
    ("l2n_mid_wide", (2, 3, 70), 1, 1e-12, "randn"),
    ("l2n_d1", (6, 1), -1, 1e-12, "randn"),
    ("l2n_clamped", (4, 3), -1, 0.1, "small"),
    ("l2n_zero_row", (3, 5), -1, 1e-6, "zero_row"),
    ("l2n_1d", (8,), 0, 1e-12, "randn"),
]

# (name, shape, axis, eps, kind): kind as above, applied to a only
COSINE = [
    ("cos_last", (5, 8), -1, 1e-8, "randn"),
    ("cos_mid", (2, 6, 3), 1, 1e-8, "randn"),
    ("cos_first", (4, 3), 0, 1e-8, "randn"),
    ("cos_mid_wide", (2, 3, 70), 1, 1e-8, "randn"),
    ("cos_d1", (6, 1), -1, 1e-8, "randn"),
    ("cos_clamped", (4, 3), -1, 0.1, "small"),
    ("cos_zero_row", (3, 5), -1, 1e-3, "zero_row"),
    ("cos_1d", (7,), 0, 1e-8, "randn"),
]

# (name, v shape): g is [O, 1, ..., 1]
WEIGHT_NORM = [
    ("wn_conv", (6, 4, 3)),
    ("wn_linear", (5, 7)),
    ("wn_1d", (4,)),
    ("wn_o1", (1, 9)),
    ("wn_k1", (3, 1)),
    ("wn_4d", (2, 3, 2, 2)),
]

CASES = []


def vector_input(g, shape, axis, kind):
    x = randn(g, *shape)
    if kind == "small":
        x = x * 1e-3
    elif kind == "zero_row":
        idx = [0] * x.dim()
        idx[axis] = slice(None)
        x[tuple(idx)] = 0.0
    return x


def generate(out):
    g = torch.Generator().manual_seed(31)
    CASES.clear()

    def save(name, inputs, fn, params, seed):
        CASES.append(name)
        save_case(os.path.join(out, name + ".safetensors"), inputs, fn, params, seed=seed)

    for i, (name, shape, has_w, has_b, eps, offset) in enumerate(LAYER_NORM):
        D = shape[-1]
        x = randn(g, *shape) + offset
        w = randn(g, D) if has_w else None
        b = randn(g, D) if has_b else None
        save(name, {"x": x, "w": w, "b": b}, lambda x, w, b, e=eps: F.layer_norm(x, (x.shape[-1],), w, b, e),
             {"op": "layer_norm", "eps": eps}, i)

    for i, (name, shape, has_w, eps) in enumerate(RMS_NORM):
        x = randn(g, *shape)
        w = randn(g, shape[-1]) if has_w else None
        save(name, {"x": x, "w": w}, lambda x, w, e=eps: F.rms_norm(x, (x.shape[-1],), w, e),
             {"op": "rms_norm", "eps": eps}, 100 + i)

    for i, (name, shape, axis, eps, kind) in enumerate(L2_NORMALIZE):
        x = vector_input(g, shape, axis, kind)
        save(name, {"x": x}, lambda x, a=axis, e=eps: F.normalize(x, p=2.0, dim=a, eps=e),
             {"op": "l2_normalize", "axis": axis, "eps": eps}, 200 + i)

    for i, (name, shape, axis, eps, kind) in enumerate(COSINE):
        a, b = vector_input(g, shape, axis, kind), randn(g, *shape)
        save(name, {"a": a, "b": b}, lambda a, b, ax=axis, e=eps: F.cosine_similarity(a, b, dim=ax, eps=e),
             {"op": "cosine_similarity", "axis": axis, "eps": eps}, 300 + i)

    for i, (name, vshape) in enumerate(WEIGHT_NORM):
        v = randn(g, *vshape)
        gg = randn(g, vshape[0], *([1] * (len(vshape) - 1)))
        save(name, {"g": gg, "v": v}, lambda g, v: torch._weight_norm(v, g, 0), {"op": "weight_norm"}, 400 + i)
