"""Goldens for one LSTM layer (core/ops/lstm.c) against torch.nn.LSTM (batch_first, zero initial state)
with explicit weights: B=2, T=5, I=3, H=4 with and without biases, T=1, a case with b_ih but no b_hh
(the C op takes each bias as optional), and one larger case.
"""
import os

import torch
from torch.func import functional_call

from golden import randn, save_case


def lstm_fn(I, H):
    mod = torch.nn.LSTM(I, H, num_layers=1, batch_first=True, bias=True).double()

    def fn(x, w_ih, w_hh, b_ih, b_hh):
        # A missing bias is a zero that takes no gradient, which is what the C op's NULL means.
        zeros = torch.zeros(4 * H, dtype=torch.float64)
        params = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh,
                  "bias_ih_l0": zeros if b_ih is None else b_ih, "bias_hh_l0": zeros if b_hh is None else b_hh}
        out, _ = functional_call(mod, params, (x,))
        return out

    return fn


def lstm_nobias_fn(I, H):
    # The no-bias cases use nn.LSTM(bias=False) itself.
    mod = torch.nn.LSTM(I, H, num_layers=1, batch_first=True, bias=False).double()

    def fn(x, w_ih, w_hh, b_ih, b_hh):
        out, _ = functional_call(mod, {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh}, (x,))
        return out

    return fn


def generate(out):
    g = torch.Generator().manual_seed(5)
    # (name, B, T, I, H, has b_ih, has b_hh)
    cases = [
        ("lstm_bias", 2, 5, 3, 4, True, True),
        ("lstm_nobias", 2, 5, 3, 4, False, False),
        ("lstm_t1", 2, 1, 3, 4, True, True),
        ("lstm_t1_nobias", 3, 1, 2, 3, False, False),
        ("lstm_b_ih_only", 2, 5, 3, 4, True, False),
        ("lstm_larger", 3, 9, 6, 7, True, True),
    ]
    for name, B, T, I, H, bi, bh in cases:
        s = H ** -0.5  # PyTorch's init range, so gates are neither saturated nor linear
        x = randn(g, B, T, I)
        w_ih, w_hh = randn(g, 4 * H, I, scale=s), randn(g, 4 * H, H, scale=s)
        b_ih = randn(g, 4 * H, scale=s) if bi else None
        b_hh = randn(g, 4 * H, scale=s) if bh else None
        fn = lstm_fn(I, H) if (bi or bh) else lstm_nobias_fn(I, H)
        save_case(os.path.join(out, name + ".safetensors"),
                  {"x": x, "w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh}, fn)
