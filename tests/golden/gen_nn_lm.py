"""Goldens for the music decoder nn/music_lm.c and the delay pattern nn/delay_pattern.c.

The twin is Hugging Face's MusicgenForCausalLM written out in float64 (transformers itself is not needed):
summed codebook embeddings, MusicgenSinusoidalPositionalEmbedding, pre-norm decoder layers with
cross-attention (gen_nn.DecoderLayer), final LayerNorm, K bias-free heads, lm_logits [B, K, S, card].
The delay pattern follows audiocraft's DelayedPatternProvider (delays 0..K-1, an empty first step).

lm.safetensors:
    param.<HF name>, grad.param.<HF name>   all parameters and their gradients for sum(out * gout)
    in.frames [B, K, T] i64, in.lengths [B] i64   codes before interleaving and frames per sample
    in.codes [B, K, S] i64                    the LM input (start step + delayed sequence), S = T + K - 1
    in.targets [B, K, S] i64                  delayed codes, -100 where special or padding
    in.cond [B, F, D], in.cond_mask [B, F] u8
    out [B, K, S, card], gout, grad.in.cond
    loss [1]                                  per-codebook CE on valid targets, mean over K
    loss_grad_logits [B, K, S, card]          d loss / d logits
"""
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from gen_nn import DecoderLayer, fill
from golden import canonicalise_header
from safetensors.torch import save_file

D = torch.float64
IGNORE = -100


def sinusoidal(n, dim, offset=0):
    """MusicgenSinusoidalPositionalEmbedding.get_embedding (in float64)."""
    half = dim // 2
    w = torch.exp(torch.arange(half, dtype=D) * -(math.log(10000) / (half - 1)))
    a = torch.arange(offset, offset + n, dtype=D)[:, None] * w[None, :]
    e = torch.cat([torch.cos(a), torch.sin(a)], dim=1)
    if dim % 2 == 1:
        e = torch.cat([e, torch.zeros(n, 1, dtype=D)], dim=1)
    return e


class MusicLM(nn.Module):
    def __init__(self, k, card, d, h, layers, ffn):
        super().__init__()
        self.model = nn.Module()
        self.model.decoder = nn.Module()
        self.model.decoder.embed_tokens = nn.ModuleList([nn.Embedding(card + 1, d) for _ in range(k)])
        self.model.decoder.layers = nn.ModuleList([DecoderLayer(d, h, ffn) for _ in range(layers)])
        self.model.decoder.layer_norm = nn.LayerNorm(d)
        self.lm_heads = nn.ModuleList([nn.Linear(d, card, bias=False) for _ in range(k)])
        self.k, self.d = k, d

    def forward(self, codes, cond, cond_mask):
        dec = self.model.decoder
        x = sum(dec.embed_tokens[k](codes[:, k]) for k in range(self.k))  # [B, S, D]
        x = x + sinusoidal(codes.shape[2], self.d)[None]
        for layer in dec.layers:
            x = layer(x, None, cond, cond_mask)
        x = dec.layer_norm(x)
        return torch.stack([head(x) for head in self.lm_heads], dim=1)  # [B, K, S, card]


def delay_build(codes, special, lengths=None):
    """audiocraft: codebook k of frame t at step t + k; everything else special. [B, K, T] -> [B, K, T+K-1]."""
    b, k, t = codes.shape
    seq = torch.full((b, k, t + k - 1), special, dtype=codes.dtype)
    for bi in range(b):
        n = t if lengths is None else int(lengths[bi])
        for q in range(k):
            seq[bi, q, q:q + n] = codes[bi, q, :n]
    return seq


def lm_batch(codes, lengths, special):
    seq = delay_build(codes, special, lengths)
    inputs = torch.cat([torch.full_like(seq[:, :, :1], special), seq[:, :, :-1]], dim=2)
    targets = seq.clone()
    b, k, s = seq.shape
    for bi in range(b):
        for q in range(k):
            for st in range(s):
                if not (0 <= st - q < int(lengths[bi])):
                    targets[bi, q, st] = IGNORE
    return inputs, targets


def generate(out):
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(77)
    K, card, d, h, layers, ffn, B, T, Fr = 4, 16, 32, 4, 2, 128, 2, 4, 3
    frames = torch.randint(0, card, (B, K, T), generator=g, dtype=torch.int64)
    lengths = torch.tensor([T, T - 1], dtype=torch.int64)  # sample 1 is padded by one frame
    codes, targets = lm_batch(frames, lengths, card)        # [B, K, S], S = 7
    cond = torch.randn(B, Fr, d, generator=g, dtype=D).float()
    cond_mask = torch.tensor([[1, 1, 1], [1, 0, 1]], dtype=torch.uint8)

    m = MusicLM(K, card, d, h, layers, ffn).to(D)
    fill(m, g)
    cond64 = cond.double().requires_grad_(True)
    out_ = m(codes, cond64, cond_mask.bool())
    gout = torch.randn(out_.shape, generator=g, dtype=D)
    out_.backward(gout)
    tensors = {"out": out_.detach().float(), "gout": gout.float(), "grad.in.cond": cond64.grad.float(),
               "in.frames": frames, "in.lengths": lengths, "in.codes": codes, "in.targets": targets,
               "in.cond": cond, "in.cond_mask": cond_mask}
    for name, p in m.named_parameters():
        tensors["param." + name] = p.detach().float()
        tensors["grad.param." + name] = p.grad.float()

    # the loss on the (float32-rounded) logits the C test loads as leaves
    logits = out_.detach().float().double().requires_grad_(True)
    ce = [F.cross_entropy(logits[:, k].reshape(-1, card), targets[:, k].reshape(-1), ignore_index=IGNORE)
          for k in range(K)]
    loss = sum(ce) / K
    loss.backward()
    tensors["loss"] = loss.detach().float().reshape(1)
    tensors["loss_grad_logits"] = logits.grad.float()

    meta = {"params": f"K={K},card={card},d_model={d},heads={h},layers={layers},ffn={ffn}"}
    path = os.path.join(out, "lm.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=meta)
    canonicalise_header(path)
