"""Helpers shared by the golden generators: build one op case with PyTorch and save it.

A case file is a safetensors file with tensors
    in.<name>    each input (f32, or i64/i32/bool for indices and masks)
    out          the op's output, computed in float64 from the f32 inputs, stored as f32
    gout         the upstream gradient used for the backward pass
    grad.<name>  d(sum(out * gout)) / d(input) for each float input that takes a gradient
and metadata "inputs" (names in call order; an input given as None is passed to the C op as NULL)
and "params" ("key=value,key=value": whatever the C adapter needs to call the op).
"""
import json
import os

import torch
from safetensors.torch import save_file


def randn(gen, *shape, scale=1.0):
    return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).float()


def save_case(path, inputs, fn, params=None, grad=True, seed=0):
    """inputs: ordered dict name -> tensor or None. fn(**inputs_as_float64) -> output tensor."""
    gen = torch.Generator().manual_seed(seed + 7)
    call = {}
    for name, t in inputs.items():
        if t is None:
            call[name] = None
        elif t.is_floating_point():
            call[name] = t.double().requires_grad_(grad)
        else:
            call[name] = t
    out = fn(**call)
    tensors = {}
    for name, t in inputs.items():
        if t is not None:
            tensors["in." + name] = t.contiguous()
    tensors["out"] = out.detach().float().contiguous() if out.is_floating_point() else out.detach().contiguous()
    if grad and out.is_floating_point() and out.requires_grad:
        gout = torch.randn(out.shape, generator=gen, dtype=torch.float64)
        out.backward(gout)
        tensors["gout"] = gout.float().contiguous()
        for name, t in call.items():
            if t is not None and t.is_floating_point() and t.grad is not None:
                tensors["grad." + name] = t.grad.float().contiguous()
    meta = {
        "inputs": ",".join(inputs.keys()),
        "params": ",".join(f"{k}={v}" for k, v in (params or {}).items()),
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(tensors, path, metadata=meta)
    canonicalise_header(path)


def canonicalise_header(path):
    """Rewrite the header with sorted keys: the safetensors writer emits metadata in hash order, so the
    same case would otherwise give a different file (and a git diff) on every run."""
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + blob[8 + n:])
