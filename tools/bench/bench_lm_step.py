#!/usr/bin/env python3
"""The PyTorch twin of bench_lm_step.c: one training step of the gvmgen-small music decoder.

Same model, sizes, loss and optimiser as the C benchmark (see its header): K summed codebook embeddings +
sinusoidal positions, L pre-norm decoder layers (causal self-attention, cross-attention to per-frame visual
vectors, GELU FFN; LayerNorm, no biases), K output heads, cross-entropy averaged over K, global-norm clip
1.0, fused AdamW. Attention is F.scaled_dot_product_attention (PyTorch picks flash or memory-efficient
kernels); autocast bf16/f16 as torch.autocast does it. Prints the same line and JSON as the C program.

    python3 tools/bench/bench_lm_step.py --device cuda --autocast bf16
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Layer(nn.Module):
    def __init__(self, d, h, ffn):
        super().__init__()
        self.h = h
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.cq, self.ck, self.cv, self.co = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, ffn, bias=False), nn.Linear(ffn, d, bias=False)

    def attend(self, x, kv, wq, wk, wv, wo, causal):
        B, Tq, D = x.shape
        Tk = kv.shape[1]
        q = wq(x).view(B, Tq, self.h, -1).transpose(1, 2)
        k = wk(kv).view(B, Tk, self.h, -1).transpose(1, 2)
        v = wv(kv).view(B, Tk, self.h, -1).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return wo(a.transpose(1, 2).reshape(B, Tq, D))

    def forward(self, x, cond):
        h = self.ln1(x)
        x = x + self.attend(h, h, self.q, self.k, self.v, self.o, True)
        h = self.ln2(x)
        x = x + self.attend(h, cond, self.cq, self.ck, self.cv, self.co, False)
        return x + self.fc2(F.gelu(self.fc1(self.ln3(x))))


class LM(nn.Module):
    def __init__(self, a):
        super().__init__()
        d = a.dim
        self.emb = nn.ModuleList(nn.Embedding(a.card + 1, d) for _ in range(a.K))
        self.vis_proj = nn.Linear(a.vis_dim, d, bias=False)
        self.layers = nn.ModuleList(Layer(d, a.heads, a.ffn) for _ in range(a.layers))
        self.lnf = nn.LayerNorm(d)
        self.heads = nn.ModuleList(nn.Linear(d, a.card, bias=False) for _ in range(a.K))
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, codes, targets, vis, pos):
        x = sum(e(c) for e, c in zip(self.emb, codes)) + pos  # [B, T, D]
        cond = self.vis_proj(vis)
        for layer in self.layers:
            x = layer(x, cond)
        x = self.lnf(x).flatten(0, 1)
        return sum(F.cross_entropy(h(x).float(), t.flatten()) for h, t in zip(self.heads, targets)) / len(self.heads)


def step_flops(a):  # as bench_lm_step.c
    D, T, B, Fr, L = a.dim, a.T, a.B, a.frames, a.layers
    per_token = L * (6 * D * D + 2 * a.ffn * D) + a.K * D * a.card
    fwd = 2 * B * T * per_token + 2 * B * Fr * (a.vis_dim * D + L * 2 * D * D) + L * B * (2 * T * T * D + 4 * T * Fr * D)
    return 3 * fwd


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--autocast", default="f32", choices=["f32", "bf16", "f16"])
    for name, default in [("layers", 24), ("dim", 1024), ("heads", 16), ("ffn", 0), ("T", 1500), ("B", 4),
                          ("frames", 30), ("K", 4), ("card", 2048), ("steps", 10), ("warmup", 3)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--vis-dim", dest="vis_dim", type=int, default=768)
    p.add_argument("--peak-tflops", type=float, default=0)
    a = p.parse_args()
    a.ffn = a.ffn or 4 * a.dim
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # f32 means f32, as in gvm
        torch.backends.cudnn.allow_tf32 = False
    peak = a.peak_tflops or (0 if dev.type == "cpu" else 66.9 if a.autocast == "f32" else 989.4)
    torch.manual_seed(0)
    model = LM(a).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1,
                            fused=dev.type == "cuda")
    g = torch.Generator().manual_seed(7)
    codes = [torch.randint(0, a.card + 1, (a.B, a.T), generator=g).to(dev) for _ in range(a.K)]
    targets = [torch.randint(0, a.card, (a.B, a.T), generator=g).to(dev) for _ in range(a.K)]
    vis = torch.randn(a.B, a.frames, a.vis_dim, generator=g).to(dev)
    half = a.dim // 2
    t = torch.arange(a.T, dtype=torch.float64)[:, None]
    ang = t / torch.pow(10000.0, torch.arange(half, dtype=torch.float64) / max(half - 1, 1))
    pos = torch.cat([ang.cos(), ang.sin()], 1).float().to(dev)
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16}.get(a.autocast)
    scaler = torch.amp.GradScaler(enabled=a.autocast == "f16")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for s in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            loss = model(codes, targets, vis, pos)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
        sync()
        times.append(time.perf_counter() - t0)
    med = sorted(times[a.warmup:])[a.steps // 2]
    tokens = a.B * a.T
    tflops = step_flops(a) / med / 1e12
    peak_gib = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else 0.0
    n_params = sum(p.numel() for p in model.parameters())
    line = (f"torch {dev.type:<5} {a.autocast:<4} L{a.layers} D{a.dim} H{a.heads} T{a.T} B{a.B}: {med * 1e3:.1f} ms/step "
            f"(median of {a.steps}), {tokens / med:.0f} tokens/s, {tflops:.1f} TFLOP/s")
    if peak:
        line += f", MFU {100 * tflops / peak:.1f}% of {peak:.0f}"
    line += f", peak {peak_gib:.2f} GiB, {n_params / 1e6:.1f}M params, loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    print(line)
    print(json.dumps({"impl": "torch", "device": dev.type, "autocast": a.autocast, "ms": round(med * 1e3, 3),
                      "tokens_per_s": round(tokens / med, 1), "tflops": round(tflops, 2), "peak_gib": round(peak_gib, 3),
                      "params": n_params}))


if __name__ == "__main__":
    main()
