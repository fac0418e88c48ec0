#!/usr/bin/env python3
"""The PyTorch twin of bench_gvmgen_step.c: one CPU training step of the whole GVMGen model, in float32.

Same model, parameter names, sizes, inputs, loss and optimiser as the C benchmark (see its header):
frozen CLIP ViT (quick_gelu, run under no_grad) -> Q-Former (BLIP-2 layers, query tokens only, hidden dropout,
mean-pool, ln_post, proj) -> enc_to_dec_proj -> MusicGen decoder (summed codebook embeddings + sinusoidal
positions, pre-norm layers with causal self-attention and cross-attention to the frames, GELU FFN, no
biases) -> K heads -> per-codebook cross-entropy on the delayed targets, mean over K; global-norm clip 1.0;
torch.optim.AdamW over the trainable parameters (lr 1e-4, betas 0.9/0.95, weight decay 0.1, PyTorch's
default CPU implementation). Attention is F.scaled_dot_product_attention. Prints the same line and JSON as
the C program. Peak memory: growth of the resident set (VmHWM at the end minus VmRSS before the model was
built), the method the C program uses.

    OMP_NUM_THREADS=2 python3 tools/bench/bench_gvmgen_step.py --threads 2
    --check FILE: load the parameters bench_gvmgen_step --save-params FILE --dropout 0 wrote and print the
                  first step's loss (to compare with the C program's loss0: same model, same maths).
"""
import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE = -100


def proc_status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1]) * 1024.0
    return 0.0


def hash_u32(n, salt):  # as bench_gvmgen_step.c
    x = (np.arange(n, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(salt)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(2246822519)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(13)
    return x


def attend(q_lin, k_lin, v_lin, x, kv, heads, causal=False, mask=None):
    B, Tq, E = x.shape
    Tk = kv.shape[1]
    q = q_lin(x).view(B, Tq, heads, -1).transpose(1, 2)
    k = k_lin(kv).view(B, Tk, heads, -1).transpose(1, 2)
    v = v_lin(kv).view(B, Tk, heads, -1).transpose(1, 2)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    return o.transpose(1, 2).reshape(B, Tq, E)


# ---- CLIP ViT (HF CLIPVisionModel names) ------------------------------------------------------------------------
class ClipAttention(nn.Module):
    def __init__(self, w, h):
        super().__init__()
        self.h = h
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(w, w) for _ in range(4))

    def forward(self, x):
        return self.out_proj(attend(self.q_proj, self.k_proj, self.v_proj, x, x, self.h))


class ClipLayer(nn.Module):
    def __init__(self, w, h):
        super().__init__()
        self.self_attn = ClipAttention(w, h)
        self.layer_norm1 = nn.LayerNorm(w)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(w, 4 * w), nn.Linear(4 * w, w)
        self.layer_norm2 = nn.LayerNorm(w)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        h = self.mlp.fc1(self.layer_norm2(x))
        return x + self.mlp.fc2(h * torch.sigmoid(1.702 * h))


class ClipVision(nn.Module):
    def __init__(self, a):
        super().__init__()
        w, n = a.vit_width, (a.image // a.patch) ** 2 + 1
        self.embeddings = nn.Module()
        self.embeddings.class_embedding = nn.Parameter(torch.zeros(w))
        self.embeddings.patch_embedding = nn.Conv2d(3, w, a.patch, stride=a.patch, bias=False)
        self.embeddings.position_embedding = nn.Embedding(n, w)
        self.pre_layrnorm = nn.LayerNorm(w)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(ClipLayer(w, a.vit_heads) for _ in range(a.vit_layers))
        self.post_layernorm = nn.LayerNorm(w)  # registered, unused (GVMGen takes the tokens before it)

    def forward(self, images):
        e = self.embeddings
        p = e.patch_embedding(images).flatten(2).transpose(1, 2)
        x = torch.cat([e.class_embedding.expand(images.shape[0], 1, -1), p], 1) + e.position_embedding.weight
        x = self.pre_layrnorm(x)
        for layer in self.encoder.layers:
            x = layer(x)
        return x


# ---- Q-Former (HF Blip2QFormerModel names) + GVMGen's head ------------------------------------------------------
class QfAttention(nn.Module):
    def __init__(self, w, kv, h, p):
        super().__init__()
        self.h, self.p = h, p
        self.attention = nn.Module()
        att = self.attention
        att.query, att.key, att.value = nn.Linear(w, w), nn.Linear(kv, w), nn.Linear(kv, w)
        self.output = nn.Module()
        self.output.dense, self.output.LayerNorm = nn.Linear(w, w), nn.LayerNorm(w, eps=1e-12)

    def forward(self, x, kv):
        a = self.attention
        o = attend(a.query, a.key, a.value, x, kv, self.h)
        return self.output.LayerNorm(F.dropout(self.output.dense(o), self.p, self.training) + x)


class QfLayer(nn.Module):
    def __init__(self, i, a):
        super().__init__()
        w, self.p = a.qf_width, a.dropout
        self.attention = QfAttention(w, w, a.qf_heads, a.dropout)
        self.cross = i % 2 == 0
        if self.cross:
            self.crossattention = QfAttention(w, a.vit_width, a.qf_heads, a.dropout)
        self.intermediate_query = nn.Module()
        self.intermediate_query.dense = nn.Linear(w, a.qf_inter)
        self.output_query = nn.Module()
        self.output_query.dense, self.output_query.LayerNorm = nn.Linear(a.qf_inter, w), nn.LayerNorm(w, eps=1e-12)

    def forward(self, q, enc):
        q = self.attention(q, q)
        if self.cross:
            q = self.crossattention(q, enc)
        h = F.dropout(self.output_query.dense(F.gelu(self.intermediate_query.dense(q))), self.p, self.training)
        return self.output_query.LayerNorm(h + q)


class QFormer(nn.Module):
    def __init__(self, a):
        super().__init__()
        w, self.p = a.qf_width, a.dropout
        self.query_tokens = nn.Parameter(torch.zeros(1, a.queries, w))
        self.layernorm = nn.LayerNorm(w, eps=1e-12)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(QfLayer(i, a) for i in range(a.qf_layers))
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Linear(w, a.qf_out, bias=False)

    def forward(self, enc):
        q = F.dropout(self.layernorm(self.query_tokens.expand(enc.shape[0], -1, -1)), self.p, self.training)
        for layer in self.encoder.layer:
            q = layer(q, enc)
        return self.proj(self.ln_post(q.mean(1)))


# ---- music LM (HF MusicgenForCausalLM names) ---------------------------------------------------------------------
class LmAttention(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d, bias=False) for _ in range(4))

    def forward(self, x, kv, causal=False, mask=None):
        return self.out_proj(attend(self.q_proj, self.k_proj, self.v_proj, x, kv, self.h, causal, mask))


class DecoderLayer(nn.Module):
    def __init__(self, d, h, ffn):
        super().__init__()
        self.self_attn, self.self_attn_layer_norm = LmAttention(d, h), nn.LayerNorm(d)
        self.encoder_attn, self.encoder_attn_layer_norm = LmAttention(d, h), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, ffn, bias=False), nn.Linear(ffn, d, bias=False)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x, cond, cond_mask):
        h = self.self_attn_layer_norm(x)
        x = x + self.self_attn(h, h, causal=True)
        x = x + self.encoder_attn(self.encoder_attn_layer_norm(x), cond, mask=cond_mask)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


def sinusoidal(n, dim):  # as gvm_nn_music_lm_positions: double, rounded once
    half = dim // 2
    w = torch.exp(torch.arange(half, dtype=torch.float64) * -(math.log(10000) / (half - 1)))
    a = torch.arange(n, dtype=torch.float64)[:, None] * w[None, :]
    return torch.cat([torch.cos(a), torch.sin(a)], 1).float()


class GVMGen(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.vision_model = ClipVision(a)
        self.qformer = QFormer(a)
        self.enc_to_dec_proj = nn.Linear(a.qf_out, a.dim)
        self.model = nn.Module()
        self.model.decoder = nn.Module()
        dec = self.model.decoder
        dec.embed_tokens = nn.ModuleList(nn.Embedding(a.card + 1, a.dim) for _ in range(a.K))
        dec.layers = nn.ModuleList(DecoderLayer(a.dim, a.heads, a.ffn) for _ in range(a.layers))
        dec.layer_norm = nn.LayerNorm(a.dim)
        self.lm_heads = nn.ModuleList(nn.Linear(a.dim, a.card, bias=False) for _ in range(a.K))
        self.a = a
        self.register_buffer("pos", sinusoidal(a.T + a.K - 1, a.dim), persistent=False)

    def forward(self, frames, frame_mask, inputs, targets):
        a = self.a
        B, Tv = frames.shape[:2]
        with torch.no_grad():  # the frozen ViT
            tokens = self.vision_model(frames.flatten(0, 1))
        cond = self.enc_to_dec_proj(self.qformer(tokens).view(B, Tv, -1))  # [B, T_v, D]
        mask = frame_mask[:, None, None, :]                                  # [B, 1, 1, T_v] bool
        dec = self.model.decoder
        x = sum(dec.embed_tokens[k](inputs[:, k]) for k in range(a.K)) + self.pos
        for layer in dec.layers:
            x = layer(x, cond, mask)
        x = dec.layer_norm(x).flatten(0, 1)
        return sum(F.cross_entropy(h(x), targets[:, k].flatten(), ignore_index=IGNORE)
                   for k, h in enumerate(self.lm_heads)) / a.K


def lm_batch(codes, card):
    """The delay pattern (nn/delay_pattern.h) for full-length samples: inputs start with the special token."""
    B, K, T = codes.shape
    seq = torch.full((B, K, T + K - 1), card, dtype=codes.dtype)
    tgt = torch.full((B, K, T + K - 1), IGNORE, dtype=codes.dtype)
    for k in range(K):
        seq[:, k, k:k + T] = codes[:, k]
        tgt[:, k, k:k + T] = codes[:, k]
    inputs = torch.cat([torch.full_like(seq[:, :, :1], card), seq[:, :, :-1]], 2)
    return inputs, tgt


def step_flops(a):  # as bench_gvmgen_step.c
    imgs, grid = a.B * a.frames, a.image // a.patch
    N, Wv, Wq, Q = grid * grid + 1, a.vit_width, a.qf_width, a.queries
    vit = imgs * (N - 1) * 2 * (3.0 * a.patch * a.patch) * Wv + \
        a.vit_layers * imgs * (N * 2 * (4 * Wv * Wv + 2 * Wv * 4 * Wv) + 4 * N * N * Wv)
    n_cross = (a.qf_layers + 1) // 2
    qf = a.qf_layers * imgs * (Q * 2 * (4 * Wq * Wq + 2 * Wq * a.qf_inter) + 4 * Q * Q * Wq) + \
        n_cross * imgs * (Q * 2 * 2 * Wq * Wq + N * 2 * 2 * Wv * Wq + 4 * Q * N * Wq) + \
        imgs * 2 * (Wq * a.qf_out + a.qf_out * a.dim)
    S, D = a.T + a.K - 1, a.dim
    tok = a.B * S
    lm = a.layers * (tok * 2 * (6 * D * D + 2 * D * a.ffn) + a.B * a.frames * 2 * 2 * D * D +
                     a.B * (2 * S * S * D) + a.B * 4 * S * a.frames * D) + tok * 2 * a.K * D * a.card
    return vit + 3 * (qf + lm)


def init_(model):
    """The nn/module.h convention gvm's reset_parameters follows: weights N(0, 0.02), biases 0, LayerNorm 1/0."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.LayerNorm):
                mod.weight.fill_(1), mod.bias.zero_()
            elif isinstance(mod, (nn.Linear, nn.Conv2d, nn.Embedding)):
                mod.weight.normal_(0, 0.02)
                if getattr(mod, "bias", None) is not None:
                    mod.bias.zero_()
        for p in (model.vision_model.embeddings.class_embedding, model.qformer.query_tokens):
            p.normal_(0, 0.02)


def main():
    p = argparse.ArgumentParser()
    for name, default in [("steps", 5), ("warmup", 2), ("B", 2), ("frames", 30), ("T", 1500), ("image", 224),
                          ("patch", 28), ("vit-width", 256), ("vit-layers", 4), ("vit-heads", 4), ("qf-width", 384),
                          ("qf-layers", 6), ("qf-heads", 6), ("queries", 16), ("qf-inter", 1536), ("qf-out", 768),
                          ("dim", 512), ("heads", 8), ("layers", 6), ("ffn", 2048), ("K", 4), ("card", 2048),
                          ("threads", 0)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--check", help="parameters saved by bench_gvmgen_step --save-params")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    rss0 = proc_status_bytes("VmRSS")
    torch.manual_seed(0)
    model = GVMGen(a)
    init_(model)
    if a.check:
        from safetensors.torch import load_file
        model.load_state_dict(load_file(a.check), strict=True)
    model.vision_model.requires_grad_(False)
    model.train()
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)

    frames = torch.from_numpy(((hash_u32(a.B * a.frames * 3 * a.image * a.image, 1) >> np.uint64(22))
                               .astype(np.float32) / 512.0 - 1.0)).view(a.B, a.frames, 3, a.image, a.image)
    frame_mask = torch.ones(a.B, a.frames, dtype=torch.bool)
    codes = torch.from_numpy((hash_u32(a.B * a.K * a.T, 2) % np.uint64(a.card)).astype(np.int64)).view(a.B, a.K, a.T)
    inputs, targets = lm_batch(codes, a.card)

    times, cpu, losses = [], [], []
    for s in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = model(frames, frame_mask, inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if a.check and len(losses) == 2:  # the first loss checks the forward, the second the step
            print(f"torch loss0 {losses[0]:.7f} loss1 {losses[1]:.7f}")
            return
    med = sorted(times[a.warmup:])[a.steps // 2]
    cpu_med = sorted(cpu[a.warmup:])[a.steps // 2]
    gflops = step_flops(a) / med / 1e9
    peak_mb = (proc_status_bytes("VmHWM") - rss0) / 1e6
    n_params = sum(q.numel() for q in model.parameters())
    n_train = sum(q.numel() for q in trainable)
    th = torch.get_num_threads()
    print(f"torch cpu f32 threads {th} ({torch.__version__}): {med * 1e3:.1f} ms/step (median of {a.steps}; "
          f"CPU {cpu_med * 1e3:.0f} ms), {gflops:.1f} GFLOP/s, peak RSS +{peak_mb:.0f} MB, {n_params / 1e6:.2f}M "
          f"params ({n_train / 1e6:.2f}M trainable), loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    print(json.dumps({"impl": "torch", "threads": th, "ms": round(med * 1e3, 3), "cpu_ms": round(cpu_med * 1e3, 3),
                      "gflops": round(gflops, 2), "gflop_per_step": round(step_flops(a) / 1e9, 3),
                      "peak_rss_mb": round(peak_mb, 1), "params": n_params, "trainable": n_train,
                      "loss0": round(losses[0], 7), "loss_last": round(losses[-1], 7)}))


if __name__ == "__main__":
    main()
