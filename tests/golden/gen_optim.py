"""Goldens for the AdamW step (core/optim.c: gvm_adamw_step), checked by tests/test_optim.c.

Each case runs torch.optim.AdamW in float64 for STEPS steps from f32 starting values and f32 gradients
(with every hyperparameter first rounded to f32, as the C struct holds them). One file per case,
data/optim/<case>.safetensors:
    param0     [n]         the starting parameters (m and v start at zero, as PyTorch's do)
    grad       [STEPS, n]  the raw gradient of each step; the optimiser sees grad * grad_scale
    param_f64  [STEPS, n]  the parameters after each step of an all-float64 run (stored as f32)
    param, m, v [STEPS, n] parameters, exp_avg and exp_avg_sq after each step of a float64 run whose state
                           is rounded to f32 after every step, as gvm stores it: each step is then exact up
                           to float64 rounding from the very state the C kernel starts from, so the test
                           can hold every element to 1e-6 even where m cancels to near zero (the all-float64
                           run differs there by the f32 rounding of earlier steps, which no kernel avoids)
metadata: "params" = lr, beta1, beta2, eps, weight_decay, grad_scale, steps (key=value,...) and
"inputs" (unused: kept for the shared golden format).
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

from golden import canonicalise_header, randn

STEPS = 5


def f32(x):
    return float(np.float32(x))


def run_adamw(param0, grads, lr, b1, b2, eps, wd, gs, f32_state):
    """Parameters, exp_avg, exp_avg_sq after each step (each [STEPS, n], f32)."""
    p = param0.double().clone().requires_grad_(True)
    opt = torch.optim.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, foreach=False)
    ps, ms, vs = [], [], []
    for s in range(grads.shape[0]):
        p.grad = grads[s].double() * gs
        opt.step()
        st = opt.state[p]
        if f32_state:
            with torch.no_grad():
                for t in (p, st["exp_avg"], st["exp_avg_sq"]):
                    t.copy_(t.float().double())
        ps.append(p.detach().float().clone())
        ms.append(st["exp_avg"].float().clone())
        vs.append(st["exp_avg_sq"].float().clone())
    return torch.stack(ps), torch.stack(ms), torch.stack(vs)


def save_adamw_case(path, param0, grads, lr, betas, eps, wd, grad_scale):
    hp = (f32(lr), f32(betas[0]), f32(betas[1]), f32(eps), f32(wd), f32(grad_scale))
    lr, b1, b2, eps, wd, gs = hp
    p64, _, _ = run_adamw(param0, grads, *hp, f32_state=False)
    p32, m32, v32 = run_adamw(param0, grads, *hp, f32_state=True)
    tensors = {"param0": param0.contiguous(), "grad": grads.contiguous(), "param_f64": p64, "param": p32,
               "m": m32, "v": v32}
    params = {"lr": repr(lr), "beta1": repr(b1), "beta2": repr(b2), "eps": repr(eps), "weight_decay": repr(wd),
              "grad_scale": repr(gs), "steps": grads.shape[0]}
    meta = {"inputs": "param0,grad", "params": ",".join(f"{k}={v}" for k, v in params.items())}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(tensors, path, metadata=meta)
    canonicalise_header(path)


def generate(out):
    g = torch.Generator().manual_seed(11)

    # Typical training values; element 0 mod 17 has a zero gradient at every step (m = v = 0: only the
    # weight decay moves it), and step 3 has an all-zero gradient (the update runs on the decayed moments).
    n = 129
    p0 = randn(g, n)
    grads = randn(g, STEPS, n, scale=0.1)
    grads[:, ::17] = 0.0
    grads[2] = 0.0
    save_adamw_case(os.path.join(out, "adamw_basic.safetensors"), p0, grads, 1e-3, (0.9, 0.999), 1e-8, 0.01, 1.0)

    # Loss-scaled gradients (x 2^15) unscaled through grad_scale together with a clipping factor 0.37, and a
    # strong weight decay. A kernel that ignored grad_scale would still move params alike (Adam is scale
    # invariant up to eps) but its m and v would be off by the scale: the test compares those too.
    n = 67
    p0 = randn(g, n)
    grads = randn(g, STEPS, n, scale=32768.0)
    save_adamw_case(os.path.join(out, "adamw_grad_scale.safetensors"), p0, grads, 1e-2, (0.9, 0.95), 1e-8, 0.1,
                    0.37 / 32768.0)

    # Large values: parameters ~1e3, gradients ~1e4 (v ~ 1e8 * (1 - beta2)), lr large enough to move them.
    n = 64
    p0 = randn(g, n, scale=1e3)
    grads = randn(g, STEPS, n, scale=1e4)
    save_adamw_case(os.path.join(out, "adamw_large.safetensors"), p0, grads, 0.5, (0.8, 0.99), 1e-8, 0.05, 1.0)

    # Small values: gradients ~1e-8, so sqrt(v_hat) is of the order of eps and where eps is added matters;
    # parameters ~1e-3, no weight decay.
    n = 64
    p0 = randn(g, n, scale=1e-3)
    grads = randn(g, STEPS, n, scale=1e-8)
    save_adamw_case(os.path.join(out, "adamw_small.safetensors"), p0, grads, 1e-4, (0.9, 0.999), 1e-8, 0.0, 1.0)
