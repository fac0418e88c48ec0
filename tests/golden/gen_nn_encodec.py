"""Goldens for EnCodec, nn/encodec*.c, from the real transformers EncodecModel (randomly initialised from tiny
explicit configs, no download), evaluated in float64 on float32-rounded weights and inputs.

Three configs: "a" non-causal reflect without conv shortcut, 2 residual layers, odd padding totals (kernel 4,
ratio 5) so the asymmetric split matters (like encodec_32khz);
"b" causal reflect with conv shortcuts, stereo, ratios [2, 2, 2] (like encodec_24khz); "c" causal, constant
padding, trim_right_ratio 0.5, an odd stride (forward only). The weight-norm g of every conv is randomised
(so it is not just ||v||), the codebooks are random (transformers starts them at zero), and the seed is
advanced until every nearest-codeword decision has a clear margin, so float32 rounding cannot flip a code.

names_32khz.txt: "name shape" per line, facebook/encodec_32khz's state_dict (shape dims joined by x).

<cfg>.safetensors, metadata "params" (the config) and:
    param.<state_dict name>          every parameter and buffer
    in.wave [B, C, T], in.wave_short [1, C, Ts]   odd lengths; the short one triggers reflect's small-input rule
    out.latent[_short] [B, D, F]     model.encoder(wave)
    out.codes[_short] [B, nq, F] i64 model.encode(wave, bandwidth)  (the quantizer's encode)
    out.decoded[_short] [B, C, F*hop] model.decode(codes)
  training (a, b), with a twin that adds audiocraft's straight-through estimator to transformers' modules:
    in.gout [B, C, T]                recon weight;  loss = sum(recon * gout) + commit
    out.recon [B, C, T], out.commit [1], grad.param.<name> for every encoder/decoder parameter
  EMA update (a, b), audiocraft's EuclideanCodebook formulas on (out.latent, out.codes), decay 0.9,
  threshold 2, eps 0.05, per stage k:
    ema.cluster_size.k, ema.embed_avg.k, ema.embed.k   expected values (rows of dead codes: see ema.dead.k)
    ema.dead.k [N] u8                dead before the update (cluster_size < 2): restarted from a batch vector
    ema.norm.k [N]                   the Laplace-smoothed cluster sizes N_c (embed = embed_avg / N_c)
    ema.residual.k [R, D]            the stage's batch vectors (a restart must pick one of them)
"""
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import EncodecConfig, EncodecModel
from transformers.utils import logging as hf_logging

from golden import canonicalise_header

D64 = torch.float64

CONFIGS = {
    "a": dict(cfg=dict(sampling_rate=1000, audio_channels=1, num_filters=4, num_residual_layers=2,
                       upsampling_ratios=[5, 2], kernel_size=4, last_kernel_size=3, residual_kernel_size=3,
                       dilation_growth_rate=2, use_causal_conv=False, pad_mode="reflect", compress=2,
                       num_lstm_layers=2, trim_right_ratio=1.0, use_conv_shortcut=False, hidden_size=8,
                       codebook_size=32),
              nq=2, batch=2, T=37, Ts=9, train=True),
    "b": dict(cfg=dict(sampling_rate=1600, audio_channels=2, num_filters=2, num_residual_layers=1,
                       upsampling_ratios=[2, 2, 2], kernel_size=7, last_kernel_size=7, residual_kernel_size=3,
                       dilation_growth_rate=2, use_causal_conv=True, pad_mode="reflect", compress=2,
                       num_lstm_layers=2, trim_right_ratio=1.0, use_conv_shortcut=True, hidden_size=8,
                       codebook_size=16),
              nq=2, batch=2, T=77, Ts=5, train=True),
    "c": dict(cfg=dict(sampling_rate=600, audio_channels=1, num_filters=4, num_residual_layers=1,
                       upsampling_ratios=[3, 2], kernel_size=4, last_kernel_size=5, residual_kernel_size=3,
                       dilation_growth_rate=2, use_causal_conv=True, pad_mode="constant", compress=2,
                       num_lstm_layers=1, trim_right_ratio=0.5, use_conv_shortcut=True, hidden_size=6,
                       codebook_size=16),
              nq=2, batch=1, T=29, Ts=4, train=False),
}

EMA = dict(decay=0.9, eps=0.05, threshold=2.0)  # a large eps, so the Laplace smoothing shows


def bandwidth(cfg, nq):
    hop = math.prod(cfg["upsampling_ratios"])
    fr = math.ceil(cfg["sampling_rate"] / hop)
    return nq * math.log2(cfg["codebook_size"]) * fr / 1000.0


def build(spec, seed):
    cfg = dict(spec["cfg"])
    bw = bandwidth(cfg, spec["nq"])
    conf = EncodecConfig(**cfg, target_bandwidths=[bw], normalize=False)
    assert conf.num_quantizers == spec["nq"], (conf.num_quantizers, spec["nq"])
    torch.manual_seed(seed)
    m = EncodecModel(conf)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("original0"):
                v = dict(m.named_parameters())[name[:-1] + "1"]
                norm = v.flatten(1).norm(dim=1).reshape(p.shape)
                p.copy_(norm * (0.5 + torch.rand(p.shape, generator=g)))
            elif name.endswith("bias") and "lstm" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    m = m.double().eval()
    return m, conf, bw, g


def margins(m, latent, nq):
    """Smallest gap between the best and second-best squared distance over all decisions."""
    res = latent.permute(0, 2, 1).reshape(-1, latent.shape[1])
    worst = float("inf")
    for k in range(nq):
        e = m.quantizer.layers[k].codebook.embed
        d = (res[:, None, :] - e[None]).pow(2).sum(-1)
        two = d.topk(2, dim=1, largest=False).values
        worst = min(worst, float((two[:, 1] - two[:, 0]).min()))
        res = res - e[d.argmin(1)]
    return worst


def f32(t):
    return t.detach().float().contiguous()


def train_twin(m, wave, gout, nq, bw):
    """audiocraft's training forward on transformers' modules: straight-through RVQ, mean commitment loss."""
    z = m.encoder(wave)
    codes = m.quantizer.encode(z.detach(), bw)  # [nq, B, F]
    r, qsum, commit = z, 0.0, 0.0
    for k in range(nq):
        q = m.quantizer.layers[k].decode(codes[k]).detach()
        commit = commit + F.mse_loss(r, q)
        r = r - q
        qsum = qsum + q
    commit = commit / nq
    quantized = z + (qsum - z).detach()
    recon = m.decoder(quantized)[..., :wave.shape[-1]]
    loss = (recon * gout).sum() + commit
    loss.backward()
    return recon, commit, codes


def ema_reference(m, latent, codes, nq, g):
    """audiocraft's EuclideanCodebook update in float64 (restart rows are checked as properties in C)."""
    out = {}
    B, Dm, Fr = latent.shape
    x = latent.double().permute(0, 2, 1).reshape(-1, Dm)
    for k in range(nq):
        cb = m.quantizer.layers[k].codebook
        n = cb.embed.shape[0]
        cs0 = cb.cluster_size.clone()
        ind = codes[:, k, :].reshape(-1)
        onehot = F.one_hot(ind, n).double()
        dead = cs0 < EMA["threshold"]
        cs = cs0 * EMA["decay"] + onehot.sum(0) * (1 - EMA["decay"])
        avg = cb.embed_avg * EMA["decay"] + (x.t() @ onehot).t() * (1 - EMA["decay"])
        total = cs.sum()
        norm = (cs + EMA["eps"]) / (total + n * EMA["eps"]) * total
        embed = avg / norm[:, None]
        out[f"ema.cluster_size.{k}"] = f32(cs)
        out[f"ema.embed_avg.{k}"] = f32(avg)
        out[f"ema.embed.{k}"] = f32(embed)
        out[f"ema.dead.{k}"] = dead.to(torch.uint8)
        out[f"ema.norm.{k}"] = f32(norm)
        out[f"ema.residual.{k}"] = f32(x)
        x = x - cb.embed[ind]
    return out


def generate_one(out_dir, key, spec):
    nq = spec["nq"]
    for seed in range(100, 200):
        m, conf, bw, g = build(spec, seed)
        C = conf.audio_channels
        wave = torch.randn(spec["batch"], C, spec["T"], generator=g).float().double()
        wave_s = torch.randn(1, C, spec["Ts"], generator=g).float().double()
        with torch.no_grad():
            lat, lat_s = m.encoder(wave), m.encoder(wave_s)
            scale = float(lat.std())
            for k in range(nq):
                cb = m.quantizer.layers[k].codebook
                n, d = cb.embed.shape
                cb.embed.copy_((torch.randn(n, d, generator=g) * scale * 0.7 ** k).float().double())
                cb.embed_avg.copy_((torch.randn(n, d, generator=g) * scale).float().double())
                cb.cluster_size.copy_((torch.rand(n, generator=g) * 4).float().double())
            # decisions are made on the float32-rounded latent in C: demand a margin far above that error
            ok = min(margins(m, lat, nq), margins(m, lat_s, nq)) > 1e-3 * scale * scale
        if ok:
            break
    else:
        raise RuntimeError(f"nn_encodec {key}: no seed with clear code margins")

    t = {"in.wave": f32(wave), "in.wave_short": f32(wave_s)}
    with torch.no_grad():
        for sfx, w in (("", wave), ("_short", wave_s)):
            latent = m.encoder(w)
            enc = m.encode(w, bandwidth=bw, return_dict=False)
            codes = enc[0][0]  # [B, nq, F]
            decoded = m.decode(enc[0], [None], return_dict=False)[0]
            t["out.latent" + sfx] = f32(latent)
            t["out.codes" + sfx] = codes.contiguous()
            t["out.decoded" + sfx] = f32(decoded)
    for name, v in m.state_dict().items():
        t["param." + name] = f32(v)
    if spec["train"]:
        gout = torch.randn(wave.shape, generator=g).float().double()
        m.zero_grad()
        recon, commit, codes = train_twin(m, wave, gout, nq, bw)
        assert torch.equal(codes.transpose(0, 1), t["out.codes"])
        t["in.gout"] = f32(gout)
        t["out.recon"] = f32(recon)
        t["out.commit"] = f32(commit.reshape(1))
        for name, p in m.named_parameters():
            t["grad.param." + name] = f32(p.grad)
        t.update(ema_reference(m, t["out.latent"], t["out.codes"], nq, g))
    c = spec["cfg"]
    params = dict(c, upsampling_ratios="/".join(map(str, c["upsampling_ratios"])), nq=nq,
                  use_causal_conv=int(c["use_causal_conv"]), use_conv_shortcut=int(c["use_conv_shortcut"]),
                  train=int(spec["train"]), **{f"ema_{k}": v for k, v in EMA.items()})
    meta = {"params": ",".join(f"{k}={v}" for k, v in params.items())}
    path = os.path.join(out_dir, f"{key}.safetensors")
    save_file(t, path, metadata=meta)
    canonicalise_header(path)


def names_32khz(out_dir):
    """facebook/encodec_32khz's state_dict names and shapes (its config.json values; no download)."""
    conf = EncodecConfig(sampling_rate=32000, upsampling_ratios=[8, 5, 4, 4], num_filters=64, hidden_size=128,
                         codebook_size=2048, target_bandwidths=[2.2], use_causal_conv=False, normalize=False,
                         use_conv_shortcut=False, pad_mode="reflect", num_lstm_layers=2, compress=2,
                         residual_kernel_size=3, kernel_size=7, last_kernel_size=7, trim_right_ratio=1.0)
    assert conf.num_quantizers == 4 and conf.frame_rate == 50
    with torch.device("meta"):
        m = EncodecModel(conf)
    with open(os.path.join(out_dir, "names_32khz.txt"), "w") as f:
        for name, v in m.state_dict().items():
            f.write(f"{name} {'x'.join(map(str, v.shape))}\n")


def generate(out_dir):
    hf_logging.set_verbosity_error()
    os.makedirs(out_dir, exist_ok=True)
    names_32khz(out_dir)
    for key, spec in CONFIGS.items():
        generate_one(out_dir, key, spec)
