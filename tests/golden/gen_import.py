"""Goldens for `gvm import` (train/import_*.c, tests/test_train_import.c): small randomly initialised
transformers models built from explicit tiny configs (no download), saved with save_pretrained as the
repositories gvm import reads, plus their outputs on fixed inputs.

One folder per case, data/import/<family>-<config>/:
    config.json, model.safetensors (or shards + model.safetensors.index.json)   the repository
    gvm_golden.safetensors   inputs and transformers' outputs, metadata "format" (the gvm import --format)
                             and "family"; the outputs are computed in float64 on the saved (rounded) weights
Families and configs (each family has one config with the real checkpoint's layer structure at reduced width):
  clip-l14       CLIPVisionModel like openai/clip-vit-large-patch14-336: quick_gelu, pre-norm, patch 14,
                 head dim 64 (1 head at width 64); stored as float16 and sharded (index.json), so the import's
                 f16 -> f32 conversion and shard reading are exercised
      tensors: in.pixel_values [B, 3, S, S]; out.hidden_states.{i} [B, N+1, W], i = 0..layers; out.pooled [B, W]
  clip-full      a whole CLIPModel (text tower to ignore) with gelu, eps 1e-6, an image size the patch does not
                 divide (30 / 7): the same tensors
  musicgen-causal  MusicgenForCausalLM like musicgen-small/medium's decoder: K 4, head dim 64, gelu,
                 sinusoidal positions; stored as bfloat16
      in.codes [B, K, S] i64 (values 0..card, card = the start token), in.encoder_hidden_states [B, F, D],
      in.encoder_attention_mask [B, F] i64; out.logits [B, K, S, card]
  musicgen-composite  MusicgenForConditionalGeneration (T5 + EnCodec 32 kHz structure + decoder, widths
                 differ so enc_to_dec_proj exists): in.encoder_hidden_states [B, F, E] (T5 width), the mask;
                 out.logits from the whole model (projection applied); plus the EnCodec tensors below
  encodec-32khz  EncodecModel like facebook/encodec_32khz (ratios [8, 5, 4, 4], non-causal, reflect, 2 LSTM
                 layers, no conv shortcut, 4 quantizers from target_bandwidths) at tiny width; the weight-norm
                 pairs renamed to the Hub's spelling (weight_g / weight_v)
  encodec-causal causal, conv shortcuts, 1 LSTM layer, ratios [4, 2], stereo
      in.wave [B, C, T]; out.codes [B, nq, F] i64 (model.encode); out.decoded [B, C, F hop] (model.decode)

    python3 gen_import.py --out DIR [--config FAMILY-NAME:JSON ...]
--config writes only the case(s) it describes: built from the named case's config with JSON's keys replaced, e.g.
    --config 'clip-l14:{"name": "clip-wide", "hidden_size": 128, "num_attention_heads": 2}'
"""
import argparse
import copy
import json
import math
import os
import shutil

import torch
from safetensors.torch import load_file, save_file
from transformers import (CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel, EncodecConfig, EncodecModel,
                          MusicgenConfig, MusicgenDecoderConfig, MusicgenForCausalLM,
                          MusicgenForConditionalGeneration, T5Config)
from transformers.utils import logging as hf_logging

from golden import canonicalise_header

ENC_32K = dict(sampling_rate=32000, audio_channels=1, num_filters=2, num_residual_layers=1,
               upsampling_ratios=[8, 5, 4, 4], kernel_size=7, last_kernel_size=7, residual_kernel_size=3,
               dilation_growth_rate=2, use_causal_conv=False, pad_mode="reflect", compress=2, num_lstm_layers=2,
               trim_right_ratio=1.0, use_conv_shortcut=False, hidden_size=8, codebook_size=16, normalize=False,
               nq=4)

CASES = {
    "clip-l14": dict(family="clip", cls="vision", dtype="float16", shard="60KB", batch=2,
                     cfg=dict(image_size=28, patch_size=14, num_channels=3, hidden_size=64, num_hidden_layers=2,
                              num_attention_heads=1, intermediate_size=256, hidden_act="quick_gelu",
                              layer_norm_eps=1e-5)),
    "clip-full": dict(family="clip", cls="full", dtype="float32", batch=1,
                      cfg=dict(image_size=30, patch_size=7, num_channels=3, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=48, hidden_act="gelu", layer_norm_eps=1e-6)),
    "musicgen-causal": dict(family="musicgen", cls="causal", dtype="bfloat16", batch=2, steps=7, frames=5,
                            cfg=dict(vocab_size=16, hidden_size=64, num_attention_heads=1, num_hidden_layers=2,
                                     ffn_dim=256, num_codebooks=4)),
    "musicgen-composite": dict(family="musicgen", cls="composite", dtype="float32", batch=2, steps=6, frames=4,
                               text_d_model=24, samples=3000,
                               cfg=dict(vocab_size=16, hidden_size=32, num_attention_heads=2, num_hidden_layers=2,
                                        ffn_dim=64, num_codebooks=4),
                               encodec=ENC_32K),
    "encodec-32khz": dict(family="encodec", dtype="float32", batch=1, samples=3000, hub_names=True, cfg=ENC_32K),
    "encodec-causal": dict(family="encodec", dtype="float32", batch=2, samples=101, hub_names=False,
                           cfg=dict(sampling_rate=800, audio_channels=2, num_filters=4, num_residual_layers=1,
                                    upsampling_ratios=[4, 2], kernel_size=5, last_kernel_size=3,
                                    residual_kernel_size=3, dilation_growth_rate=2, use_causal_conv=True,
                                    pad_mode="reflect", compress=2, num_lstm_layers=1, trim_right_ratio=1.0,
                                    use_conv_shortcut=True, hidden_size=6, codebook_size=32, normalize=False,
                                    nq=2)),
}

FORMATS = {"clip": "hf-clip-vision", "musicgen": "hf-musicgen", "encodec": "hf-encodec"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def f32(t):
    return t.detach().float().contiguous()


def round_params(m, dtype):
    """Round every saved tensor to the storage dtype, so the file holds the model exactly. Only the state_dict:
    a non-persistent buffer (MusicGen's sinusoidal position table) is recomputed, never stored."""
    with torch.no_grad():
        for t in m.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.to(dtype).to(t.dtype))


def save_repo(m, path, spec):
    if os.path.exists(path):
        shutil.rmtree(path)
    dtype = DTYPES[spec["dtype"]]
    if dtype != torch.float32:
        m = copy.deepcopy(m).to(dtype)
    kw = {"max_shard_size": spec["shard"]} if spec.get("shard") else {}
    m.save_pretrained(path, **kw)
    gen = os.path.join(path, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)


def save_golden(path, fmt, family, tensors):
    p = os.path.join(path, "gvm_golden.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, p, metadata={"format": fmt, "family": family})
    canonicalise_header(p)


# ---- CLIP ----------------------------------------------------------------------------------------------------

def gen_clip(path, spec, g):
    vc = CLIPVisionConfig(**spec["cfg"], attn_implementation="eager")
    if spec["cls"] == "vision":
        m = CLIPVisionModel(vc)  # transformers 5: the model is the tower (its state_dict has no vision_model.)
        vision = m
    else:
        tc = dict(vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                  max_position_embeddings=8)
        m = CLIPModel(CLIPConfig(text_config=tc, vision_config=vc.to_dict(), projection_dim=8))
        vision = m.vision_model
    with torch.no_grad():  # non-trivial LayerNorm affine and biases (CLIP's init leaves them 1 / 0)
        for name, p in m.named_parameters():
            if "norm" in name or name.endswith("bias") or "class_embedding" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    round_params(m, DTYPES[spec["dtype"]])
    m.eval()
    save_repo(m, path, spec)
    S = spec["cfg"]["image_size"]
    px = torch.randn(spec["batch"], 3, S, S, generator=g).float()
    with torch.no_grad():
        m.double()
        out = vision(pixel_values=px.double(), output_hidden_states=True)
    t = {"in.pixel_values": px, "out.pooled": f32(out.pooler_output)}
    assert len(out.hidden_states) == spec["cfg"]["num_hidden_layers"] + 1
    for i, h in enumerate(out.hidden_states):
        t[f"out.hidden_states.{i}"] = f32(h)
    save_golden(path, FORMATS["clip"], "clip", t)


# ---- EnCodec -------------------------------------------------------------------------------------------------

def encodec_config(c):
    c = dict(c)
    nq = c.pop("nq")
    hop = math.prod(c["upsampling_ratios"])
    fr = math.ceil(c["sampling_rate"] / hop)
    bw = nq * math.ceil(math.log2(c["codebook_size"])) * fr / 1000.0
    conf = EncodecConfig(**c, target_bandwidths=[bw])
    assert conf.num_quantizers == nq, (conf.num_quantizers, nq)
    return conf, bw


def margin(m, latent, nq):
    res = latent.permute(0, 2, 1).reshape(-1, latent.shape[1])
    worst = float("inf")
    for k in range(nq):
        e = m.quantizer.layers[k].codebook.embed
        d = (res[:, None, :] - e[None]).pow(2).sum(-1)
        two = d.topk(2, dim=1, largest=False).values
        worst = min(worst, float((two[:, 1] - two[:, 0]).min()))
        res = res - e[d.argmin(1)]
    return worst


def randomise_encodec(m, g):
    """Weight-norm g not just ||v||, random biases (transformers leaves the codebooks at zero: set below)."""
    with torch.no_grad():
        params = dict(m.named_parameters())
        for name, p in params.items():
            if name.endswith("original0"):
                v = params[name[:-1] + "1"]
                p.copy_(v.flatten(1).norm(dim=1).reshape(p.shape) * (0.5 + torch.rand(p.shape, generator=g)))
            elif name.endswith("bias") and "lstm" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def encodec_case(m, spec_enc, batch, samples, g):
    """Random codebooks with clear nearest-codeword margins; returns the golden tensors (float64 model)."""
    conf = m.config
    nq = spec_enc["nq"]
    bw = encodec_config(spec_enc)[1]
    wave = torch.randn(batch, conf.audio_channels, samples, generator=g).float()
    for _ in range(100):
        with torch.no_grad():
            lat = m.encoder(wave.double())
            scale = float(lat.std())
            for k in range(nq):
                cb = m.quantizer.layers[k].codebook
                n, d = cb.embed.shape
                cb.embed.copy_((torch.randn(n, d, generator=g) * scale * 0.7 ** k).float().double())
                cb.embed_avg.copy_((torch.randn(n, d, generator=g) * scale).float().double())
                cb.cluster_size.copy_((torch.rand(n, generator=g) * 4).float().double())
            if margin(m, lat, nq) > 1e-3 * scale * scale:
                break
    else:
        raise RuntimeError("no codebooks with clear margins")
    with torch.no_grad():
        enc = m.encode(wave.double(), bandwidth=bw, return_dict=False)
        decoded = m.decode(enc[0], [None], return_dict=False)[0]
    return {"in.wave": wave, "out.codes": enc[0][0].contiguous(), "out.decoded": f32(decoded)}


def hub_names(path):
    """Rename the weight-norm pairs to the spelling of the files on the Hub (weight_g / weight_v)."""
    p = os.path.join(path, "model.safetensors")
    sd = load_file(p)
    ren = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                             "weight_v"): v for k, v in sd.items()}
    save_file(ren, p, metadata={"format": "pt"})


def gen_encodec(path, spec, g):
    conf, _ = encodec_config(spec["cfg"])
    m = EncodecModel(conf)
    randomise_encodec(m, g)
    round_params(m, torch.float32)
    m = m.double().eval()
    t = encodec_case(m, spec["cfg"], spec["batch"], spec["samples"], g)
    save_repo(m.float(), path, spec)
    if spec["hub_names"]:
        hub_names(path)
    save_golden(path, FORMATS["encodec"], "encodec", t)


# ---- MusicGen ------------------------------------------------------------------------------------------------

def decoder_config(c):
    card = c["vocab_size"]
    return MusicgenDecoderConfig(**c, pad_token_id=card, bos_token_id=card, dropout=0.0)


def perturb_lm(m, g):
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)


def lm_inputs(spec, width, g):
    B, K, S, F = spec["batch"], spec["cfg"]["num_codebooks"], spec["steps"], spec["frames"]
    card = spec["cfg"]["vocab_size"]
    codes = torch.randint(0, card, (B, K, S), generator=g)
    codes[:, :, 0] = card  # the start token, as generation feeds it
    ehs = torch.randn(B, F, width, generator=g).float()
    mask = torch.ones(B, F, dtype=torch.long)
    mask[-1, F - 2:] = 0  # the last sample's last frames are padding
    return codes, ehs, mask


def gen_musicgen(path, spec, g):
    dec = decoder_config(spec["cfg"])
    B, K, S = spec["batch"], spec["cfg"]["num_codebooks"], spec["steps"]
    if spec["cls"] == "causal":
        m = MusicgenForCausalLM(dec)
        m.config._attn_implementation = "eager"
        perturb_lm(m, g)
        round_params(m, DTYPES[spec["dtype"]])
        m.eval()
        save_repo(m, path, spec)
        codes, ehs, mask = lm_inputs(spec, dec.hidden_size, g)
        with torch.no_grad():
            md = m.double()
            out = md(input_ids=codes.reshape(B * K, S), encoder_hidden_states=ehs.double(),
                     encoder_attention_mask=mask)
        logits = out.logits.reshape(B, K, S, -1)
        t = {"in.codes": codes, "in.encoder_hidden_states": ehs, "in.encoder_attention_mask": mask,
             "out.logits": f32(logits)}
        save_golden(path, FORMATS["musicgen"], "musicgen", t)
        return
    t5 = T5Config(vocab_size=32, d_model=spec["text_d_model"], d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    enc_conf, _ = encodec_config(spec["encodec"])
    cfg = MusicgenConfig(text_encoder=t5.to_dict(), audio_encoder=enc_conf.to_dict(), decoder=dec.to_dict())
    m = MusicgenForConditionalGeneration(cfg)
    perturb_lm(m.decoder, g)
    with torch.no_grad():
        m.enc_to_dec_proj.bias.add_(torch.randn(m.enc_to_dec_proj.bias.shape, generator=g) * 0.1)
    randomise_encodec(m.audio_encoder, g)
    round_params(m, torch.float32)
    m = m.double().eval()
    t = encodec_case(m.audio_encoder, spec["encodec"], 1, spec["samples"], g)
    codes, ehs, mask = lm_inputs(spec, spec["text_d_model"], g)
    with torch.no_grad():
        out = m(encoder_outputs=(ehs.double(),), attention_mask=mask, decoder_input_ids=codes.reshape(B * K, S))
    t.update({"in.codes": codes, "in.encoder_hidden_states": ehs, "in.encoder_attention_mask": mask,
              "out.logits": f32(out.logits.reshape(B, K, S, -1))})
    save_repo(m.float(), path, spec)
    save_golden(path, FORMATS["musicgen"], "musicgen", t)


GEN = {"clip": gen_clip, "encodec": gen_encodec, "musicgen": gen_musicgen}


def generate_case(out_dir, name, spec, seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    GEN[spec["family"]](os.path.join(out_dir, name), spec, g)


def generate(out_dir, extra=()):
    """Every case of CASES, or only the cases `extra` describes when it is given."""
    hf_logging.set_verbosity_error()
    os.makedirs(out_dir, exist_ok=True)
    cases = {} if extra else dict(CASES)
    for base, over in extra:
        spec = copy.deepcopy(CASES[base])
        over = dict(over)
        name = over.pop("name", base + "-custom")
        spec["cfg"].update(over)
        cases[name] = spec
    for i, (name, spec) in enumerate(cases.items()):
        generate_case(out_dir, name, spec, 1000 + 17 * list(CASES).index(name) if name in CASES else 5000 + i)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "import"))
    ap.add_argument("--config", action="append", default=[], help="BASE_CASE:JSON (see above); repeatable")
    args = ap.parse_args()
    torch.set_num_threads(1)
    extra = []
    for c in args.config:
        base, _, js = c.partition(":")
        if base not in CASES:
            ap.error(f"--config: unknown case '{base}' (one of {', '.join(CASES)})")
        extra.append((base, json.loads(js)))
    generate(args.out, extra)


if __name__ == "__main__":
    main()
