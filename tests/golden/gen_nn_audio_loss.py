"""Goldens for the STFT, mel filterbanks, audio losses and metrics (nn/stft.c, nn/audio_loss.c).

Oracles, all float64 (inputs rounded to f32 first, so the goldens bound gvm's f32 error alone):
  * STFT magnitude: torch.stft(center, pad_mode="reflect", hann_window periodic, return_complex=True),
    sqrt(|X|^2 + eps); gradients by autograd.
  * mel filterbanks: librosa.filters.mel (slaney and htk scales, slaney and no norm); the htk / no-norm bank is
    also written out with torchaudio.functional.melscale_fbanks' formula in numpy (torchaudio is not
    installed here) and the two must agree.
  * multi-resolution STFT loss: Parallel WaveGAN's, with the magnitude floor as +eps inside the sqrt.
  * multi-scale mel loss: audiocraft's MultiScaleMelSpectrogramLoss (losses/specloss.py) rewritten with
    torch.stft: reflect pad (n - hop) // 2, pad_for_conv1d zeros, center=False, torchaudio's MelSpectrogram
    (power 2, htk, no norm, normalized = divide by sqrt(sum w^2)), l1 + alpha * mse of log10(floor + mel).
  * SI-SNR: torchmetrics' scale_invariant_signal_noise_ratio (zero mean, eps = f32 eps) in numpy.
  * mel distance: audiocraft's MelSpectrogramL1Loss(log=True) with its "mel" config.

stft.safetensors   c<i>.in [B, T], c<i>.out [B, F, N], c<i>.gout, c<i>.grad; metadata cases
                   "n_fft:hop:win:center:eps;..."
melfb.safetensors  fb<i> [n_mels, F]; metadata cases "sr:n_fft:n_mels:fmin:fmax:norm:scale;..." (fmax 0: sr/2)
loss.safetensors   pred, target [B, T] (target has a silent stretch, pred only faint noise there);
                   mrstft.{loss,sc,mag,grad}; msmelA.{loss,grad} (audiocraft's solver config);
                   msmelB.{loss,grad} (class defaults with the EnCodec paper's scales 2^5..2^11);
                   meldist [1]; sisnr.est, sisnr.ref [P, n], sisnr.val [P]
"""
import math
import os
import warnings

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from golden import canonicalise_header

D = torch.float64
SR = 16000


def save(path, tensors, meta=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file({k: v.detach().float().contiguous() for k, v in tensors.items()}, path, metadata=meta or {})
    canonicalise_header(path)


def f32(x):
    return x.float().double()


# ---- STFT ------------------------------------------------------------------------------------------------------

def stft_mag(x, n_fft, hop, win, center, eps):
    X = torch.stft(x, n_fft, hop, win, window=torch.hann_window(win, dtype=x.dtype), center=center, pad_mode="reflect",
                   return_complex=True)
    return torch.sqrt(X.real ** 2 + X.imag ** 2 + eps)  # [B, F, N]


def gen_stft(out_dir):
    g = torch.Generator().manual_seed(11)
    cases = [  # B, T, n_fft, hop, win, center, eps
        (2, 301, 64, 16, 64, 1, 1e-7),
        (2, 517, 128, 32, 100, 1, 1e-7),   # window shorter than n_fft (zero-padded, centred)
        (1, 777, 256, 64, 256, 0, 1e-7),   # no centring
        (2, 255, 50, 13, 41, 1, 0.0),      # even n_fft, odd window and hop, eps 0: .abs() exactly
        (1, 63, 31, 7, 31, 1, 1e-7),       # odd n_fft
        (1, 3001, 2048, 512, 2048, 1, 1e-7),
    ]
    tensors, meta = {}, []
    for i, (B, T, n, hop, win, center, eps) in enumerate(cases):
        x = f32(torch.randn(B, T, generator=g, dtype=D) * 0.5).requires_grad_(True)
        out = stft_mag(x, n, hop, win, bool(center), eps)
        gout = torch.randn(out.shape, generator=g, dtype=D)
        out.backward(gout)
        tensors.update({f"c{i}.in": x, f"c{i}.out": out, f"c{i}.gout": gout, f"c{i}.grad": x.grad})
        meta.append(f"{n}:{hop}:{win}:{center}:{eps!r}")
    save(os.path.join(out_dir, "stft.safetensors"), tensors, {"cases": ";".join(meta)})


# ---- mel filterbanks --------------------------------------------------------------------------------------------

def torchaudio_htk_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate):
    """torchaudio.functional.melscale_fbanks(..., norm=None, mel_scale="htk"), transposed to [n_mels, F]."""
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    m_min, m_max = 2595.0 * np.log10(1.0 + f_min / 700.0), 2595.0 * np.log10(1.0 + f_max / 700.0)
    m_pts = np.linspace(m_min, m_max, n_mels + 2)
    f_pts = 700.0 * (10.0 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).T


def gen_melfb(out_dir):
    cases = [  # sr, n_fft, n_mels, fmin, fmax (0: sr/2), norm, scale
        (22050, 512, 40, 0.0, 0.0, "slaney", "slaney"),   # librosa's defaults
        (16000, 400, 24, 20.0, 7600.0, "none", "slaney"),
        (16000, 256, 32, 64.0, 0.0, "none", "htk"),       # torchaudio MelSpectrogram's (audiocraft)
        (24000, 128, 16, 0.0, 10000.0, "slaney", "htk"),
        (16000, 64, 64, 64.0, 0.0, "none", "htk"),        # more mels than bins: empty filters
    ]
    tensors, meta = {}, []
    for i, (sr, n_fft, n_mels, fmin, fmax, norm, scale) in enumerate(cases):
        with warnings.catch_warnings():  # "Empty filters detected": case 4 has them on purpose
            warnings.simplefilter("ignore")
            fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax if fmax > 0 else None,
                                     htk=scale == "htk", norm="slaney" if norm == "slaney" else None,
                                     dtype=np.float64)
        if scale == "htk" and norm == "none":
            ta = torchaudio_htk_fbanks(n_fft // 2 + 1, fmin, fmax if fmax > 0 else sr / 2, n_mels, sr)
            assert np.abs(ta - fb).max() < 1e-12, "librosa and torchaudio's htk formula disagree"
        tensors[f"fb{i}"] = torch.from_numpy(fb)
        meta.append(f"{sr}:{n_fft}:{n_mels}:{fmin}:{fmax}:{norm}:{scale}")
    save(os.path.join(out_dir, "melfb.safetensors"), tensors, {"cases": ";".join(meta)})


# ---- losses -----------------------------------------------------------------------------------------------------

def mrstft_loss(x, y, resolutions, eps=1e-7):
    sc, mag = 0.0, 0.0
    for n, hop, win in resolutions:
        X = stft_mag(x, n, hop, win, True, eps)
        Y = stft_mag(y, n, hop, win, True, eps)
        sc = sc + torch.norm(Y - X, p="fro") / torch.norm(Y, p="fro")
        mag = mag + F.l1_loss(torch.log(Y), torch.log(X))
    return sc / len(resolutions), mag / len(resolutions)


def pad_for_conv1d(x, kernel_size, stride):
    length = x.shape[-1]
    n_frames = (length - kernel_size) / stride + 1
    ideal_length = (math.ceil(n_frames) - 1) * stride + kernel_size
    return F.pad(x, (0, ideal_length - length))


def audiocraft_mel(x, sr, n_fft, hop, n_mels, f_min, f_max, normalized, log, floor):
    """audiocraft MelSpectrogramWrapper.forward on [B, T] (torchaudio's MelSpectrogram spelled out)."""
    p = int((n_fft - hop) // 2)
    x = F.pad(x[:, None], (p, p), "reflect")
    x = pad_for_conv1d(x, n_fft, hop)[:, 0]
    w = torch.hann_window(n_fft, dtype=x.dtype)
    X = torch.stft(x, n_fft, hop, n_fft, window=w, center=False, return_complex=True)
    if normalized:
        X = X / w.pow(2.0).sum().sqrt()
    power = X.real ** 2 + X.imag ** 2                        # [B, F, N]
    fb = torch.from_numpy(torchaudio_htk_fbanks(n_fft // 2 + 1, f_min, f_max or sr / 2, n_mels, sr)).to(x.dtype)
    mel = torch.einsum("mf,bfn->bmn", fb, power)
    return torch.log10(floor + mel) if log else mel


def msmel_loss(x, y, sr, range_start, range_end, n_mels, f_min, f_max, normalized, alphas, floor):
    loss, total = 0.0, 0.0
    for i in range(range_start, range_end):
        n = 2 ** i
        hop = int(n / 4)
        a = math.sqrt(2 ** i - 1) if alphas else 1
        args = (sr, n, hop, n_mels, f_min, f_max, normalized)
        loss = loss + F.l1_loss(audiocraft_mel(x, *args, False, floor), audiocraft_mel(y, *args, False, floor))
        loss = loss + a * F.mse_loss(audiocraft_mel(x, *args, True, floor), audiocraft_mel(y, *args, True, floor))
        total += a + 1
    return loss / total if normalized else loss


def si_snr(est, ref):
    eps = np.finfo(np.float32).eps
    est = est - est.mean()
    ref = ref - ref.mean()
    a = (np.dot(est, ref) + eps) / (np.dot(ref, ref) + eps)
    s = a * ref
    e = s - est
    return 10 * np.log10((np.dot(s, s) + eps) / (np.dot(e, e) + eps))


def gen_loss(out_dir):
    g = torch.Generator().manual_seed(5)
    B, T = 2, 3001
    t = torch.arange(T, dtype=D) / SR
    target = 0.3 * torch.sin(2 * math.pi * 440 * t)[None] * torch.tensor([[1.0], [0.5]], dtype=D)
    target = target + 0.2 * torch.sin(2 * math.pi * 2750 * t + 1.0)[None] + 0.05 * torch.randn(B, T, generator=g, dtype=D)
    target[:, 800:2000] = 0.0                                    # silence: floors and eps decide this stretch
    pred = target + 0.05 * torch.randn(B, T, generator=g, dtype=D)
    pred[:, 800:2000] = 3e-4 * torch.randn(B, 1200, generator=g, dtype=D)
    target, pred = f32(target), f32(pred)
    tensors = {"pred": pred, "target": target}

    x = pred.clone().requires_grad_(True)
    sc, mag = mrstft_loss(x, target, [(512, 128, 512), (1024, 256, 1024), (2048, 512, 2048)])
    (sc + mag).backward()
    tensors.update({"mrstft.loss": (sc + mag).reshape(1), "mrstft.sc": sc.reshape(1), "mrstft.mag": mag.reshape(1),
                    "mrstft.grad": x.grad})

    for name, cfg in (("msmelA", (SR, 6, 11, 64, 64.0, None, True, False, 1e-5)),
                      ("msmelB", (SR, 5, 12, 64, 0.0, None, False, True, 1e-5))):
        x = pred.clone().requires_grad_(True)
        loss = msmel_loss(x, target, *cfg)
        loss.backward()
        tensors.update({f"{name}.loss": loss.reshape(1), f"{name}.grad": x.grad})

    a = audiocraft_mel(pred, SR, 1024, 256, 64, 64.0, None, False, True, 1e-5)
    b = audiocraft_mel(target, SR, 1024, 256, 64, 64.0, None, False, True, 1e-5)
    tensors["meldist"] = (a - b).abs().mean().reshape(1)

    rng = np.random.default_rng(3)
    n = 1000
    ref = np.stack([np.sin(np.arange(n) * 0.05), rng.standard_normal(n), np.cos(np.arange(n) * 0.3) + 0.2])
    est = np.stack([ref[0] + 0.1 * rng.standard_normal(n), 0.5 * ref[1] + 0.3 * rng.standard_normal(n) + 0.7,
                    -2.0 * ref[2] + 0.01 * rng.standard_normal(n)])
    est, ref = est.astype(np.float32), ref.astype(np.float32)
    val = [si_snr(est[i].astype(np.float64), ref[i].astype(np.float64)) for i in range(3)]
    tensors.update({"sisnr.est": torch.from_numpy(est), "sisnr.ref": torch.from_numpy(ref),
                    "sisnr.val": torch.tensor(val, dtype=D)})
    save(os.path.join(out_dir, "loss.safetensors"), tensors)


def generate(out_dir):
    torch.set_default_dtype(torch.float32)
    gen_stft(out_dir)
    gen_melfb(out_dir)
    gen_loss(out_dir)


if __name__ == "__main__":
    generate(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "nn_audio_loss"))
