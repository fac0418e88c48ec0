"""Goldens for the whole GVMGen model nn/gvmgen.c: ViT -> Q-Former -> enc_to_dec_proj -> music LM loss.

The twin composes the float64 twins of gen_nn_vision.py (CLIPVisionModel, Blip2QFormer + GVMGen's head) and
gen_nn_lm.py (MusicgenForCausalLM, the delay pattern), with nn.Linear(out, D) as enc_to_dec_proj:
    cond = enc_to_dec_proj(qformer(vit(frames as B*T_v images).last).vec as [B, T_v, out])   [B, T_v, D]
    loss = mean_k CE(lm(delayed inputs, cond, frame_mask)[:, k], targets[:, k], ignore -100)
gvmgen.safetensors:
    param.<name>, grad.param.<name>   names as nn/gvmgen.h registers them (vision_model.*, qformer.*,
                                      enc_to_dec_proj.*, bare LM names); d loss / d param (0 where unused:
                                      the ViT's post_layernorm)
    in.frames [B, T_v, 3, S, S] f32, in.frame_mask [B, T_v] u8, in.codes [B, K, T] i64, in.code_len [B] i64
    out.cond [B, T_v, D], out.loss [1]
metadata "params": the tiny config.
"""
import os

import torch
import torch.nn.functional as F
from torch import nn

import gen_nn
import gen_nn_vision as vision
from gen_nn_lm import IGNORE, MusicLM, lm_batch
from golden import canonicalise_header
from safetensors.torch import save_file

D = torch.float64


def generate(out):
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(2025)
    cfg = dict(vit_width=16, vit_layers=1, vit_heads=2, vit_mlp=32, patch=4, image=8,
               qf_width=16, qf_layers=2, qf_heads=2, queries=2, qf_inter=32, qf_freq=2, qf_out=12,
               d_model=16, lm_layers=2, lm_heads=2, ffn=64, K=2, card=8, B=2, T_v=3, T=5)
    c = type("C", (), cfg)
    vit = vision.ClipVision(c.vit_width, c.vit_layers, c.vit_heads, c.vit_mlp, c.image, c.patch).to(D)
    qf = vision.QFormer(c.qf_width, c.qf_layers, c.qf_heads, c.queries, c.vit_width, c.qf_inter, c.qf_freq,
                        c.qf_out).to(D)
    proj = nn.Linear(c.qf_out, c.d_model).to(D)
    lm = MusicLM(c.K, c.card, c.d_model, c.lm_heads, c.lm_layers, c.ffn).to(D)
    vision.fill(vit, g)
    vision.fill(qf, g)
    gen_nn.fill(proj, g)
    gen_nn.fill(lm, g)
    parts = [("vision_model.", vit), ("qformer.", qf), ("enc_to_dec_proj.", proj), ("", lm)]

    frames = torch.randn(c.B, c.T_v, 3, c.image, c.image, generator=g, dtype=D).float()
    frame_mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.uint8)  # sample 1's last frame is padding
    codes = torch.randint(0, c.card, (c.B, c.K, c.T), generator=g, dtype=torch.int64)
    code_len = torch.tensor([c.T, c.T - 2], dtype=torch.int64)            # sample 1 is 2 frames shorter

    images = frames.double().reshape(c.B * c.T_v, 3, c.image, c.image)
    tokens = vit(images)[0]["last"]                                     # [B*T_v, N+1, W]
    vec = qf(tokens)[0]["vec"].reshape(c.B, c.T_v, c.qf_out)           # [B, T_v, out]
    cond = proj(vec)                                                    # [B, T_v, D]
    inputs, targets = lm_batch(codes, code_len, c.card)
    logits = lm(inputs, cond, frame_mask.bool())                        # [B, K, S, card]
    loss = sum(F.cross_entropy(logits[:, k].reshape(-1, c.card), targets[:, k].reshape(-1), ignore_index=IGNORE)
               for k in range(c.K)) / c.K
    loss.backward()

    tensors = {"in.frames": frames, "in.frame_mask": frame_mask, "in.codes": codes, "in.code_len": code_len,
               "out.cond": cond.detach().float(), "out.loss": loss.detach().float().reshape(1)}
    for pre, mod in parts:
        for name, p in mod.named_parameters():
            tensors["param." + pre + name] = p.detach().float()
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            tensors["grad.param." + pre + name] = grad.float()
    meta = {"params": ",".join(f"{k}={v}" for k, v in cfg.items())}
    path = os.path.join(out, "gvmgen.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=meta)
    canonicalise_header(path)
