// stft.h: short-time Fourier transforms and mel filterbanks built from core ops, for the audio codec's
// reconstruction losses (nn/audio_loss.h).
//
// There is no FFT op. A frame of n_fft samples times a fixed windowed real-DFT basis is one GEMM row, so the
// STFT is: gvm_index_select picks every frame's samples out of the (reflect-padded) signal in one go
// (padding and framing are one index list, and index_select is differentiable: its backward scatter-adds),
// then gvm_matmul with the basis. This is the same arithmetic as conv1d with 2 * F kernels of n_fft taps and
// stride hop, but one GEMM over all B * frames rows instead of an im2col per batch entry; measured faster than
// gvm_conv1d at every window size from 32 to 2048 taps (1.0-1.1x at 32-512, 1.25x at 1024, 1.5x at 2048;
// numbers in nn/audio_loss.c).
//
// Conventions (torch.stft's): X[k] = sum_n w[n] x[t*hop + n] exp(-2 pi i k n / n_fft), k = 0..F-1 with
// F = n_fft/2 + 1 (one-sided); the window is the periodic Hann window of win_length samples
// (torch.hann_window(win_length)) zero-padded on both sides to n_fft, left offset (n_fft - win_length) / 2.
#ifndef GVM_NN_STFT_H
#define GVM_NN_STFT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/gvm.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- windowed DFT basis ---------------------------------------------------------------------------------------
// Heap tensor [n_fft, 2F] on the CPU: column 2k is w[n] cos(2 pi k n / n_fft) * scale, column 2k+1 is
// -w[n] sin(2 pi k n / n_fft) * scale, so frames [.., n_fft] @ basis gives (re, im) pairs [.., F, 2].
// scale = 1 for torch.stft; 1/sqrt(sum w^2) for torchaudio's normalized=True ("window") spectrograms.
// 1 <= win_length <= n_fft, n_fft >= 2 (checked: programming errors).
gvm_tensor *gvm_nn_stft_basis_new(int n_fft, int win_length, float scale);
// Sum of the squared window, sum w[n]^2 (for the scale above).
double gvm_nn_stft_window_sumsq(int win_length);

// ---- framing --------------------------------------------------------------------------------------------------
// wave [B, T] -> frames [B, N, n_fft]: the signal is reflect-padded by pad_reflect samples on both sides
// (F.pad(..., "reflect"): needs pad_reflect < T), then zero-padded by pad_zero samples at the end, and cut
// into N = (T + 2 pad_reflect + pad_zero - n_fft) / hop + 1 frames (needs T + 2 pad_reflect + pad_zero >= n_fft).
// One gvm_index_select; differentiable w.r.t. wave.
gvm_tensor *gvm_nn_stft_frames(gvm_ctx *ctx, gvm_tensor *wave, int n_fft, int hop, int pad_reflect, int pad_zero);

// frames [B, N, n_fft], basis [n_fft, 2F] -> power |X|^2 = re^2 + im^2, [B, N, F] (frames-major).
gvm_tensor *gvm_nn_stft_power_frames(gvm_ctx *ctx, gvm_tensor *frames, gvm_tensor *basis);
// frames [B, N, n_fft], basis [n_fft, 2F], w_pairs [M, 2F] -> [B, N, M] = |X|^2 @ w^T for a weight w [M, F]
// given as w_pairs (each column twice: w_pairs[:, 2k] = w_pairs[:, 2k+1] = w[:, k], gvm_nn_stft_pairs_new):
// (re, im) squared times w_pairs sums re^2 + im^2 inside the GEMM, so no power tensor is formed (a mel
// spectrogram in two GEMMs and one multiply).
gvm_tensor *gvm_nn_stft_weighted_power(gvm_ctx *ctx, gvm_tensor *frames, gvm_tensor *basis, gvm_tensor *w_pairs);
// Heap [M, 2F] tensor (CPU) from host w [M, F], each column duplicated (for gvm_nn_stft_weighted_power).
gvm_tensor *gvm_nn_stft_pairs_new(const float *w, int M, int F);

// ---- STFT magnitude --------------------------------------------------------------------------------------------
// wave [B, T] -> [B, F, N] = sqrt(|torch.stft(wave, n_fft, hop, win_length, hann_window(win_length), center,
// pad_mode="reflect", return_complex=True)|^2 + eps). eps (e.g. 1e-7, Parallel WaveGAN's clamp floor) keeps
// the gradient of sqrt finite on silent frames; eps = 0 gives .abs() exactly (and an infinite gradient at 0).
// center: pad n_fft/2 on both sides by reflection (needs n_fft/2 < T); else needs T >= n_fft.
// N = T/hop + 1 with center, (T - n_fft)/hop + 1 without. The basis is built per call in the arena.
gvm_tensor *gvm_nn_stft_magnitude(gvm_ctx *ctx, gvm_tensor *wave, int n_fft, int hop, int win_length, bool center,
                                  float eps);

// ---- mel filterbank --------------------------------------------------------------------------------------------
typedef enum gvm_nn_mel_scale {
    GVM_NN_MEL_SCALE_SLANEY = 0,  // librosa's default: linear below 1 kHz, logarithmic above (Slaney's toolbox)
    GVM_NN_MEL_SCALE_HTK,         // 2595 log10(1 + f / 700) (torchaudio's default)
} gvm_nn_mel_scale;

typedef enum gvm_nn_mel_norm {
    GVM_NN_MEL_NORM_SLANEY = 0,  // each triangle divided by its width in Hz / 2: constant energy per channel
    GVM_NN_MEL_NORM_NONE,        // triangles of peak 1 (torchaudio's default)
} gvm_nn_mel_norm;

// Triangular mel filters as librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk, norm) computes them:
// out [n_mels, F] host floats (row m weights the F one-sided bins), bin k at frequency k * sample_rate / n_fft,
// n_mels + 2 band edges evenly spaced on the mel scale from f_min to f_max. f_max <= 0 means sample_rate / 2.
// torchaudio.functional.melscale_fbanks gives the transpose of the same matrix (its bin frequencies
// linspace(0, sample_rate // 2, F) agree for an even sample rate). Filters narrower than a bin are all zero
// (as in both libraries, which only warn). Returns GVM_ERR_INVALID with a message for a bad config.
gvm_status gvm_nn_mel_filterbank(float sample_rate, int n_fft, int n_mels, float f_min, float f_max,
                                 gvm_nn_mel_norm norm, gvm_nn_mel_scale scale, float *out);

#ifdef __cplusplus
}
#endif

#endif
