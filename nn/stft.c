// stft.c: STFT as framing (index_select) + GEMM with a windowed DFT basis, and mel filterbanks. See stft.h.
#include "nn/stft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double k_two_pi = 6.283185307179586476925286766559;

// torch.hann_window(L) (periodic): 0.5 - 0.5 cos(2 pi n / L); a 1-sample window is [1] as in PyTorch.
static double hann(int n, int win_length) {
    if (win_length == 1) return 1.0;
    return 0.5 - 0.5 * cos(k_two_pi * n / win_length);
}

double gvm_nn_stft_window_sumsq(int win_length) {
    double s = 0;
    for (int n = 0; n < win_length; n++) s += hann(n, win_length) * hann(n, win_length);
    return s;
}

// basis [n_fft, F, 2] into out. The phase index k*n is reduced mod n_fft first, so every entry is one of
// n_fft exactly rounded cosines/sines (no growth of the argument's rounding error with k*n).
static void fill_basis(float *out, int n_fft, int win_length, float scale) {
    GVM_CHECK(n_fft >= 2 && win_length >= 1 && win_length <= n_fft,
              "stft: need n_fft >= 2 and 1 <= win_length <= n_fft, got n_fft %d, win_length %d", n_fft, win_length);
    const int F = n_fft / 2 + 1, left = (n_fft - win_length) / 2;
    double *c = GVM_MALLOC(sizeof(double) * 2 * (size_t)n_fft), *s = c + n_fft;
    for (int m = 0; m < n_fft; m++) {
        c[m] = cos(k_two_pi * m / n_fft);
        s[m] = sin(k_two_pi * m / n_fft);
    }
    for (int n = 0; n < n_fft; n++) {
        const int wn = n - left;
        const double w = (wn >= 0 && wn < win_length) ? hann(wn, win_length) * scale : 0.0;
        float *row = out + (size_t)n * 2 * F;
        for (int k = 0; k < F; k++) {
            const int m = (int)(((int64_t)k * n) % n_fft);
            row[2 * k] = (float)(w * c[m]);
            row[2 * k + 1] = (float)(-w * s[m]);
        }
    }
    free(c);
}

gvm_tensor *gvm_nn_stft_basis_new(int n_fft, int win_length, float scale) {
    const int64_t shape[2] = {n_fft, 2 * (n_fft / 2 + 1)};
    gvm_tensor *b = gvm_tensor_new(GVM_F32, 2, shape);
    fill_basis(gvm_tensor_f32(b), n_fft, win_length, scale);
    return b;
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

// Framing in two gathers. Every frame starts at a multiple of g = gcd(n_fft, hop), so the padded signal cut
// into chunks of g samples, [B, C, g], holds each frame as n_fft / g consecutive chunks: the second gather
// copies whole chunks (hop / 4 or more floats for the losses' framings) instead of single samples, which
// matters because frames overlap n_fft / hop times. The first gather pads (reflect, zeros) sample by sample,
// touching each sample once.
gvm_tensor *gvm_nn_stft_frames(gvm_ctx *ctx, gvm_tensor *wave, int n_fft, int hop, int pad_reflect, int pad_zero) {
    char buf[64];
    GVM_CHECK(wave->ndim == 2, "stft: wave must be [B, T], got %s", gvm_shape_str(wave->ndim, wave->shape, buf, sizeof buf));
    GVM_CHECK(n_fft >= 1 && hop >= 1 && pad_reflect >= 0 && pad_zero >= 0,
              "stft: bad framing n_fft %d, hop %d, pads %d/%d", n_fft, hop, pad_reflect, pad_zero);
    const int64_t B = wave->shape[0], T = wave->shape[1];
    GVM_CHECK(pad_reflect < T, "stft: reflect padding %d needs a signal longer than that (T = %lld)", pad_reflect,
              (long long)T);
    const int64_t Tp = T + 2 * (int64_t)pad_reflect + pad_zero;
    GVM_CHECK(Tp >= n_fft, "stft: padded signal of %lld samples is shorter than one frame (n_fft %d)", (long long)Tp,
              n_fft);
    const int64_t N = (Tp - n_fft) / hop + 1, g = gcd64(n_fft, hop);
    const int64_t used = (N - 1) * hop + n_fft;  // samples of the padded signal that some frame reads (g | used)
    const int64_t C = used / g, per = n_fft / g;  // chunks in the signal and per frame
    GVM_CHECK(N * per < INT32_MAX && used < INT32_MAX, "stft: %lld frames of %d samples is too many", (long long)N,
              n_fft);

    // Padding: index T is one extra zero sample that every zero-padded position points to.
    gvm_tensor *src = wave;
    if (used > T + 2 * (int64_t)pad_reflect) {
        gvm_tensor *zero = gvm_tensor_zeros(ctx, GVM_F32, 2, (int64_t[]){B, 1});
        gvm_tensor *parts[2] = {wave, zero};
        src = gvm_concat(ctx, parts, 2, 1);  // [B, T + 1]
    }
    const int64_t n_idx = used > N * per ? used : N * per;
    int32_t *host = GVM_MALLOC(sizeof(int32_t) * (size_t)n_idx);
    for (int64_t j = 0; j < used; j++) {  // position j of the padded signal
        int64_t i = j - pad_reflect;
        if (j >= T + 2 * (int64_t)pad_reflect) i = T;
        else if (i < 0) i = -i;
        else if (i >= T) i = 2 * (T - 1) - i;
        host[j] = (int32_t)i;
    }
    gvm_tensor *padded = src;
    if (pad_reflect > 0 || used != T) {
        gvm_tensor *idx = gvm_tensor_empty(ctx, GVM_I32, 1, (int64_t[]){used});
        gvm_device_copy(idx->data, idx->device, host, GVM_DEVICE_CPU, sizeof(int32_t) * (size_t)used);
        padded = gvm_index_select(ctx, src, 1, idx);  // [B, used]
    }
    gvm_tensor *chunks = gvm_reshape(ctx, padded, 3, (int64_t[]){B, C, g});
    for (int64_t f = 0; f < N; f++)
        for (int64_t c = 0; c < per; c++) host[f * per + c] = (int32_t)(f * (hop / g) + c);
    gvm_tensor *idx = gvm_tensor_empty(ctx, GVM_I32, 1, (int64_t[]){N * per});
    gvm_device_copy(idx->data, idx->device, host, GVM_DEVICE_CPU, sizeof(int32_t) * (size_t)(N * per));
    free(host);
    gvm_tensor *rows = gvm_index_select(ctx, chunks, 1, idx);  // [B, N * per, g]
    return gvm_reshape(ctx, rows, 3, (int64_t[]){B, N, n_fft});
}

gvm_tensor *gvm_nn_stft_power_frames(gvm_ctx *ctx, gvm_tensor *frames, gvm_tensor *basis) {
    GVM_CHECK(frames->ndim == 3 && basis->ndim == 2 && basis->shape[0] == frames->shape[2] && basis->shape[1] % 2 == 0,
              "stft: frames [B, N, n_fft] and basis [n_fft, 2F] do not fit");
    const int64_t B = frames->shape[0], N = frames->shape[1], F = basis->shape[1] / 2;
    gvm_tensor *z = gvm_matmul(ctx, frames, basis, false, false);   // [B, N, 2F]: (re, im) pairs
    z = gvm_reshape(ctx, z, 4, (int64_t[]){B, N, F, 2});
    return gvm_sum(ctx, gvm_mul(ctx, z, z), -1, false);             // [B, N, F]
}

gvm_tensor *gvm_nn_stft_weighted_power(gvm_ctx *ctx, gvm_tensor *frames, gvm_tensor *basis, gvm_tensor *w_pairs) {
    GVM_CHECK(frames->ndim == 3 && basis->ndim == 2 && basis->shape[0] == frames->shape[2] && w_pairs->ndim == 2 &&
              w_pairs->shape[1] == basis->shape[1],
              "stft: frames [B, N, n_fft], basis [n_fft, 2F] and weights [M, 2F] do not fit");
    gvm_tensor *z = gvm_matmul(ctx, frames, basis, false, false);  // [B, N, 2F]
    return gvm_linear(ctx, gvm_mul(ctx, z, z), w_pairs, NULL);     // [B, N, M]
}

gvm_tensor *gvm_nn_stft_pairs_new(const float *w, int M, int F) {
    gvm_tensor *t = gvm_tensor_new(GVM_F32, 2, (int64_t[]){M, 2 * F});
    float *d = gvm_tensor_f32(t);
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < F; k++) d[m * 2 * F + 2 * k] = d[m * 2 * F + 2 * k + 1] = w[m * F + k];
    return t;
}

gvm_tensor *gvm_nn_stft_magnitude(gvm_ctx *ctx, gvm_tensor *wave, int n_fft, int hop, int win_length, bool center,
                                  float eps) {
    GVM_CHECK(eps >= 0, "stft: eps must be >= 0, got %g", eps);
    const int F = n_fft / 2 + 1;
    float *host = GVM_MALLOC(sizeof(float) * (size_t)n_fft * 2 * F);
    fill_basis(host, n_fft, win_length, 1.0f);
    gvm_tensor *basis = gvm_tensor_from_f32(ctx, host, 2, (int64_t[]){n_fft, 2 * F});
    free(host);
    gvm_tensor *frames = gvm_nn_stft_frames(ctx, wave, n_fft, hop, center ? n_fft / 2 : 0, 0);  // [B, N, n_fft]
    gvm_tensor *power = gvm_nn_stft_power_frames(ctx, frames, basis);                           // [B, N, F]
    gvm_tensor *mag = gvm_sqrt(ctx, eps > 0 ? gvm_add_scalar(ctx, power, eps) : power);
    return gvm_transpose(ctx, mag, 1, 2);  // [B, F, N]
}

// ---- mel filterbank -------------------------------------------------------------------------------------------
// librosa.hz_to_mel / mel_to_hz (and torchaudio's _hz_to_mel / _mel_to_hz, which are the same formulas).
static const double k_slaney_f_sp = 200.0 / 3, k_slaney_min_log_hz = 1000.0, k_slaney_min_log_mel = 15.0;

static double slaney_logstep(void) { return log(6.4) / 27.0; }

static double hz_to_mel(double f, gvm_nn_mel_scale scale) {
    if (scale == GVM_NN_MEL_SCALE_HTK) return 2595.0 * log10(1.0 + f / 700.0);
    if (f < k_slaney_min_log_hz) return f / k_slaney_f_sp;
    return k_slaney_min_log_mel + log(f / k_slaney_min_log_hz) / slaney_logstep();
}

static double mel_to_hz(double m, gvm_nn_mel_scale scale) {
    if (scale == GVM_NN_MEL_SCALE_HTK) return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
    if (m < k_slaney_min_log_mel) return m * k_slaney_f_sp;
    return k_slaney_min_log_hz * exp(slaney_logstep() * (m - k_slaney_min_log_mel));
}

gvm_status gvm_nn_mel_filterbank(float sample_rate, int n_fft, int n_mels, float f_min, float f_max,
                                 gvm_nn_mel_norm norm, gvm_nn_mel_scale scale, float *out) {
    if (!(sample_rate > 0) || n_fft < 2 || n_mels < 1)
        return gvm_error_set(GVM_ERR_INVALID, "mel filterbank: need sample_rate > 0, n_fft >= 2 and n_mels >= 1 "
                             "(got %g, %d, %d)", sample_rate, n_fft, n_mels);
    if (scale != GVM_NN_MEL_SCALE_HTK && scale != GVM_NN_MEL_SCALE_SLANEY)
        return gvm_error_set(GVM_ERR_INVALID, "mel filterbank: unknown mel scale %d (slaney or htk)", (int)scale);
    if (norm != GVM_NN_MEL_NORM_SLANEY && norm != GVM_NN_MEL_NORM_NONE)
        return gvm_error_set(GVM_ERR_INVALID, "mel filterbank: unknown norm %d (slaney or none)", (int)norm);
    const double fmax = f_max > 0 ? f_max : sample_rate / 2.0;
    if (!(f_min >= 0) || !(fmax > f_min))
        return gvm_error_set(GVM_ERR_INVALID, "mel filterbank: need 0 <= f_min < f_max, got f_min %g Hz, f_max %g Hz "
                             "(f_max <= 0 means sample_rate / 2)", f_min, fmax);
    const int F = n_fft / 2 + 1;
    double *edges = GVM_MALLOC(sizeof(double) * (size_t)(n_mels + 2));
    const double m0 = hz_to_mel(f_min, scale), m1 = hz_to_mel(fmax, scale);
    for (int i = 0; i < n_mels + 2; i++) {
        // np.linspace: the last point is exactly the end
        const double m = i == n_mels + 1 ? m1 : m0 + (m1 - m0) * i / (n_mels + 1);
        edges[i] = mel_to_hz(m, scale);
    }
    for (int i = 0; i < n_mels; i++) {
        const double lo = edges[i], mid = edges[i + 1], hi = edges[i + 2];
        const double enorm = norm == GVM_NN_MEL_NORM_SLANEY ? 2.0 / (hi - lo) : 1.0;
        for (int k = 0; k < F; k++) {
            const double f = (double)k * sample_rate / n_fft;
            const double lower = (f - lo) / (mid - lo), upper = (hi - f) / (hi - mid);
            double w = lower < upper ? lower : upper;
            out[(size_t)i * F + k] = (float)((w > 0 ? w : 0.0) * enorm);
        }
    }
    free(edges);
    return GVM_OK;
}
