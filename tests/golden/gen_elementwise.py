"""Goldens for the elementwise ops: broadcasting add/sub/mul/div (core/ops/binary.c), scalar and unary
math (core/ops/unary.c), activations and masked_fill (core/ops/activation.c). Dropout has no golden:
PyTorch's RNG is not Philox; tests/test_elementwise.c checks its properties instead."""
import os

import torch
import torch.nn.functional as F

from golden import randn, save_case


def normal(gen, *shape, scale=1.0):
    """golden.randn that also makes 0-dim tensors."""
    return randn(gen, *shape, scale=scale) if shape else randn(gen, 1, scale=scale).reshape(())


def away_from_zero(gen, *shape, lo=0.5):
    """Random sign, magnitude >= lo: divisors, and inputs of ops with a kink at 0."""
    x = normal(gen, *shape)
    return (torch.sign(x) * (x.abs() + lo)).float()


def positive(gen, *shape, lo=0.2):
    return (normal(gen, *shape).abs() + lo).float()


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}

# (name, a shape, b shape): every broadcast pattern the kernels treat differently.
BINARY_SHAPES = [
    ("same", (3, 4, 5), (3, 4, 5)),          # one flat loop
    ("bias", (2, 3, 6), (6,)),               # b broadcast along leading dims: column sum
    ("lead", (5,), (2, 3, 5)),               # the same with a as the small side
    ("rowscale", (2, 3, 6), (2, 3, 1)),      # b broadcast along the last dim: row sums
    ("both", (3, 1, 5), (4, 1)),             # both sides broadcast
    ("mid", (2, 3, 4), (3, 1)),              # b kept in a middle dim only
    ("zerodim", (), (3, 4)),                 # a 0-dim tensor (not "scalar": add_scalar is a unary op)
    ("rank6", (2, 1, 3, 1, 2, 2), (1, 2, 1, 3, 2, 1)),
]

# (file name, op, params, input kind, shape)
UNARY = [
    ("add_scalar", "add_scalar", {"s": 0.7}, "normal", (3, 5)),
    ("mul_scalar", "mul_scalar", {"s": -1.3}, "normal", (2, 3, 4)),
    ("pow_2", "pow", {"p": 2.0}, "normal", (4, 6)),
    ("pow_3", "pow", {"p": 3.0}, "normal", (4, 6)),
    ("pow_half", "pow", {"p": 0.5}, "positive", (4, 6)),
    ("pow_1p7", "pow", {"p": 1.7}, "positive", (4, 6)),
    ("pow_m1p5", "pow", {"p": -1.5}, "positive", (4, 6)),
    ("pow_0", "pow", {"p": 0.0}, "positive", (7,)),
    ("neg", "neg", {}, "normal", (3, 5)),
    ("exp", "exp", {}, "normal", (3, 5)),
    ("log", "log", {}, "positive", (3, 5)),
    ("sqrt", "sqrt", {}, "positive", (3, 5)),
    ("abs", "abs", {}, "away", (3, 5)),
    ("gelu", "gelu", {}, "wide", (4, 8)),
    ("gelu_tanh", "gelu_tanh", {}, "wide", (4, 8)),
    ("relu", "relu", {}, "away", (3, 7)),
    ("elu", "elu", {"alpha": 1.0}, "away", (3, 7)),
    ("elu_0p3", "elu", {"alpha": 0.3}, "away", (3, 7)),
    ("silu", "silu", {}, "wide", (4, 8)),
    ("tanh", "tanh", {}, "wide", (4, 8)),
    ("sigmoid", "sigmoid", {}, "wide", (4, 8)),
]

UNARY_FN = {
    "add_scalar": lambda a, p: a + p["s"],
    "mul_scalar": lambda a, p: a * p["s"],
    "pow": lambda a, p: a.pow(p["p"]),
    "neg": lambda a, p: -a,
    "exp": lambda a, p: a.exp(),
    "log": lambda a, p: a.log(),
    "sqrt": lambda a, p: a.sqrt(),
    "abs": lambda a, p: a.abs(),
    "gelu": lambda a, p: F.gelu(a),
    "gelu_tanh": lambda a, p: F.gelu(a, approximate="tanh"),
    "relu": lambda a, p: F.relu(a),
    "elu": lambda a, p: F.elu(a, alpha=p["alpha"]),
    "silu": lambda a, p: F.silu(a),
    "tanh": lambda a, p: a.tanh(),
    "sigmoid": lambda a, p: a.sigmoid(),
}

# (name, a shape, mask shape, mask dtype, value)
MASKED_FILL = [
    ("same", (3, 5), (3, 5), torch.bool, -2.5),
    ("bcast_mid", (2, 3, 5), (2, 1, 5), torch.uint8, 0.0),
    ("bcast_lead", (2, 3, 4), (4,), torch.bool, 7.0),
    ("bcast_last", (2, 3, 4), (2, 3, 1), torch.uint8, 1.5),
    ("neg_inf", (2, 2, 6), (1, 1, 6), torch.bool, float("-inf")),
]


def make_input(g, kind, shape):
    if kind == "positive":
        return positive(g, *shape)
    if kind == "away":
        return away_from_zero(g, *shape, lo=0.05)
    if kind == "wide":  # the tails, where saturation and cancellation bite
        x = normal(g, *shape, scale=3.0)
        x.view(-1)[:4] = torch.tensor([-30.0, -8.0, 8.0, 30.0])
        return x
    return normal(g, *shape)


def generate(out):
    g = torch.Generator().manual_seed(11)
    for op, fn in BINARY.items():
        for name, sa, sb in BINARY_SHAPES:
            a = normal(g, *sa)
            b = away_from_zero(g, *sb) if op == "div" else normal(g, *sb)
            save_case(os.path.join(out, f"{op}_{name}.safetensors"), {"a": a, "b": b}, fn, {"op": op})

    for fname, op, params, kind, shape in UNARY:
        a = make_input(g, kind, shape)
        fn = UNARY_FN[op]
        save_case(os.path.join(out, f"{fname}.safetensors"), {"a": a}, lambda a, fn=fn, p=params: fn(a, p),
                  {"op": op, **params})

    for name, sa, sm, dt, value in MASKED_FILL:
        a = normal(g, *sa)
        mask = (torch.rand(sm, generator=g) < 0.4).to(dt)
        save_case(os.path.join(out, f"masked_fill_{name}.safetensors"), {"a": a, "mask": mask},
                  lambda a, mask, v=value: a.masked_fill(mask.bool(), v), {"op": "masked_fill", "value": value})
