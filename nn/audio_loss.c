// audio_loss.c: multi-resolution STFT loss, audiocraft's multi-scale mel loss, SI-SNR and mel distance.
// See audio_loss.h for the formulas and what each matches.
//
// Speed (nn/stft.h explains the framing + GEMM lowering): the framing gathers and elementwise ops are O(B T)
// per scale; the DFT GEMM is 8 B T n flops per scale of n taps (hop n/4), so the largest scale dominates.
// Measured forward + backward for B = 4 x 1 s, 1 thread, process CPU time (the shared 2-core machine had a
// load of 6-8, so wall times with 2 threads measured the neighbours, not this code), Release build:
//                               16 kHz   24 kHz   32 kHz   PyTorch twin (torch.stft = FFT), 16 / 32 kHz
//   msmel, audiocraft cfg 6..10   35 ms    54 ms    73 ms     48 / 97 ms
//   msmel, EnCodec 5..11          70 ms   104 ms   139 ms     54 / 110 ms
//   mrstft 512/1024/2048          53 ms    79 ms   106 ms     12 / 24 ms
// Per scale at 32 kHz (one signal's mel, fwd + bwd): GEMM path vs gvm_conv1d with the same basis:
//   n = 64: 3.1 vs 3.3 ms, 256: 6.2 vs 6.7, 1024: 19.0 vs 23.9, 2048: 35.7 vs 53.0; so GEMM everywhere.
#include "nn/audio_loss.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const float k_inv_ln10 = 0.43429448190325182765f;  // log10(x) = ln(x) / ln(10)

static void check_pair(const gvm_ctx *ctx, const gvm_tensor *pred, const gvm_tensor *target, const char *who) {
    char a[64], b[64];
    GVM_CHECK(pred->ndim == 2 && gvm_tensor_same_shape(pred, target), "%s: pred %s and target %s must both be [B, T]",
              who, gvm_shape_str(pred->ndim, pred->shape, a, sizeof a),
              gvm_shape_str(target->ndim, target->shape, b, sizeof b));
    GVM_CHECK(ctx->device == GVM_DEVICE_CPU, "%s: the loss keeps its DFT bases on the CPU; use a CPU context", who);
}

static gvm_tensor *acc(gvm_ctx *ctx, gvm_tensor *sum, gvm_tensor *term) { return sum ? gvm_add(ctx, sum, term) : term; }

// ---- multi-resolution STFT loss ------------------------------------------------------------------------------------

gvm_status gvm_nn_mrstft_loss_init(gvm_nn_mrstft_loss *l, const gvm_nn_mrstft_cfg *cfg) {
    memset(l, 0, sizeof *l);
    if (cfg) l->cfg = *cfg;
    gvm_nn_mrstft_cfg *c = &l->cfg;
    if (c->n_res == 0) {
        c->n_res = 3;
        c->res[0] = (gvm_nn_stft_res){512, 128, 512};
        c->res[1] = (gvm_nn_stft_res){1024, 256, 1024};
        c->res[2] = (gvm_nn_stft_res){2048, 512, 2048};
    }
    if (c->eps == 0) c->eps = 1e-7f;
    if (c->factor_sc == 0 && c->factor_mag == 0) c->factor_sc = c->factor_mag = 1;
    if (c->n_res < 0 || c->n_res > GVM_NN_AUDIO_LOSS_MAX_RES)
        return gvm_error_set(GVM_ERR_INVALID, "mrstft loss: %d resolutions, need 1..%d", c->n_res,
                             GVM_NN_AUDIO_LOSS_MAX_RES);
    if (!(c->eps > 0)) return gvm_error_set(GVM_ERR_INVALID, "mrstft loss: eps must be > 0, got %g", c->eps);
    for (int r = 0; r < c->n_res; r++) {
        const gvm_nn_stft_res s = c->res[r];
        if (s.n_fft < 2 || s.hop < 1 || s.win_length < 1 || s.win_length > s.n_fft)
            return gvm_error_set(GVM_ERR_INVALID, "mrstft loss: resolution %d (n_fft %d, hop %d, win_length %d) needs "
                                 "n_fft >= 2, hop >= 1 and 1 <= win_length <= n_fft", r, s.n_fft, s.hop, s.win_length);
    }
    for (int r = 0; r < c->n_res; r++) l->basis[r] = gvm_nn_stft_basis_new(c->res[r].n_fft, c->res[r].win_length, 1);
    return GVM_OK;
}

void gvm_nn_mrstft_loss_free(gvm_nn_mrstft_loss *l) {
    for (int r = 0; r < GVM_NN_AUDIO_LOSS_MAX_RES; r++) gvm_tensor_free(l->basis[r]);
    memset(l, 0, sizeof *l);
}

// wave [B, T] -> sqrt(|STFT|^2 + eps) [B, N, F], torch.stft's centred framing.
static gvm_tensor *magnitude(gvm_ctx *ctx, gvm_tensor *wave, gvm_nn_stft_res s, gvm_tensor *basis, float eps) {
    gvm_tensor *frames = gvm_nn_stft_frames(ctx, wave, s.n_fft, s.hop, s.n_fft / 2, 0);
    return gvm_sqrt(ctx, gvm_add_scalar(ctx, gvm_nn_stft_power_frames(ctx, frames, basis), eps));
}

gvm_tensor *gvm_nn_mrstft_loss_forward(gvm_ctx *ctx, const gvm_nn_mrstft_loss *l, gvm_tensor *pred,
                                       gvm_tensor *target, gvm_tensor **sc, gvm_tensor **mag) {
    check_pair(ctx, pred, target, "mrstft loss");
    const gvm_nn_mrstft_cfg *c = &l->cfg;
    GVM_CHECK(c->n_res > 0 && l->basis[0], "mrstft loss: not initialised (gvm_nn_mrstft_loss_init)");
    gvm_tensor *sc_sum = NULL, *mag_sum = NULL;
    for (int r = 0; r < c->n_res; r++) {
        gvm_tensor *X = magnitude(ctx, pred, c->res[r], l->basis[r], c->eps);    // [B, N, F]
        gvm_tensor *Y = magnitude(ctx, target, c->res[r], l->basis[r], c->eps);  // [B, N, F]
        gvm_tensor *d = gvm_sub(ctx, Y, X);
        gvm_tensor *num = gvm_sqrt(ctx, gvm_sum(ctx, gvm_mul(ctx, d, d), GVM_AXIS_ALL, false));
        gvm_tensor *den = gvm_sqrt(ctx, gvm_sum(ctx, gvm_mul(ctx, Y, Y), GVM_AXIS_ALL, false));
        sc_sum = acc(ctx, sc_sum, gvm_div(ctx, num, den));
        mag_sum = acc(ctx, mag_sum, gvm_l1_loss(ctx, gvm_log(ctx, Y), gvm_log(ctx, X)));
    }
    gvm_tensor *sc_mean = gvm_mul_scalar(ctx, sc_sum, 1.0f / c->n_res);
    gvm_tensor *mag_mean = gvm_mul_scalar(ctx, mag_sum, 1.0f / c->n_res);
    if (sc) *sc = sc_mean;
    if (mag) *mag = mag_mean;
    return gvm_add(ctx, gvm_mul_scalar(ctx, sc_mean, c->factor_sc), gvm_mul_scalar(ctx, mag_mean, c->factor_mag));
}

// ---- multi-scale mel loss ------------------------------------------------------------------------------------------

gvm_nn_msmel_cfg gvm_nn_msmel_default_cfg(float sample_rate) {
    return (gvm_nn_msmel_cfg){.sample_rate = sample_rate, .range_start = 6, .range_end = 11, .n_mels = 64,
                              .f_min = 64, .f_max = 0, .normalized = true, .alphas = false, .floor_level = 1e-5f};
}

// A heap fb [n_mels, 2F] in pairs (torchaudio MelSpectrogram's bank: htk scale, no norm).
static gvm_status mel_fb_new(float sample_rate, int n_fft, int n_mels, float f_min, float f_max, gvm_tensor **out) {
    *out = NULL;
    if (n_mels < 1) return gvm_error_set(GVM_ERR_INVALID, "need n_mels >= 1, got %d", n_mels);
    const int F = n_fft / 2 + 1;
    float *fb = GVM_MALLOC(sizeof(float) * (size_t)n_mels * F);
    gvm_status st = gvm_nn_mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, GVM_NN_MEL_NORM_NONE,
                                          GVM_NN_MEL_SCALE_HTK, fb);
    if (st == GVM_OK) *out = gvm_nn_stft_pairs_new(fb, n_mels, F);
    free(fb);
    return st;
}

gvm_status gvm_nn_msmel_loss_init(gvm_nn_msmel_loss *l, const gvm_nn_msmel_cfg *cfg) {
    memset(l, 0, sizeof *l);
    GVM_CHECK(cfg, "msmel loss: cfg is NULL (start from gvm_nn_msmel_default_cfg)");
    l->cfg = *cfg;
    const gvm_nn_msmel_cfg *c = &l->cfg;
    if (c->range_start < 2 || c->range_end <= c->range_start || c->range_end > 17 ||
        c->range_end - c->range_start > GVM_NN_AUDIO_LOSS_MAX_RES)
        return gvm_error_set(GVM_ERR_INVALID, "msmel loss: scale range [%d, %d) must be non-empty, within [2, 17) and "
                             "at most %d scales (window sizes 2^i)", c->range_start, c->range_end,
                             GVM_NN_AUDIO_LOSS_MAX_RES);
    if (!(c->floor_level > 0))
        return gvm_error_set(GVM_ERR_INVALID, "msmel loss: floor_level must be > 0, got %g", c->floor_level);
    l->n_scales = c->range_end - c->range_start;
    for (int s = 0; s < l->n_scales; s++) {
        const int n = 1 << (c->range_start + s);
        gvm_status st = mel_fb_new(c->sample_rate, n, c->n_mels, c->f_min, c->f_max, &l->fb[s]);
        if (st != GVM_OK) {
            gvm_nn_msmel_loss_free(l);
            return gvm_error_set(st, "msmel loss (window %d): %s", n, gvm_error_message());
        }
        const float scale = c->normalized ? (float)(1.0 / sqrt(gvm_nn_stft_window_sumsq(n))) : 1.0f;
        l->basis[s] = gvm_nn_stft_basis_new(n, n, scale);
        l->alpha[s] = c->alphas ? (float)sqrt((double)n - 1) : 1.0f;
        l->total += l->alpha[s] + 1;
    }
    return GVM_OK;
}

void gvm_nn_msmel_loss_free(gvm_nn_msmel_loss *l) {
    for (int s = 0; s < GVM_NN_AUDIO_LOSS_MAX_RES; s++) {
        gvm_tensor_free(l->basis[s]);
        gvm_tensor_free(l->fb[s]);
    }
    memset(l, 0, sizeof *l);
}

gvm_tensor *gvm_nn_mel_spectrogram(gvm_ctx *ctx, gvm_tensor *wave, int n_fft, int hop, gvm_tensor *basis,
                                   gvm_tensor *fb) {
    GVM_CHECK(wave->ndim == 2 && hop >= 1 && hop <= n_fft, "mel spectrogram: wave must be [B, T] and 1 <= hop <= n_fft");
    // audiocraft's MelSpectrogramWrapper: reflect by p, then pad_for_conv1d's zeros so the last frame is full.
    const int64_t T = wave->shape[1], p = (n_fft - hop) / 2, L = T + 2 * p;
    const int64_t num = L - n_fft + hop;  // > 0: at least one (partial) frame
    GVM_CHECK(p < T && num > 0, "mel spectrogram: a signal of %lld samples is too short for n_fft %d", (long long)T,
              n_fft);
    const int64_t n_frames = (num + hop - 1) / hop;  // ceil((L - n_fft) / hop + 1)
    const int64_t extra = (n_frames - 1) * hop + n_fft - L;
    gvm_tensor *frames = gvm_nn_stft_frames(ctx, wave, n_fft, hop, (int)p, (int)extra);  // [B, N, n_fft]
    return gvm_nn_stft_weighted_power(ctx, frames, basis, fb);                            // [B, N, n_mels]
}

static gvm_tensor *log10_floor(gvm_ctx *ctx, gvm_tensor *s, float floor_level) {
    return gvm_mul_scalar(ctx, gvm_log(ctx, gvm_add_scalar(ctx, s, floor_level)), k_inv_ln10);
}

gvm_tensor *gvm_nn_msmel_loss_forward(gvm_ctx *ctx, const gvm_nn_msmel_loss *l, gvm_tensor *pred,
                                      gvm_tensor *target) {
    check_pair(ctx, pred, target, "msmel loss");
    GVM_CHECK(l->n_scales > 0, "msmel loss: not initialised (gvm_nn_msmel_loss_init)");
    gvm_tensor *loss = NULL;
    for (int s = 0; s < l->n_scales; s++) {
        const int n = 1 << (l->cfg.range_start + s);
        gvm_tensor *sx = gvm_nn_mel_spectrogram(ctx, pred, n, n / 4, l->basis[s], l->fb[s]);    // [B, N, n_mels]
        gvm_tensor *sy = gvm_nn_mel_spectrogram(ctx, target, n, n / 4, l->basis[s], l->fb[s]);  // [B, N, n_mels]
        gvm_tensor *l1 = gvm_l1_loss(ctx, sx, sy);
        gvm_tensor *l2 = gvm_mse_loss(ctx, log10_floor(ctx, sx, l->cfg.floor_level),
                                      log10_floor(ctx, sy, l->cfg.floor_level));
        loss = acc(ctx, loss, gvm_add(ctx, l1, l->alpha[s] == 1.0f ? l2 : gvm_mul_scalar(ctx, l2, l->alpha[s])));
    }
    return l->cfg.normalized ? gvm_mul_scalar(ctx, loss, 1.0f / l->total) : loss;
}

// ---- metrics ------------------------------------------------------------------------------------------------------

double gvm_nn_si_snr(const float *est, const float *ref, int64_t n) {
    const double eps = FLT_EPSILON;
    double me = 0, mr = 0;
    for (int64_t i = 0; i < n; i++) {
        me += est[i];
        mr += ref[i];
    }
    me /= (double)n;
    mr /= (double)n;
    double dot = 0, rr = 0;
    for (int64_t i = 0; i < n; i++) {
        dot += (est[i] - me) * (ref[i] - mr);
        rr += (ref[i] - mr) * (ref[i] - mr);
    }
    const double a = (dot + eps) / (rr + eps);
    double ss = 0, ee = 0;
    for (int64_t i = 0; i < n; i++) {
        const double s = a * (ref[i] - mr), e = s - (est[i] - me);
        ss += s * s;
        ee += e * e;
    }
    return 10.0 * log10((ss + eps) / (ee + eps));
}

double gvm_nn_si_snr_batch(const float *est, const float *ref, int64_t B, int64_t T) {
    double sum = 0;
    for (int64_t b = 0; b < B; b++) sum += gvm_nn_si_snr(est + b * T, ref + b * T, T);
    return sum / (double)B;
}

gvm_nn_mel_distance_cfg gvm_nn_mel_distance_default_cfg(float sample_rate) {
    return (gvm_nn_mel_distance_cfg){.sample_rate = sample_rate, .n_fft = 1024, .hop = 256, .win_length = 1024,
                                     .n_mels = 64, .f_min = 64, .f_max = 0, .floor_level = 1e-5f};
}

gvm_status gvm_nn_mel_distance(const float *est, const float *ref, int64_t B, int64_t T,
                               const gvm_nn_mel_distance_cfg *cfg, double *out) {
    const gvm_nn_mel_distance_cfg c = *cfg;
    if (c.n_fft < 2 || c.hop < 1 || c.hop > c.n_fft || c.win_length < 1 || c.win_length > c.n_fft ||
        !(c.floor_level > 0))
        return gvm_error_set(GVM_ERR_INVALID, "mel distance: need n_fft >= 2, 1 <= hop <= n_fft, 1 <= win_length <= "
                             "n_fft and floor_level > 0 (got %d, %d, %d, %g)", c.n_fft, c.hop, c.win_length,
                             c.floor_level);
    if (B < 1 || T <= (c.n_fft - c.hop) / 2 || T + 2 * ((c.n_fft - c.hop) / 2) - c.n_fft + c.hop <= 0)
        return gvm_error_set(GVM_ERR_INVALID, "mel distance: [%lld, %lld] signals are too short for n_fft %d",
                             (long long)B, (long long)T, c.n_fft);
    gvm_tensor *fb = NULL;
    gvm_status st = mel_fb_new(c.sample_rate, c.n_fft, c.n_mels, c.f_min, c.f_max, &fb);
    if (st != GVM_OK) return gvm_error_set(st, "mel distance: %s", gvm_error_message());
    gvm_tensor *basis = gvm_nn_stft_basis_new(c.n_fft, c.win_length, 1);
    gvm_ctx *ctx = gvm_ctx_new(0);
    gvm_no_grad_begin(ctx);
    const int64_t shape[2] = {B, T};
    gvm_tensor *se = gvm_nn_mel_spectrogram(ctx, gvm_tensor_from_f32(ctx, est, 2, shape), c.n_fft, c.hop, basis, fb);
    gvm_tensor *sr = gvm_nn_mel_spectrogram(ctx, gvm_tensor_from_f32(ctx, ref, 2, shape), c.n_fft, c.hop, basis, fb);
    const float *a = gvm_tensor_f32(se), *b = gvm_tensor_f32(sr);
    double sum = 0;
    for (int64_t i = 0; i < se->numel; i++)
        sum += fabs(log10((double)a[i] + c.floor_level) - log10((double)b[i] + c.floor_level));
    *out = sum / (double)se->numel;
    gvm_no_grad_end(ctx);
    gvm_ctx_free(ctx);
    gvm_tensor_free(basis);
    gvm_tensor_free(fb);
    return GVM_OK;
}
