"""Goldens for the vision modules of nn/: the CLIP ViT (nn/vit.c) and GVMGen's Q-Former (nn/qformer.c).

The twins are written here in float64 from the structure of Hugging Face's CLIPVisionModel (modeling_clip.py)
and Blip2QFormerModel (modeling_blip_2.py), with their parameter names (transformers is not a dependency).
Model file layout (safetensors, as gen_nn.py plus several outputs):
    param.<full name>       every parameter, as the C module registers it under metadata "prefix"
    in.<name>               inputs (images, encoder: f32; encoder_mask: u8, 1 = attend)
    out.<name>, gout.<name> outputs and their upstream gradients; backward of sum_k sum(out.k * gout.k)
    fwd.<name>              forward-only outputs (the ViT's per-layer hidden states)
    grad.param.<full name>  parameter gradients
    grad.in.<name>          input gradients (float inputs)
metadata "prefix" and "params" (key=value config for the C test).
The patch embedding cases use golden.py's op layout (in.images, in.weight, out, gout, grad.*) against
torch.nn.functional.conv2d.
"""
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from golden import canonicalise_header, save_case
from safetensors.torch import save_file

D = torch.float64


def mha(q_in, kv_in, q_lin, k_lin, v_lin, heads, key_mask=None):
    """Multi-head scaled dot-product attention as CLIPAttention / Blip2QFormerMultiHeadAttention compute it."""
    b, tq, e = q_in.shape[0], q_in.shape[1], q_lin.out_features
    tk, d = kv_in.shape[1], e // heads
    q = q_lin(q_in).view(b, tq, heads, d).transpose(1, 2)
    k = k_lin(kv_in).view(b, tk, heads, d).transpose(1, 2)
    v = v_lin(kv_in).view(b, tk, heads, d).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / math.sqrt(d)  # [B, H, Tq, Tk]
    if key_mask is not None:
        s = s.masked_fill(~key_mask.bool()[:, None, None, :], float("-inf"))
    return (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(b, tq, e)


def quick_gelu(a):
    return a * torch.sigmoid(1.702 * a)


# ---- CLIP vision transformer (HF CLIPVisionTransformer, prefix "vision_model") -----------------------------
class ClipAttention(nn.Module):
    def __init__(self, w, h):
        super().__init__()
        self.h = h
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(w, w) for _ in range(4))

    def forward(self, x):
        return self.out_proj(mha(x, x, self.q_proj, self.k_proj, self.v_proj, self.h))


class ClipMlp(nn.Module):
    def __init__(self, w, i):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(w, i), nn.Linear(i, w)

    def forward(self, x):
        return self.fc2(quick_gelu(self.fc1(x)))


class ClipLayer(nn.Module):
    def __init__(self, w, h, i):
        super().__init__()
        self.self_attn = ClipAttention(w, h)
        self.layer_norm1 = nn.LayerNorm(w)
        self.mlp = ClipMlp(w, i)
        self.layer_norm2 = nn.LayerNorm(w)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class ClipEmbeddings(nn.Module):
    def __init__(self, w, image, patch):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(w))
        self.patch_embedding = nn.Conv2d(3, w, patch, stride=patch, bias=False)
        self.position_embedding = nn.Embedding((image // patch) ** 2 + 1, w)

    def forward(self, images):
        p = self.patch_embedding(images).flatten(2).transpose(1, 2)  # [B, N, W]
        cls = self.class_embedding.expand(images.shape[0], 1, -1)
        return torch.cat([cls, p], dim=1) + self.position_embedding.weight


class Encoder(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class ClipVision(nn.Module):
    def __init__(self, w, layers, h, i, image, patch):
        super().__init__()
        self.embeddings = ClipEmbeddings(w, image, patch)
        self.pre_layrnorm = nn.LayerNorm(w)
        self.encoder = Encoder([ClipLayer(w, h, i) for _ in range(layers)])
        self.post_layernorm = nn.LayerNorm(w)

    def forward(self, images):
        x = self.pre_layrnorm(self.embeddings(images))
        hidden = [x]
        for layer in self.encoder.layers:
            x = layer(x)
            hidden.append(x)
        return {"last": x, "pooled": self.post_layernorm(x[:, 0])}, hidden


# ---- Q-Former (HF Blip2QFormerModel, query tokens only) + GVMGen's pooling head ------------------------------
class QfSelfAttention(nn.Module):  # Blip2QFormerMultiHeadAttention
    def __init__(self, w, kv, h):
        super().__init__()
        self.h = h
        self.query, self.key, self.value = nn.Linear(w, w), nn.Linear(kv, w), nn.Linear(kv, w)


class QfSelfOutput(nn.Module):  # Blip2QFormerSelfOutput
    def __init__(self, w, eps):
        super().__init__()
        self.dense = nn.Linear(w, w)
        self.LayerNorm = nn.LayerNorm(w, eps=eps)


class QfAttention(nn.Module):  # Blip2QFormerAttention
    def __init__(self, w, kv, h, eps):
        super().__init__()
        self.attention = QfSelfAttention(w, kv, h)
        self.output = QfSelfOutput(w, eps)

    def forward(self, x, kv, mask=None):
        a = self.attention
        o = mha(x, kv, a.query, a.key, a.value, a.h, mask)
        return self.output.LayerNorm(self.output.dense(o) + x)


class Dense(nn.Module):
    def __init__(self, i, o, eps=None):
        super().__init__()
        self.dense = nn.Linear(i, o)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(o, eps=eps)


class QfLayer(nn.Module):  # Blip2QFormerLayer
    def __init__(self, idx, w, kv, h, i, freq, eps):
        super().__init__()
        self.attention = QfAttention(w, w, h, eps)
        self.cross = idx % freq == 0
        if self.cross:
            self.crossattention = QfAttention(w, kv, h, eps)
        self.intermediate_query = Dense(w, i)
        self.output_query = Dense(i, w, eps)

    def forward(self, q, enc, mask):
        q = self.attention(q, q)
        if self.cross:
            q = self.crossattention(q, enc, mask)
        h = F.gelu(self.intermediate_query.dense(q))
        return self.output_query.LayerNorm(self.output_query.dense(h) + q)


class QfEncoder(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layer = nn.ModuleList(layers)


class QFormer(nn.Module):
    def __init__(self, w, layers, h, queries, kv, i, freq, out_dim, eps=1e-12):
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, queries, w))
        self.layernorm = nn.LayerNorm(w, eps=eps)
        self.encoder = QfEncoder([QfLayer(n, w, kv, h, i, freq, eps) for n in range(layers)])
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Linear(w, out_dim, bias=False)

    def forward(self, encoder, encoder_mask=None):
        q = self.layernorm(self.query_tokens.expand(encoder.shape[0], -1, -1))
        for layer in self.encoder.layer:
            q = layer(q, encoder, encoder_mask)
        return {"vec": self.proj(self.ln_post(q.mean(dim=1))), "queries": q}, []


# ---- writing -------------------------------------------------------------------------------------------------
def fill(module, g):
    """Fixed f32 values: LayerNorm weights near 1, biases 0.2 N(0,1), others N(0,1)/sqrt(fan_in) (the conv
    weight's fan-in is C p p, an embedding table's its width)."""
    with torch.no_grad():
        owners = dict(module.named_modules())
        for name, p in module.named_parameters():
            owner = owners[name.rsplit(".", 1)[0] if "." in name else ""]
            if isinstance(owner, nn.LayerNorm) and name.endswith("weight"):
                v = 1 + 0.2 * torch.randn(p.shape, generator=g, dtype=D)
            elif name.endswith("bias"):
                v = 0.2 * torch.randn(p.shape, generator=g, dtype=D)
            elif name == "query_tokens":  # unit scale: the LayerNorm after them would amplify f32 error 1/std
                v = torch.randn(p.shape, generator=g, dtype=D)
            else:
                fan_in = p[0].numel() if p.dim() > 1 and not name.endswith("_embedding.weight") else p.shape[-1]
                v = torch.randn(p.shape, generator=g, dtype=D) / math.sqrt(fan_in)
            p.copy_(v.float().double())


def save_model(path, module, prefix, inputs, params, g):
    module = module.to(D)
    fill(module, g)
    args = {k: (t.double().requires_grad_(True) if t.is_floating_point() else t) for k, t in inputs.items()}
    outs, fwd = module(**args)
    tensors, loss = {}, 0
    for k, o in outs.items():
        gout = torch.randn(o.shape, generator=g, dtype=D).float()
        tensors["out." + k], tensors["gout." + k] = o.detach().float(), gout
        loss = loss + (o * gout.double()).sum()
    loss.backward()
    for i, h in enumerate(fwd):
        tensors[f"fwd.hidden.{i}"] = h.detach().float()
    pre = prefix + "." if prefix else ""
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
    g = torch.Generator().manual_seed(336)
    p = lambda name: os.path.join(out, name + ".safetensors")

    # patch extraction + linear == conv2d(stride = kernel), flattened as HF does; one size with a remainder
    # that the strided conv drops (13 = 3 * 4 + 1), one with 2 channels
    for name, (b, c, s, w, k) in {"patch_embed": (1, 3, 12, 5, 4), "patch_embed_rem": (1, 3, 13, 6, 4),
                                  "patch_embed_c2": (2, 2, 6, 3, 3)}.items():
        save_case(p(name), {"images": randn(g, b, c, s, s), "weight": randn(g, w, c, k, k) * 0.3},
                  lambda images, weight: F.conv2d(images, weight, stride=weight.shape[-1]).flatten(2).transpose(1, 2),
                  seed=len(name))

    # the tiny ViT of the brief: width 32, 2 layers, 4 heads, patch 4, image 12 (9 patches + CLS), mlp 16
    # (a small FFN keeps the golden under 150 KB)
    vit = dict(width=32, layers=2, heads=4, mlp=16, image=12, patch=4)
    save_model(p("vit"), ClipVision(32, 2, 4, 16, 12, 4), "vision_model", {"images": randn(g, 2, 3, 12, 12)}, vit, g)

    # Q-Former: width 32, 2 layers (cross-attention in layer 0 only), 4 heads, 4 queries, 10 ViT tokens of
    # width 24, FFN 16, out 8; a key mask with holes on the ViT tokens
    qf = dict(width=32, layers=2, heads=4, queries=4, enc_width=24, intermediate=16, freq=2, out=8)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 3:7] = False
    save_model(p("qformer"), QFormer(32, 2, 4, 4, 24, 16, 2, 8), "qformer",
               {"encoder": randn(g, 2, 10, 24), "encoder_mask": mask}, qf, g)
