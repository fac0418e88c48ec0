#!/usr/bin/env python3
"""Convert a released GVMGen checkpoint (a PyTorch state_dict.bin in audiocraft naming) into a gvm weight
file with our names (nn/gvmgen.h), loadable by name like `gvm import`'s outputs (docs/pretrained.md).

    python3 tools/convert_gvmgen_checkpoint.py state_dict.bin --out gvmgen.safetensors [--map 'RE=REPL' ...]

The GVMGen checkpoint could not be inspected when this was written, so the mapping is derived from the code
it is built on; what is assumed is listed here and in docs/pretrained.md.

The music LM (audiocraft's LMModel: audiocraft/models/lm.py and modules/transformer.py; names as
transformers' convert_musicgen_transformers.py reads them), possibly under a prefix such as "lm." (--lm-prefix,
default: detected from where "emb.0.weight" is):
    emb.{k}.weight                                   -> model.decoder.embed_tokens.{k}.weight   [card+1, D]
    transformer.layers.{i}.self_attn.in_proj_weight  -> ...layers.{i}.self_attn.{q,k,v}_proj.weight
                                                        (rows [0:D] q, [D:2D] k, [2D:3D] v: the fused packing of
                                                        torch.nn.MultiheadAttention that audiocraft keeps)
    transformer.layers.{i}.self_attn.out_proj.weight -> ...self_attn.out_proj.weight
    transformer.layers.{i}.cross_attention.*         -> ...encoder_attn.* (the same split)
    transformer.layers.{i}.linear1 / linear2         -> ...fc1 / fc2
    transformer.layers.{i}.norm1 / norm_cross / norm2 -> self_attn_layer_norm / encoder_attn_layer_norm /
                                                        final_layer_norm
    out_norm.*                                       -> model.decoder.layer_norm.*
    linears.{k}.weight                               -> lm_heads.{k}.weight
    condition_provider.conditioners.<any>.output_proj.* -> enc_to_dec_proj.* (the conditioner's projection to
                                                        the LM width: GVMGen's 768 -> D linear)
  Biases in attention or FFN (in_proj_bias, linear1.bias, ...) are not part of MusicGen (bias_attn/bias_ff
  false) and are rejected: nn/music_lm has none.
The visual part. Assumed: the ViT in OpenAI CLIP's naming (the `clip` package's VisionTransformer, prefix
detected from "conv1.weight", e.g. "visual." or "clip.visual."), converted to CLIPVisionModel names under
"vision_model.":
    conv1.weight -> embeddings.patch_embedding.weight, class_embedding, positional_embedding ->
    embeddings.position_embedding.weight, ln_pre -> pre_layrnorm, transformer.resblocks.{i}.attn.in_proj_*
    -> encoder.layers.{i}.self_attn.{q,k,v}_proj.*, attn.out_proj -> self_attn.out_proj, ln_1 -> layer_norm1,
    mlp.c_fc -> mlp.fc1, mlp.c_proj -> mlp.fc2, ln_2 -> layer_norm2,
    ln_post -> qformer.ln_post (GVMGen trains CLIP's ln_post as its head; also copied to
    vision_model.post_layernorm), proj [W, 768] -> qformer.proj.weight [768, W] (transposed: CLIP computes
    x @ proj)
  A ViT already in CLIPVisionModel naming (vision_model.*) is kept as is. The Q-Former is assumed to be in
  Hugging Face's Blip2QFormerModel naming (nn/qformer.h) under a prefix "qformer." (or "Qformer."), with
  query_tokens beside it. Anything else: give --map 'REGEX=REPLACEMENT' rules (applied first, in order, with
  re.sub) to bring names into one of these namings. Tensors left unmapped are listed and fail the conversion
  unless --allow-unmapped (then they are left out and listed).
"""
import argparse
import re
import sys

import torch
from safetensors.torch import save_file

LM_RULES = [
    (r"^emb\.(\d+)\.weight$", r"model.decoder.embed_tokens.\1.weight"),
    (r"^transformer\.layers\.(\d+)\.self_attn\.out_proj\.weight$", r"model.decoder.layers.\1.self_attn.out_proj.weight"),
    (r"^transformer\.layers\.(\d+)\.cross_attention\.out_proj\.weight$",
     r"model.decoder.layers.\1.encoder_attn.out_proj.weight"),
    (r"^transformer\.layers\.(\d+)\.linear1\.weight$", r"model.decoder.layers.\1.fc1.weight"),
    (r"^transformer\.layers\.(\d+)\.linear2\.weight$", r"model.decoder.layers.\1.fc2.weight"),
    (r"^transformer\.layers\.(\d+)\.norm1\.(weight|bias)$", r"model.decoder.layers.\1.self_attn_layer_norm.\2"),
    (r"^transformer\.layers\.(\d+)\.norm_cross\.(weight|bias)$", r"model.decoder.layers.\1.encoder_attn_layer_norm.\2"),
    (r"^transformer\.layers\.(\d+)\.norm2\.(weight|bias)$", r"model.decoder.layers.\1.final_layer_norm.\2"),
    (r"^out_norm\.(weight|bias)$", r"model.decoder.layer_norm.\1"),
    (r"^linears\.(\d+)\.weight$", r"lm_heads.\1.weight"),
    (r"^condition_provider\.conditioners\.[^.]+\.output_proj\.(weight|bias)$", r"enc_to_dec_proj.\1"),
]
LM_FUSED = [
    (r"^transformer\.layers\.(\d+)\.self_attn\.in_proj_weight$", r"model.decoder.layers.\1.self_attn.{}_proj.weight"),
    (r"^transformer\.layers\.(\d+)\.cross_attention\.in_proj_weight$",
     r"model.decoder.layers.\1.encoder_attn.{}_proj.weight"),
]
VIT_RULES = [
    (r"^conv1\.weight$", "vision_model.embeddings.patch_embedding.weight"),
    (r"^class_embedding$", "vision_model.embeddings.class_embedding"),
    (r"^positional_embedding$", "vision_model.embeddings.position_embedding.weight"),
    (r"^ln_pre\.(weight|bias)$", r"vision_model.pre_layrnorm.\1"),
    (r"^transformer\.resblocks\.(\d+)\.attn\.out_proj\.(weight|bias)$", r"vision_model.encoder.layers.\1.self_attn.out_proj.\2"),
    (r"^transformer\.resblocks\.(\d+)\.ln_1\.(weight|bias)$", r"vision_model.encoder.layers.\1.layer_norm1.\2"),
    (r"^transformer\.resblocks\.(\d+)\.ln_2\.(weight|bias)$", r"vision_model.encoder.layers.\1.layer_norm2.\2"),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_fc\.(weight|bias)$", r"vision_model.encoder.layers.\1.mlp.fc1.\2"),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_proj\.(weight|bias)$", r"vision_model.encoder.layers.\1.mlp.fc2.\2"),
]
VIT_FUSED = [
    (r"^transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$", r"vision_model.encoder.layers.\1.self_attn.{}_proj.\2"),
]


def split3(t, name):
    if t.shape[0] % 3:
        raise SystemExit(f"{name}: fused q/k/v with {t.shape[0]} rows (not a multiple of 3)")
    return torch.chunk(t, 3, dim=0)  # q, k, v


def find_prefix(sd, marker):
    hits = sorted(k[: -len(marker)] for k in sd if k.endswith(marker) and (k == marker or k[-len(marker) - 1] == "."))
    return hits[0] if hits else None


def apply_rules(name, rules, fused, out, t):
    for pat, repl in fused:
        m = re.match(pat, name)
        if m:
            for part, piece in zip("qkv", split3(t, name)):
                out[m.expand(repl).format(part)] = piece.clone()
            return True
    for pat, repl in rules:
        if re.match(pat, name):
            out[re.sub(pat, repl, name)] = t
            return True
    return False


def convert(sd, maps=(), lm_prefix=None, allow_unmapped=False):
    """audiocraft/GVMGen state_dict -> (our state_dict, list of unmapped names)."""
    for pat, repl in maps:
        sd = {re.sub(pat, repl, k): v for k, v in sd.items()}
    out, unmapped = {}, []
    if lm_prefix is None:
        lm_prefix = find_prefix(sd, "emb.0.weight")
        if lm_prefix is None:
            raise SystemExit("no LM found: no '<prefix>emb.0.weight' (give --map rules or --lm-prefix)")
    vit_prefix = find_prefix(sd, "conv1.weight")
    for name, t in sd.items():
        t = t.detach().float().contiguous() if t.is_floating_point() else t
        if re.search(r"\.(in_proj_bias|linear[12]\.bias)$", name) and name.startswith(lm_prefix):
            raise SystemExit(f"{name}: the LM has biases, which MusicGen (and nn/music_lm) does not")
        if name.startswith(lm_prefix) and apply_rules(name[len(lm_prefix):], LM_RULES, LM_FUSED, out, t):
            continue
        if name.startswith("condition_provider.") and apply_rules(name, LM_RULES, [], out, t):
            continue
        if vit_prefix is not None and name.startswith(vit_prefix):
            rest = name[len(vit_prefix):]
            if apply_rules(rest, VIT_RULES, VIT_FUSED, out, t):
                continue
            if rest in ("ln_post.weight", "ln_post.bias"):
                out["qformer.ln_post." + rest.split(".")[1]] = t
                out["vision_model.post_layernorm." + rest.split(".")[1]] = t.clone()
                continue
            if rest == "proj":
                out["qformer.proj.weight"] = t.t().contiguous()  # CLIP: x @ proj, [W, out] -> Linear [out, W]
                continue
        if name.startswith("vision_model."):
            out[name] = t
            continue
        m = re.match(r"^(?:.*\.)?[qQ]former\.(.*)$", name)
        if m:
            out["qformer." + m.group(1)] = t
            continue
        if re.match(r"^(?:.*\.)?query_tokens$", name):
            out["qformer.query_tokens"] = t
            continue
        if name.endswith("position_ids") or name.endswith("attn_mask"):  # buffers, not weights
            continue
        unmapped.append(name)
    if unmapped and not allow_unmapped:
        listed = "\n  ".join(unmapped[:40])
        raise SystemExit(f"{len(unmapped)} tensors have no mapping (add --map rules, or --allow-unmapped to leave "
                         f"them out):\n  {listed}")
    return out, unmapped


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="state_dict.bin (torch.save of a state_dict, or of {'state_dict'|'model': ...})")
    ap.add_argument("--out", required=True)
    ap.add_argument("--map", action="append", default=[], help="REGEX=REPLACEMENT, applied to every name first")
    ap.add_argument("--lm-prefix", default=None, help="the LM's prefix (default: where emb.0.weight is)")
    ap.add_argument("--allow-unmapped", action="store_true")
    args = ap.parse_args()
    sd = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "best_state"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    maps = [tuple(m.split("=", 1)) for m in args.map]
    out, unmapped = convert(sd, maps, args.lm_prefix, args.allow_unmapped)
    save_file(out, args.out, metadata={"format": "gvm-weights-1", "kind": "gvmgen",
                                       "source": "convert_gvmgen_checkpoint.py"})
    print(f"wrote {args.out}: {len(out)} tensors" + (f"; left out {len(unmapped)}: {unmapped[:10]}" if unmapped else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()
