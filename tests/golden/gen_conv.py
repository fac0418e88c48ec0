"""Goldens for conv1d and conv_transpose1d (core/ops/conv.c).

Each case file holds x, w and (unless the case has none) b, with params naming the op ("conv" or
"convt") and its options. The cases cover the odd geometries: T = 1, K > T with padding, stride > K,
groups = 2, depthwise (groups = Cin), dilation 3, output_padding 1, no bias, and K = 1 (the path that
skips im2col).
"""
import os

import torch
import torch.nn.functional as F

from golden import randn, save_case

# (name, B, Cin, Cout, T, K, stride, padding, dilation, groups, bias)
CONV = [
    ("conv_basic", 2, 3, 4, 10, 3, 1, 0, 1, 1, True),
    ("conv_k7_s2_p3", 2, 3, 5, 13, 7, 2, 3, 1, 1, True),
    ("conv_k_gt_t_pad", 2, 2, 3, 3, 5, 1, 2, 1, 1, True),
    ("conv_stride_gt_k", 2, 3, 2, 17, 2, 5, 0, 1, 1, True),
    ("conv_groups2", 2, 4, 6, 9, 3, 1, 1, 1, 2, True),
    ("conv_depthwise", 2, 4, 8, 11, 3, 1, 2, 2, 4, True),
    ("conv_dilation3", 1, 3, 4, 12, 3, 1, 3, 3, 1, True),
    ("conv_nobias", 2, 3, 4, 14, 4, 3, 1, 1, 1, False),
    ("conv_t1", 3, 2, 3, 1, 1, 1, 0, 1, 1, True),
    ("conv_t1_k3_pad", 2, 3, 2, 1, 3, 1, 1, 1, 1, True),
    ("conv_pointwise", 2, 5, 3, 9, 1, 1, 0, 1, 1, True),
    ("conv_pointwise_s2", 2, 3, 4, 9, 1, 2, 0, 1, 1, False),
    ("conv_mixed", 2, 6, 4, 20, 3, 2, 4, 3, 2, True),
]

# (name, B, Cin, Cout, T, K, stride, padding, output_padding, dilation, groups, bias)
CONVT = [
    ("convt_basic", 2, 3, 4, 6, 3, 1, 0, 0, 1, 1, True),
    ("convt_k4_s2_p1", 2, 3, 2, 7, 4, 2, 1, 0, 1, 1, True),
    ("convt_outpad1", 2, 3, 4, 5, 3, 2, 1, 1, 1, 1, True),
    ("convt_dilation3_outpad1", 1, 2, 3, 6, 3, 1, 2, 1, 3, 1, True),
    ("convt_stride_gt_k", 2, 3, 2, 4, 2, 5, 0, 0, 1, 1, True),
    ("convt_groups2", 2, 4, 6, 5, 3, 2, 1, 0, 1, 2, True),
    ("convt_depthwise", 2, 4, 4, 6, 3, 1, 1, 0, 1, 4, True),
    ("convt_nobias", 2, 3, 4, 5, 4, 3, 1, 2, 1, 1, False),
    ("convt_t1", 2, 3, 2, 1, 3, 2, 0, 1, 1, 1, True),
    ("convt_k_gt_t_pad", 2, 2, 3, 2, 5, 1, 2, 0, 1, 1, True),
    ("convt_pointwise", 2, 5, 3, 7, 1, 1, 0, 0, 1, 1, True),
    ("convt_k16_s8_p4", 1, 4, 2, 5, 16, 8, 4, 0, 1, 1, True),
]


def generate(out):
    g = torch.Generator().manual_seed(3)
    for name, B, Cin, Cout, T, K, S, P, D, G, bias in CONV:
        x, w = randn(g, B, Cin, T), randn(g, Cout, Cin // G, K, scale=0.5)
        b = randn(g, Cout) if bias else None

        def fn(x, w, b, S=S, P=P, D=D, G=G):
            return F.conv1d(x, w, b, stride=S, padding=P, dilation=D, groups=G)

        params = {"op": "conv", "stride": S, "padding": P, "dilation": D, "groups": G, "output_padding": 0}
        save_case(os.path.join(out, name + ".safetensors"), {"x": x, "w": w, "b": b}, fn, params)

    for name, B, Cin, Cout, T, K, S, P, OP, D, G, bias in CONVT:
        x, w = randn(g, B, Cin, T), randn(g, Cin, Cout // G, K, scale=0.5)
        b = randn(g, Cout) if bias else None

        def fn(x, w, b, S=S, P=P, OP=OP, D=D, G=G):
            return F.conv_transpose1d(x, w, b, stride=S, padding=P, output_padding=OP, groups=G, dilation=D)

        params = {"op": "convt", "stride": S, "padding": P, "dilation": D, "groups": G, "output_padding": OP}
        save_case(os.path.join(out, name + ".safetensors"), {"x": x, "w": w, "b": b}, fn, params)
