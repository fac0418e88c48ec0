#!/usr/bin/env python3
"""CPU generation speed of the music LM in PyTorch: the twins of tools/bench/bench_generate.c.

--impl torch   a PyTorch twin of gvm's decoder (nn/music_lm.h: K summed codebook embeddings + sinusoidal
               positions, pre-norm layers with causal self-attention, cross-attention to the condition and a
               GELU FFN, no linear biases, final LayerNorm, K heads) with a preallocated KV cache per layer
               ([rows, H, S, Dh], written in place; the condition's K/V projected once), driven by the same
               loop as nn/generate.c: the delay pattern (start token `card` at step 0, `card` where a codebook
               has not started or has ended), classifier-free guidance as 2B rows (the null rows get a zero
               condition whose cross-attention output is 0, as gvm's all-zero mask gives),
               uncond + (cond - uncond) * scale, top-k 250, temperature 1, one multinomial draw, seeded.
--impl hf      transformers' MusicgenForCausalLM (decoder only) from an explicit MusicgenDecoderConfig with
               the same sizes, random init (no download), and its own `generate`: its cache, its delay
               pattern, do_sample with top_k 250, guidance_scale for CFG (encoder_hidden_states [2B, F, D]:
               the condition, then zeros with a zero encoder_attention_mask, as its conditional model feeds).

Both run under torch.no_grad with torch.set_num_threads(--threads) and print the C program's line and JSON:
the median over --runs of one whole generation of --frames codec frames, after one --warmup-frames
generation. The condition (random [1, F, D]) is made outside the timed region.

    python3 tools/bench/bench_generate.py --impl torch --size demo --frames 500 --cfg 3 --threads 2
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CODEC_FRAME_RATE = 50.0
SIZES = {"demo": dict(dim=128, heads=4, layers=2, ffn=512, K=4, card=256),
         "small": dict(dim=1024, heads=16, layers=24, ffn=4096, K=4, card=2048)}


class Attention(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h, self.dh = h, d // h
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))

    def heads(self, x):  # [R, T, D] -> [R, H, T, Dh]
        return x.view(x.shape[0], x.shape[1], self.h, self.dh).transpose(1, 2)


class Layer(nn.Module):
    def __init__(self, d, h, ffn):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn, self.cross_attn = Attention(d, h), Attention(d, h)
        self.fc1, self.fc2 = nn.Linear(d, ffn, bias=False), nn.Linear(ffn, d, bias=False)

    def forward(self, x, t, cache, cross_kv, keep):
        """x [R, 1, D] at step t; cache (k, v) [R, H, S, Dh] written at t; cross_kv (k, v) [R, H, F, Dh]."""
        R, _, D = x.shape
        a = self.self_attn
        h = self.ln1(x)
        kc, vc = cache
        kc[:, :, t:t + 1] = a.heads(a.k(h))
        vc[:, :, t:t + 1] = a.heads(a.v(h))
        o = F.scaled_dot_product_attention(a.heads(a.q(h)), kc[:, :, :t + 1], vc[:, :, :t + 1])
        x = x + a.o(o.transpose(1, 2).reshape(R, 1, D))
        c = self.cross_attn
        o = F.scaled_dot_product_attention(c.heads(c.q(self.ln2(x))), *cross_kv)
        o = o.transpose(1, 2).reshape(R, 1, D)
        if keep is not None:  # the null rows of guidance: a fully masked cross-attention outputs 0
            o = o * keep
        x = x + c.o(o)
        return x + self.fc2(F.gelu(self.fc1(self.ln3(x))))


class LM(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        self.emb = nn.ModuleList(nn.Embedding(a.card + 1, a.dim) for _ in range(a.K))
        self.layers = nn.ModuleList(Layer(a.dim, a.heads, a.ffn) for _ in range(a.layers))
        self.lnf = nn.LayerNorm(a.dim)
        self.lm_heads = nn.ModuleList(nn.Linear(a.dim, a.card, bias=False) for _ in range(a.K))
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def positions(self, n):  # music_lm.h's table, [n, D]
        half = self.a.dim // 2
        t = torch.arange(n, dtype=torch.float64)[:, None]
        ang = t * torch.exp(-torch.arange(half, dtype=torch.float64) * math.log(10000.0) / max(half - 1, 1))
        pe = torch.cat([ang.cos(), ang.sin()], 1)
        if self.a.dim % 2:
            pe = torch.cat([pe, torch.zeros(n, 1, dtype=pe.dtype)], 1)
        return pe.float()

    @torch.no_grad()
    def generate(self, cond, T, cfg, top_k, seed):
        """cond [B, F, D] -> codes [B, K, T] (not delayed)."""
        a = self.a
        B, K, card = cond.shape[0], a.K, a.card
        S = T + K - 1
        guided = cfg > 0
        R = 2 * B if guided else B
        if guided:
            cond = torch.cat([cond, torch.zeros_like(cond)])
            keep = torch.cat([torch.ones(B, 1, 1), torch.zeros(B, 1, 1)])
        else:
            keep = None
        pe = self.positions(S)
        caches, cross = [], []
        for layer in self.layers:
            c = layer.cross_attn
            cross.append((c.heads(c.k(cond)), c.heads(c.v(cond))))
            caches.append((torch.empty(R, a.heads, S, a.dim // a.heads), torch.empty(R, a.heads, S, a.dim // a.heads)))
        steps = torch.arange(S)
        ks = torch.arange(K)[:, None]
        valid = (steps[None, :] >= ks) & (steps[None, :] - ks < T)  # [K, S]
        seq = torch.full((B, K, S), card, dtype=torch.long)
        g = torch.Generator().manual_seed(seed)
        tok = torch.full((R, K), card, dtype=torch.long)  # step 0: the start token
        for s in range(S):
            x = sum(self.emb[k](tok[:, k]) for k in range(K))[:, None] + pe[s]  # [R, 1, D]
            for i, layer in enumerate(self.layers):
                x = layer(x, s, caches[i], cross[i], keep)
            h = self.lnf(x[:, 0])  # [R, D]
            logits = torch.stack([head(h) for head in self.lm_heads], 1)  # [R, K, card]
            if guided:
                logits = logits[B:] + (logits[:B] - logits[B:]) * cfg
            if 0 < top_k < card:
                kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, -1).view(B * K, card)
            drawn = torch.multinomial(probs, 1, generator=g).view(B, K)
            seq[:, :, s] = torch.where(valid[:, s], drawn, card)
            tok = seq[:, :, s].repeat(2, 1) if guided else seq[:, :, s]
        return torch.stack([seq[:, k, k:k + T] for k in range(K)], 1)


def hf_model(a):
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM
    cfg = MusicgenDecoderConfig(vocab_size=a.card, max_position_embeddings=max(2048, a.frames + a.K + 8),
                                num_hidden_layers=a.layers, ffn_dim=a.ffn, num_attention_heads=a.heads,
                                hidden_size=a.dim, num_codebooks=a.K, dropout=0.0, attention_dropout=0.0,
                                activation_dropout=0.0, activation_function="gelu", scale_embedding=False,
                                pad_token_id=a.card, bos_token_id=a.card, decoder_start_token_id=a.card,
                                tie_word_embeddings=False)
    m = MusicgenForCausalLM(cfg).eval()
    gc = m.generation_config
    gc.pad_token_id = gc.bos_token_id = gc.decoder_start_token_id = a.card
    gc.eos_token_id = None
    return m


def hf_generate(m, a, cond, T, cfg, seed):
    B = cond.shape[0]
    mask = torch.ones(B, cond.shape[1], dtype=torch.long)
    kw = {}
    if cfg > 0:
        cond = torch.cat([cond, torch.zeros_like(cond)])
        mask = torch.cat([mask, torch.zeros_like(mask)])
        kw["guidance_scale"] = cfg
    ids = torch.full((B * a.K, 1), a.card, dtype=torch.long)
    # the cache its decoder makes for itself when it runs outside generate (decoder-only generate would make
    # a plain DynamicCache, into which the cross-attention would append the condition's K/V at every step)
    from transformers import DynamicCache, EncoderDecoderCache
    cache = EncoderDecoderCache(DynamicCache(config=m.config), DynamicCache(config=m.config))
    torch.manual_seed(seed)
    with torch.no_grad():
        out = m.generate(ids, attention_mask=torch.ones_like(ids), encoder_hidden_states=cond, cache=cache,
                         encoder_attention_mask=mask, do_sample=True, top_k=a.top_k, temperature=1.0,
                         max_length=T + a.K, min_length=0, num_return_sequences=1, num_beams=1, **kw)
    return out  # [B, K, T]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--impl", choices=["torch", "hf"], default="torch")
    p.add_argument("--size", choices=list(SIZES), default="demo")
    for name in ["dim", "heads", "layers", "ffn", "K", "card"]:
        p.add_argument("--" + name, type=int)
    p.add_argument("--frames", type=int, default=500)
    p.add_argument("--cond-frames", dest="cond_frames", type=int, default=30)
    p.add_argument("--cfg", type=float, default=0.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup-frames", dest="warmup_frames", type=int, default=-1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top-k", dest="top_k", type=int, default=250)
    a = p.parse_args()
    for k, v in SIZES[a.size].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.warmup_frames < 0:
        a.warmup_frames = min(a.frames, 32)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(7)
    cond = torch.randn(1, a.cond_frames, a.dim, generator=g)
    if a.impl == "torch":
        m = LM(a).eval()
        gen = lambda T: m.generate(cond, T, a.cfg, a.top_k, a.seed)
    else:
        m = hf_model(a)
        gen = lambda T: hf_generate(m, a, cond, T, a.cfg, a.seed)
    if a.warmup_frames > 0:
        gen(a.warmup_frames)
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        codes = gen(a.frames)
        times.append(time.perf_counter() - t0)
    assert tuple(codes.shape) == (1, a.K, a.frames), codes.shape
    assert int(codes.min()) >= 0 and int(codes.max()) < a.card, "a special token in the codes"
    med = statistics.median(times)
    fps = a.frames / med
    impl = {"torch": "torch-twin", "hf": "hf-generate"}[a.impl]
    print(f"{impl:<12} {a.size:<5} D{a.dim} H{a.heads} L{a.layers} K{a.K} card{a.card} cfg {a.cfg:g}: {a.frames} frames "
          f"in {med:.3f} s (median of {a.runs}) = {fps:.1f} codec frames/s, realtime x{fps / CODEC_FRAME_RATE:.2f} "
          f"(threads {torch.get_num_threads()}, torch {torch.__version__})")
    print(json.dumps({"impl": impl, "size": a.size, "cfg": a.cfg, "frames": a.frames, "s": round(med, 4),
                      "fps": round(fps, 2), "rtf": round(fps / CODEC_FRAME_RATE, 3), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
