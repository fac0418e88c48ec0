"""Check tools/convert_gvmgen_checkpoint.py on a random state_dict built in audiocraft's naming (no download).

The expected result is a tiny transformers MusicgenForCausalLM (our LM names are its names) plus a CLIP vision
tower: the audiocraft-named input is made from them by the inverse mapping (q, k, v rows concatenated into
in_proj_weight as torch.nn.MultiheadAttention packs them; OpenAI CLIP's names; proj = visual_projection^T),
so a wrong split order, a missed rename or a wrong transpose fails. Also: LM biases and unmapped tensors are
errors, --allow-unmapped leaves them out. Exit 0 ok, 1 failure, 77 skipped (no torch/transformers).
"""
import os
import sys
import tempfile

try:
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, MusicgenDecoderConfig, MusicgenForCausalLM
except ImportError:
    print("SKIPPED: torch/transformers not installed")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import convert_gvmgen_checkpoint as conv  # noqa: E402


def audiocraft_from_hf(lm_sd, D, prefix="lm."):
    sd = {}
    for k, v in lm_sd.items():
        if "embed_positions" in k:
            continue
        n = k.replace("model.decoder.embed_tokens.", "emb.").replace("model.decoder.layers.", "transformer.layers.")
        n = n.replace("model.decoder.layer_norm.", "out_norm.").replace("lm_heads.", "linears.")
        n = n.replace("encoder_attn_layer_norm", "norm_cross").replace("self_attn_layer_norm", "norm1")
        n = n.replace("final_layer_norm", "norm2").replace("encoder_attn", "cross_attention")
        n = n.replace(".fc1.", ".linear1.").replace(".fc2.", ".linear2.")
        if n.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")):
            base = n.rsplit(".", 2)[0]
            fused = base + ".in_proj_weight"
            if fused not in sd:
                sd[fused] = torch.cat([lm_sd[k.replace(n.rsplit(".", 2)[1], p + "_proj")] for p in "qkv"], 0)
            continue
        sd[prefix + n] = v
    return {(k if k.startswith(prefix) else prefix + k): v for k, v in sd.items()}


def openai_clip_from_hf(vsd, proj):
    sd = {}
    for k, v in vsd.items():
        n = k.replace("embeddings.patch_embedding.weight", "conv1.weight").replace("embeddings.class_embedding", "class_embedding")
        n = n.replace("embeddings.position_embedding.weight", "positional_embedding").replace("pre_layrnorm", "ln_pre")
        n = n.replace("post_layernorm", "ln_post").replace("encoder.layers.", "transformer.resblocks.")
        n = n.replace("layer_norm1", "ln_1").replace("layer_norm2", "ln_2").replace("mlp.fc1", "mlp.c_fc")
        n = n.replace("mlp.fc2", "mlp.c_proj").replace("self_attn.", "attn.")
        for kind in ("weight", "bias"):
            if n.endswith("attn.q_proj." + kind):
                sd["clip.visual." + n.replace("q_proj." + kind, "in_proj_" + kind)] = torch.cat(
                    [vsd[k.replace("q_proj", p + "_proj")] for p in "qkv"], 0)
        if any(n.endswith(p + "_proj." + kind) for p in "qkv" for kind in ("weight", "bias")):
            continue
        sd["clip.visual." + n] = v
    sd["clip.visual.proj"] = proj.t().contiguous()
    return sd


def main():
    torch.manual_seed(0)
    fails = []
    D = 32
    lm = MusicgenForCausalLM(MusicgenDecoderConfig(vocab_size=16, hidden_size=D, num_attention_heads=2,
                                                   num_hidden_layers=2, ffn_dim=64, num_codebooks=4))
    lm_sd = {k: v.clone() for k, v in lm.state_dict().items()}
    vit = CLIPVisionModel(CLIPVisionConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                                           num_attention_heads=2, image_size=28, patch_size=14))
    vsd = {k: v + 0.01 * torch.randn_like(v) for k, v in vit.state_dict().items()}  # distinct q/k/v biases
    proj = torch.randn(12, 24)
    qformer = {"model.Qformer.encoder.layer.0.attention.attention.query.weight": torch.randn(24, 24),
               "model.query_tokens": torch.randn(1, 4, 24)}
    enc_proj = {"lm.condition_provider.conditioners.video.output_proj.weight": torch.randn(D, 12),
                "lm.condition_provider.conditioners.video.output_proj.bias": torch.randn(D)}
    sd = {**audiocraft_from_hf(lm_sd, D), **openai_clip_from_hf(vsd, proj), **qformer, **enc_proj}
    out, unmapped = conv.convert(sd)
    want = {k: v for k, v in lm_sd.items() if "embed_positions" not in k}
    want.update({"vision_model." + k: v for k, v in vsd.items()})
    want["qformer.ln_post.weight"] = vsd["post_layernorm.weight"]
    want["qformer.ln_post.bias"] = vsd["post_layernorm.bias"]
    want["qformer.proj.weight"] = proj
    want["qformer.encoder.layer.0.attention.attention.query.weight"] = qformer[
        "model.Qformer.encoder.layer.0.attention.attention.query.weight"]
    want["qformer.query_tokens"] = qformer["model.query_tokens"]
    want["enc_to_dec_proj.weight"] = enc_proj["lm.condition_provider.conditioners.video.output_proj.weight"]
    want["enc_to_dec_proj.bias"] = enc_proj["lm.condition_provider.conditioners.video.output_proj.bias"]
    if set(out) != set(want):
        fails.append(f"names: missing {sorted(set(want) - set(out))[:5]}, extra {sorted(set(out) - set(want))[:5]}")
    for k in set(out) & set(want):
        if not torch.equal(out[k], want[k].float()):
            fails.append(f"{k}: values differ")
    if unmapped:
        fails.append(f"unmapped: {unmapped}")
    # errors: an LM bias, an unknown tensor; --allow-unmapped leaves the unknown one out
    for bad, label in (({**sd, "lm.transformer.layers.0.linear1.bias": torch.zeros(64)}, "LM bias"),
                       ({**sd, "mystery.weight": torch.zeros(3)}, "unmapped tensor")):
        try:
            conv.convert(bad)
            fails.append(f"{label}: no error")
        except SystemExit as e:
            if "linear1.bias" not in str(e) and "mystery.weight" not in str(e):
                fails.append(f"{label}: error does not name the tensor: {e}")
    out2, unm = conv.convert({**sd, "mystery.weight": torch.zeros(3)}, allow_unmapped=True)
    if unm != ["mystery.weight"] or "mystery.weight" in out2:
        fails.append(f"--allow-unmapped: {unm}")
    # the command line end to end (torch.save -> safetensors)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save({"state_dict": sd}, os.path.join(tmp, "state_dict.bin"))
        sys.argv = ["convert", os.path.join(tmp, "state_dict.bin"), "--out", os.path.join(tmp, "o.safetensors")]
        conv.main()
        from safetensors.torch import load_file
        got = load_file(os.path.join(tmp, "o.safetensors"))
        if set(got) != set(want):
            fails.append("CLI output names differ")
    for f in fails:
        print("FAIL", f)
    print(f"{len(want)} tensors; {'ok' if not fails else str(len(fails)) + ' failures'}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
