"""Goldens for the model modules of nn/ (linear, embedding, layer_norm, mlp, attention, decoder layer).

Each case builds a PyTorch twin in float64 whose parameter names are those of the Hugging Face module
it mirrors (MusicgenAttention / MusicgenDecoderLayer: q_proj, self_attn_layer_norm, fc1, ...), fills the
parameters with fixed random f32 values, runs fixed inputs and the backward pass of sum(out * gout).
File layout (safetensors):
    param.<full name>       every parameter, as the C module registers it under metadata "prefix"
    in.<name>               inputs (x, cond: f32; idx: i64; masks: u8, 1 = attend)
    out, gout               output and the upstream gradient
    grad.param.<full name>  parameter gradients
    grad.in.<name>          input gradients (float inputs)
metadata "prefix" (the module's name prefix) and "params" (key=value config for the C test).
"""
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from golden import canonicalise_header
from safetensors.torch import save_file

D = torch.float64


class Attention(nn.Module):
    """Hugging Face MusicgenAttention (BART layout): separate projections, scale 1/sqrt(head_dim)."""

    def __init__(self, e, h, kv_dim=None, bias=False):
        super().__init__()
        kv_dim = kv_dim or e
        self.h, self.d = h, e // h
        self.k_proj = nn.Linear(kv_dim, e, bias=bias)
        self.v_proj = nn.Linear(kv_dim, e, bias=bias)
        self.q_proj = nn.Linear(e, e, bias=bias)
        self.out_proj = nn.Linear(e, e, bias=bias)

    def forward(self, x, kv=None, key_mask=None, causal=False):
        kv = x if kv is None else kv
        b, tq, _ = x.shape
        tk = kv.shape[1]
        q = self.q_proj(x).view(b, tq, self.h, self.d).transpose(1, 2) / math.sqrt(self.d)
        k = self.k_proj(kv).view(b, tk, self.h, self.d).transpose(1, 2)
        v = self.v_proj(kv).view(b, tk, self.h, self.d).transpose(1, 2)
        s = q @ k.transpose(-1, -2)  # [B, H, Tq, Tk]
        allowed = torch.ones(b, 1, tq, tk, dtype=torch.bool)
        if causal:  # end-aligned: query i sees keys j <= i + (Tk - Tq)
            allowed = allowed & (torch.arange(tk)[None, :] <= torch.arange(tq)[:, None] + (tk - tq))
        if key_mask is not None:
            allowed = allowed & key_mask.bool()[:, None, None, :]
        p = torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1)
        o = (p @ v).transpose(1, 2).reshape(b, tq, self.h * self.d)
        return self.out_proj(o)


class DecoderLayer(nn.Module):
    """Hugging Face MusicgenDecoderLayer (pre-norm, GELU, dropout 0)."""

    def __init__(self, d, h, ffn, cross=True, bias=False):
        super().__init__()
        self.self_attn = Attention(d, h, bias=bias)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.cross = cross
        if cross:
            self.encoder_attn = Attention(d, h, bias=bias)
            self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ffn, bias=bias)
        self.fc2 = nn.Linear(ffn, d, bias=bias)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x, self_mask=None, cond=None, cond_mask=None):
        x = x + self.self_attn(self.self_attn_layer_norm(x), key_mask=self_mask, causal=True)
        if self.cross:
            x = x + self.encoder_attn(self.encoder_attn_layer_norm(x), cond, key_mask=cond_mask)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class Mlp(nn.Module):
    def __init__(self, d, hidden, act, bias):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, d, bias=bias)
        self.act = act

    def forward(self, x):
        h = self.fc1(x)
        h = {"gelu": F.gelu, "quick_gelu": lambda a: a * torch.sigmoid(1.702 * a),
             "gelu_tanh": lambda a: F.gelu(a, approximate="tanh"), "relu": F.relu}[self.act](h)
        return self.fc2(h)


def fill(module, g):
    """Fixed f32 parameter values (not the 1/0 defaults, so every gradient path is exercised)."""
    with torch.no_grad():
        owners = dict(module.named_modules())
        for name, p in module.named_parameters():
            owner = owners[name.rsplit(".", 1)[0] if "." in name else ""]
            if isinstance(owner, nn.LayerNorm) and name.endswith("weight"):
                v = 1 + 0.2 * torch.randn(p.shape, generator=g, dtype=D)
            elif name.endswith("bias"):
                v = 0.2 * torch.randn(p.shape, generator=g, dtype=D)
            else:
                v = torch.randn(p.shape, generator=g, dtype=D) / math.sqrt(p.shape[-1])
            p.copy_(v.float().double())


def save(path, module, prefix, inputs, call, params, g):
    """inputs: dict name -> f32/int tensor; call(module, **double inputs) -> output."""
    module = module.to(D)
    fill(module, g)
    args = {}
    for k, t in inputs.items():
        args[k] = t.double().requires_grad_(True) if t.is_floating_point() else t
    out = call(module, **args)
    gout = torch.randn(out.shape, generator=g, dtype=D)
    out.backward(gout)
    pre = prefix + "." if prefix else ""
    tensors = {"out": out.detach().float(), "gout": gout.float()}
    for name, p in module.named_parameters():
        tensors["param." + pre + name] = p.detach().float()
        tensors["grad.param." + pre + name] = p.grad.float()
    for k, t in inputs.items():
        tensors["in." + k] = t.to(torch.uint8) if t.dtype == torch.bool else t
        if t.is_floating_point():
            tensors["grad.in." + k] = args[k].grad.float()
    meta = {"prefix": prefix, "params": ",".join(f"{k}={v}" for k, v in params.items())}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=meta)
    canonicalise_header(path)


def randn(g, *shape):
    return torch.randn(*shape, generator=g, dtype=D).float()


def generate(out):
    g = torch.Generator().manual_seed(2024)
    p = lambda name: os.path.join(out, name + ".safetensors")

    # linear, embedding, layer_norm: odd sizes, with and without bias, eps 1e-12 (Q-Former)
    save(p("linear_bias"), nn.Linear(5, 7), "proj", {"x": randn(g, 2, 3, 5)},
         lambda m, x: m(x), {"in": 5, "out": 7, "bias": 1}, g)
    save(p("linear_nobias"), nn.Linear(9, 3, bias=False), "model.decoder.layers.0.fc1", {"x": randn(g, 4, 9)},
         lambda m, x: m(x), {"in": 9, "out": 3, "bias": 0}, g)
    save(p("embedding"), nn.Embedding(11, 6), "model.decoder.embed_tokens.2",
         {"idx": torch.tensor([[0, 3, 10], [3, 3, 7]], dtype=torch.int64)},
         lambda m, idx: m(idx), {"num": 11, "dim": 6}, g)
    save(p("layer_norm"), nn.LayerNorm(7), "ln", {"x": randn(g, 2, 3, 7) * 3 + 1},
         lambda m, x: m(x), {"dim": 7, "eps": 1e-5}, g)
    save(p("layer_norm_eps12"), nn.LayerNorm(13, eps=1e-12), "qformer.layernorm", {"x": randn(g, 5, 13)},
         lambda m, x: m(x), {"dim": 13, "eps": 1e-12}, g)

    # mlp (fc1 -> act -> fc2)
    for act, bias in [("gelu", 0), ("quick_gelu", 1)]:
        save(p("mlp_" + act), Mlp(6, 10, act, bool(bias)), "mlp", {"x": randn(g, 2, 3, 6)},
             lambda m, x: m(x), {"dim": 6, "hidden": 10, "act": act, "bias": bias}, g)

    # attention: self causal with a key padding mask (padding at the end, so no query is left without keys)
    self_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    save(p("attn_self_causal"), Attention(12, 3), "model.decoder.layers.1.self_attn",
         {"x": randn(g, 2, 5, 12), "mask": self_mask},
         lambda m, x, mask: m(x, key_mask=mask, causal=True), {"embed_dim": 12, "heads": 3, "causal": 1, "bias": 0}, g)
    # odd head size (15 / 3 = 5), biases, no mask, not causal
    save(p("attn_self_full"), Attention(15, 3, bias=True), "attn", {"x": randn(g, 3, 4, 15)},
         lambda m, x: m(x), {"embed_dim": 15, "heads": 3, "causal": 0, "bias": 1}, g)
    # cross: Tq != Tk, a different key width, key mask with holes (every row keeps one key)
    # (one query row: the shape of a decoding step)
    cond_mask = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 0]], dtype=torch.bool)
    save(p("attn_cross_step"), Attention(8, 2, kv_dim=5), "encoder_attn",
         {"x": randn(g, 2, 1, 8), "cond": randn(g, 2, 4, 5), "mask": cond_mask},
         lambda m, x, cond, mask: m(x, cond, key_mask=mask),
         {"embed_dim": 8, "heads": 2, "kv_dim": 5, "causal": 0, "bias": 0}, g)
    save(p("attn_cross"), Attention(8, 2, kv_dim=5, bias=True), "model.decoder.layers.0.encoder_attn",
         {"x": randn(g, 2, 3, 8), "cond": randn(g, 2, 4, 5), "mask": cond_mask},
         lambda m, x, cond, mask: m(x, cond, key_mask=mask),
         {"embed_dim": 8, "heads": 2, "kv_dim": 5, "causal": 0, "bias": 1}, g)

    # MusicGen decoder layer: no biases, GELU, ffn 4x; with cross-attention and both masks, and without
    cond_mask = torch.tensor([[1, 1, 0], [1, 0, 1]], dtype=torch.bool)
    save(p("decoder_layer"), DecoderLayer(8, 2, 32), "model.decoder.layers.3",
         {"x": randn(g, 2, 5, 8), "self_mask": self_mask, "cond": randn(g, 2, 3, 8), "cond_mask": cond_mask},
         lambda m, x, self_mask, cond, cond_mask: m(x, self_mask, cond, cond_mask),
         {"d_model": 8, "heads": 2, "ffn": 32, "cross": 1}, g)
    save(p("decoder_layer_nocross"), DecoderLayer(6, 3, 10, cross=False), "layers.0", {"x": randn(g, 1, 7, 6)},
         lambda m, x: m(x), {"d_model": 6, "heads": 3, "ffn": 10, "cross": 0}, g)
