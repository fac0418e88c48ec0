// audio_loss.h: the reconstruction losses a small EnCodec-style codec trains with, and the audio quality
// metrics it is judged with. Losses are differentiable compositions of core ops (through nn/stft.h) and return
// a scalar with gradients to the prediction; metrics are host-side, no grad, plain float arrays.
//
// Waveforms are mono [B, T] (a [B, 1, T] codec output reshapes to that). The waveform L1 term is core's
// gvm_l1_loss(ctx, pred, target) = mean |pred - target| and needs nothing here.
//
// A loss object owns its DFT bases and filterbanks (heap tensors on the CPU, built once by _init), so a
// training step pays only the GEMMs; _free releases them. Objects are read-only after _init: one may serve
// several threads, each with its own gvm_ctx.
#ifndef GVM_NN_AUDIO_LOSS_H
#define GVM_NN_AUDIO_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/gvm.h"
#include "nn/stft.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_NN_AUDIO_LOSS_MAX_RES 16

// ---- multi-resolution STFT loss (Parallel WaveGAN, auraloss) -----------------------------------------------------
// For each resolution r (n_fft, hop, win_length), with X = |STFT(pred)|, Y = |STFT(target)| (torch.stft,
// center=True, reflect padding, periodic Hann) and magnitudes sqrt(re^2 + im^2 + eps):
//   sc_r  = ||Y - X||_F / ||Y||_F                 (spectral convergence, norms over the whole batch)
//   mag_r = mean |log Y - log X|                   (log STFT magnitude L1)
// loss = factor_sc * mean_r sc_r + factor_mag * mean_r mag_r.
// Parallel WaveGAN's MultiResolutionSTFTLoss returns (mean sc, mean mag) and its callers add them (factors
// 1, 1); audiocraft's MRSTFTLoss uses 0.5, 0.5. The one difference from both: they clamp re^2 + im^2 at eps
// (a zero gradient below it), here eps is added (smooth); the two agree wherever re^2 + im^2 >> eps.
typedef struct gvm_nn_stft_res {
    int n_fft, hop, win_length;
} gvm_nn_stft_res;

typedef struct gvm_nn_mrstft_cfg {
    int n_res;                                      // 0 = the default three below
    gvm_nn_stft_res res[GVM_NN_AUDIO_LOSS_MAX_RES]; // default (512,128,512), (1024,256,1024), (2048,512,2048)
    float eps;                                      // 0 = 1e-7 (Parallel WaveGAN's)
    float factor_sc, factor_mag;                    // both 0 = 1, 1
} gvm_nn_mrstft_cfg;

typedef struct gvm_nn_mrstft_loss {
    gvm_nn_mrstft_cfg cfg;                          // with defaults filled in
    gvm_tensor *basis[GVM_NN_AUDIO_LOSS_MAX_RES];   // [n_fft, 2F] per resolution
} gvm_nn_mrstft_loss;

// cfg NULL = all defaults. GVM_ERR_INVALID with a message for a bad resolution.
gvm_status gvm_nn_mrstft_loss_init(gvm_nn_mrstft_loss *l, const gvm_nn_mrstft_cfg *cfg);
void gvm_nn_mrstft_loss_free(gvm_nn_mrstft_loss *l);
// pred [B, T], target [B, T] -> scalar loss. sc, mag (either may be NULL) receive the two scalar parts
// (mean over resolutions, before the factors). T must exceed n_fft / 2 of every resolution.
gvm_tensor *gvm_nn_mrstft_loss_forward(gvm_ctx *ctx, const gvm_nn_mrstft_loss *l, gvm_tensor *pred,
                                       gvm_tensor *target, gvm_tensor **sc, gvm_tensor **mag);

// ---- multi-scale mel loss (audiocraft's MultiScaleMelSpectrogramLoss, EnCodec) ------------------------------------
// For each scale i in [range_start, range_end) (Python's range: range_end excluded), n = 2^i, hop = n / 4
// (integer), window = periodic Hann of n samples, exactly as audiocraft's MelSpectrogramWrapper:
//   x is reflect-padded by p = (n - hop) / 2 on both sides, then zero-padded at the end until the last frame is
//   full (audiocraft's pad_for_conv1d), and framed without centring (torch.stft center=False);
//   S = mel power spectrogram = fb_htk,no-norm [n_mels, F] @ |X|^2, |X| / sqrt(sum w^2) when normalized
//   (torchaudio's MelSpectrogram(power=2, norm=None, mel_scale="htk", normalized=...); n_mels is NOT clamped
//   per scale: audiocraft keeps n_mels at every scale, so at small n some filters are empty, all-zero rows);
//   l1_i = mean |S(pred) - S(target)|,  l2_i = mean (log10(floor + S(pred)) - log10(floor + S(target)))^2
// loss = sum_i (l1_i + alpha_i l2_i), alpha_i = sqrt(2^i - 1) when alphas else 1; divided by
// sum_i (alpha_i + 1) when normalized. (audiocraft names the log term's module l2s: it is an MSE.)
typedef struct gvm_nn_msmel_cfg {
    float sample_rate;
    int range_start, range_end;  // scales 2^range_start .. 2^(range_end - 1)
    int n_mels;
    float f_min, f_max;          // f_max <= 0: sample_rate / 2
    bool normalized, alphas;
    float floor_level;
} gvm_nn_msmel_cfg;

// audiocraft's compression solver config (config/solver/compression/default.yaml, msspec): range 6..11
// (n = 64 .. 1024), n_mels 64, f_min 64, f_max none, normalized true, alphas false, floor 1e-5. (The
// class's own defaults differ: f_min 0, normalized false, alphas true. The EnCodec paper uses i = 5..11,
// i.e. range_start 5, range_end 12.)
gvm_nn_msmel_cfg gvm_nn_msmel_default_cfg(float sample_rate);

typedef struct gvm_nn_msmel_loss {
    gvm_nn_msmel_cfg cfg;
    int n_scales;
    gvm_tensor *basis[GVM_NN_AUDIO_LOSS_MAX_RES];  // [n, 2F], scaled by 1/sqrt(sum w^2) when normalized
    gvm_tensor *fb[GVM_NN_AUDIO_LOSS_MAX_RES];     // [n_mels, 2F] in pairs (gvm_nn_stft_pairs_new)
    float alpha[GVM_NN_AUDIO_LOSS_MAX_RES];
    float total;                                   // sum (alpha_i + 1)
} gvm_nn_msmel_loss;

gvm_status gvm_nn_msmel_loss_init(gvm_nn_msmel_loss *l, const gvm_nn_msmel_cfg *cfg);
void gvm_nn_msmel_loss_free(gvm_nn_msmel_loss *l);
// pred [B, T], target [B, T] -> scalar. T must exceed (n - n/4) / 2 at the largest scale (reflect padding).
gvm_tensor *gvm_nn_msmel_loss_forward(gvm_ctx *ctx, const gvm_nn_msmel_loss *l, gvm_tensor *pred,
                                      gvm_tensor *target);

// One scale's mel power spectrogram with audiocraft's padding: wave [B, T], basis [n_fft, 2F], fb [n_mels, 2F]
// (the filterbank in pairs, gvm_nn_stft_pairs_new) -> [B, N, n_mels] (frames-major; audiocraft's is [B, n_mels, N], which no mean or sum cares about).
gvm_tensor *gvm_nn_mel_spectrogram(gvm_ctx *ctx, gvm_tensor *wave, int n_fft, int hop, gvm_tensor *basis,
                                   gvm_tensor *fb);

// ---- metrics (host, no grad) ------------------------------------------------------------------------------------------
// Scale-invariant SNR in dB of est against ref (n samples each), as torchmetrics'
// scale_invariant_signal_noise_ratio (= asteroid's SI-SDR with zero mean): both made zero-mean,
// a = (<est, ref> + eps) / (<ref, ref> + eps), s = a ref, e = s - est,
// SI-SNR = 10 log10((<s, s> + eps) / (<e, e> + eps)), eps = FLT_EPSILON (torchmetrics' for f32). Double math.
double gvm_nn_si_snr(const float *est, const float *ref, int64_t n);
// The mean over B rows of [B, T] arrays.
double gvm_nn_si_snr_batch(const float *est, const float *ref, int64_t B, int64_t T);

// Mel distance for reports: mean |log10(floor + S(est)) - log10(floor + S(ref))| over [B, n_mels, N], S the mel
// power spectrogram with audiocraft's padding (as above), i.e. audiocraft's MelSpectrogramL1Loss(log=True).
typedef struct gvm_nn_mel_distance_cfg {
    float sample_rate;
    int n_fft, hop, win_length;
    int n_mels;
    float f_min, f_max;  // f_max <= 0: sample_rate / 2
    float floor_level;
} gvm_nn_mel_distance_cfg;
// audiocraft's "mel" config (config/solver/compression/default.yaml): n_fft 1024, hop 256, win 1024, n_mels 64,
// f_min 64, f_max none, floor 1e-5.
gvm_nn_mel_distance_cfg gvm_nn_mel_distance_default_cfg(float sample_rate);
// est, ref: [B, T] host floats. Writes the distance to *out; GVM_ERR_INVALID for a bad config or a signal
// too short for the reflect padding.
gvm_status gvm_nn_mel_distance(const float *est, const float *ref, int64_t B, int64_t T,
                               const gvm_nn_mel_distance_cfg *cfg, double *out);

#ifdef __cplusplus
}
#endif

#endif
