// test_nn_audio_loss.c: the STFT, mel filterbanks, codec losses and audio metrics (nn/stft.h, nn/audio_loss.h)
// against float64 oracles (tests/golden/gen_nn_audio_loss.py: torch.stft, librosa, a torchaudio-formula htk
// bank, Parallel WaveGAN's MR-STFT loss, audiocraft's multi-scale mel loss, torchmetrics' SI-SNR), plus
// properties a wrong implementation breaks and the errors a bad config gives.
//
// Tolerances. gvm is f32, the oracles float64 from the same f32 inputs. An STFT bin is a sum of n_fft products
// (up to 2048) whose rounding error scales with sum |w x|, not with the bin's own (possibly tiny) magnitude, so
// spectra and gradients are compared relative to the tensor's largest element: TOL_SPEC 4e-6 and TOL_SPEC_GRAD
// 1e-5 of max|ref| (measured worst: 4e-7 and 7e-7, the 2048-tap case). The losses' gradients get 3e-4 of
// max|grad| (measured 5e-5): the L1 terms differentiate to sign(log Y - log X) / count, and bins where the two
// logs nearly tie flip sign under f32 rounding; PyTorch's own f32 FFT path is 1.0e-4 off its float64 twin here.
// Scalar losses: relative 1e-5 (measured 1e-7). Filterbanks are closed-form per element: 1e-6 of max.
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/audio_loss.h"
#include "nn/stft.h"
#include "tests/nn_golden.h"
#include "tests/test_util.h"

#define TOL_SPEC 4e-6
#define TOL_SPEC_GRAD 1e-5
#define TOL_GRAD 3e-4
#define TOL_LOSS 1e-5
#define TOL_FB 1e-6

static gvm_safetensors *open_golden(const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/nn_audio_loss/%s", test_golden_dir(), file);
    gvm_safetensors *st = NULL;
    if (gvm_safetensors_open(path, &st) != GVM_OK) {
        test_check(false, file, "cannot read %s (regenerate: cd tests/golden && python3 generate.py --only "
                   "nn_audio_loss)", gvm_error_message());
        return NULL;
    }
    return st;
}

// |got - exp| <= rel * max|exp| elementwise (NaN fails).
static bool close_scaled(const char *name, const float *got, const float *exp, int64_t n, double rel) {
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(exp[i]));
    int64_t worst = 0;
    double wd = -1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - exp[i]);
        if (!(d <= wd) || isnan(d)) {
            wd = isnan(d) ? INFINITY : d;
            worst = i;
        }
    }
    return test_check(wd <= rel * mx, name, "worst element %lld: got %.8g, expected %.8g (|diff| %.3g > %.3g * max %.3g)",
                      (long long)worst, got[worst], exp[worst], wd, rel, mx);
}

static bool close_rel(const char *name, double got, double exp, double rel) {
    return test_check(fabs(got - exp) <= rel * fabs(exp), name, "got %.9g, expected %.9g (rel %.3g)", got, exp,
                      fabs(got - exp) / fabs(exp));
}

static float scalar(const gvm_tensor *t) { return gvm_tensor_f32(t)[0]; }

// ---- STFT magnitude against torch.stft --------------------------------------------------------------------------
static void stft_golden(void) {
    gvm_safetensors *st = open_golden("stft.safetensors");
    if (!st) return;
    const char *cases = gvm_safetensors_metadata(st, "cases");
    GVM_CHECK(cases, "stft golden: no cases metadata");
    char *list = strdup(cases), *save = NULL;
    int i = 0;
    for (char *tok = strtok_r(list, ";", &save); tok; tok = strtok_r(NULL, ";", &save), i++) {
        int n_fft, hop, win, center;
        double eps;
        GVM_CHECK(sscanf(tok, "%d:%d:%d:%d:%lf", &n_fft, &hop, &win, &center, &eps) == 5, "bad case %s", tok);
        char key[64], name[128];
        snprintf(key, sizeof key, "c%d.in", i);
        gvm_tensor *x = nn_golden_load(st, key);
        x->requires_grad = true;
        snprintf(key, sizeof key, "c%d.out", i);
        gvm_tensor *e = nn_golden_load(st, key);
        snprintf(key, sizeof key, "c%d.gout", i);
        gvm_tensor *gout = nn_golden_load(st, key);
        snprintf(key, sizeof key, "c%d.grad", i);
        gvm_tensor *eg = nn_golden_load(st, key);

        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *mag = gvm_nn_stft_magnitude(ctx, x, n_fft, hop, win, center, (float)eps);
        snprintf(name, sizeof name, "stft %s (B %lld, T %lld) shape", tok, (long long)x->shape[0], (long long)x->shape[1]);
        bool shape_ok = test_check(mag->ndim == 3 && gvm_tensor_same_shape(mag, e), name, "got [%lld, %lld, %lld]",
                                   (long long)mag->shape[0], (long long)mag->shape[1], (long long)mag->shape[2]);
        if (shape_ok) {
            snprintf(name, sizeof name, "stft %s magnitude", tok);
            close_scaled(name, gvm_tensor_f32(mag), gvm_tensor_f32(e), e->numel, TOL_SPEC);
            gvm_backward_with_grad(ctx, mag, gvm_tensor_f32(gout));
            snprintf(name, sizeof name, "stft %s grad", tok);
            close_scaled(name, gvm_tensor_f32(x->grad), gvm_tensor_f32(eg), eg->numel, TOL_SPEC_GRAD);
        }
        gvm_ctx_free(ctx);
        gvm_tensor_free(x);
        gvm_tensor_free(e);
        gvm_tensor_free(gout);
        gvm_tensor_free(eg);
    }
    free(list);
    test_check(i == 6, "stft golden cases", "%d cases, expected 6", i);
    gvm_safetensors_close(st);
}

// A pure tone on bin k (an integer number of periods per frame) puts (almost) all energy in bin k, and its
// magnitude in the frames away from the edges is sum(w) / 2 = n_fft / 4 for a unit cosine.
static void stft_tone(void) {
    const int n_fft = 64, hop = 16, k = 5, T = 640;
    float *x = malloc(sizeof(float) * T);
    for (int t = 0; t < T; t++) x[t] = (float)cos(6.283185307179586 * k * t / n_fft);
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *w = gvm_tensor_from_f32(ctx, x, 2, (int64_t[]){1, T});
    gvm_tensor *mag = gvm_nn_stft_magnitude(ctx, w, n_fft, hop, n_fft, true, 0);  // [1, 33, 41]
    const int64_t F = mag->shape[1], N = mag->shape[2];
    const float *m = gvm_tensor_f32(mag);
    bool ok = F == 33 && N == T / hop + 1;
    for (int64_t f = 4; ok && f < N - 4; f++)
        for (int64_t b = 0; ok && b < F; b++) {
            const float v = m[b * N + f];
            const float want = b == k ? n_fft / 4.0f : (b == k - 1 || b == k + 1) ? n_fft / 8.0f : 0.0f;
            ok = fabsf(v - want) < 1e-4f * n_fft;
        }
    TEST_CHECK(ok, "stft pure tone", "bin %d should hold n_fft/4, its neighbours n_fft/8 (Hann leakage), others 0", k);
    gvm_ctx_free(ctx);
    free(x);
}

// ---- mel filterbanks against librosa (and torchaudio's htk formula, checked equal in the generator) ---------------
static void melfb_golden(void) {
    gvm_safetensors *st = open_golden("melfb.safetensors");
    if (!st) return;
    char *list = strdup(gvm_safetensors_metadata(st, "cases")), *save = NULL;
    int i = 0;
    for (char *tok = strtok_r(list, ";", &save); tok; tok = strtok_r(NULL, ";", &save), i++) {
        int sr, n_fft, n_mels;
        double fmin, fmax;
        char norm[16], scale[16];
        GVM_CHECK(sscanf(tok, "%d:%d:%d:%lf:%lf:%15[^:]:%15s", &sr, &n_fft, &n_mels, &fmin, &fmax, norm, scale) == 7,
                  "bad case %s", tok);
        char key[32], name[160];
        snprintf(key, sizeof key, "fb%d", i);
        gvm_tensor *e = nn_golden_load(st, key);
        const int F = n_fft / 2 + 1;
        float *fb = malloc(sizeof(float) * (size_t)n_mels * F);
        gvm_status s = gvm_nn_mel_filterbank((float)sr, n_fft, n_mels, (float)fmin, (float)fmax,
                                             strcmp(norm, "slaney") == 0 ? GVM_NN_MEL_NORM_SLANEY : GVM_NN_MEL_NORM_NONE,
                                             strcmp(scale, "htk") == 0 ? GVM_NN_MEL_SCALE_HTK : GVM_NN_MEL_SCALE_SLANEY,
                                             fb);
        snprintf(name, sizeof name, "mel filterbank %s", tok);
        if (test_check(s == GVM_OK && e->numel == (int64_t)n_mels * F, name, "status %d, %s", s, gvm_error_message()))
            close_scaled(name, fb, gvm_tensor_f32(e), e->numel, TOL_FB);
        free(fb);
        gvm_tensor_free(e);
    }
    free(list);
    test_check(i == 5, "mel filterbank cases", "%d cases, expected 5", i);
    gvm_safetensors_close(st);
}

// ---- losses: values and gradients against the float64 twins ---------------------------------------------------------
static void check_grad(const char *name, gvm_tensor *x, gvm_safetensors *st, const char *key) {
    gvm_tensor *e = nn_golden_load(st, key);
    if (test_check(x->grad != NULL, name, "no gradient reached the prediction"))
        close_scaled(name, gvm_tensor_f32(x->grad), gvm_tensor_f32(e), e->numel, TOL_GRAD);
    gvm_tensor_free(e);
}

static void losses_golden(void) {
    gvm_safetensors *st = open_golden("loss.safetensors");
    if (!st) return;
    gvm_tensor *pred = nn_golden_load(st, "pred"), *target = nn_golden_load(st, "target");
    gvm_tensor *e;
    gvm_ctx *ctx = gvm_ctx_new(1);

    // multi-resolution STFT loss, default resolutions
    gvm_nn_mrstft_loss mr;
    GVM_CHECK(gvm_nn_mrstft_loss_init(&mr, NULL) == GVM_OK, "%s", gvm_error_message());
    pred->requires_grad = true;
    gvm_tensor *sc, *mag;
    gvm_tensor *loss = gvm_nn_mrstft_loss_forward(ctx, &mr, pred, target, &sc, &mag);
    e = nn_golden_load(st, "mrstft.sc");
    close_rel("mrstft spectral convergence", scalar(sc), scalar(e), TOL_LOSS);
    gvm_tensor_free(e);
    e = nn_golden_load(st, "mrstft.mag");
    close_rel("mrstft log magnitude", scalar(mag), scalar(e), TOL_LOSS);
    gvm_tensor_free(e);
    e = nn_golden_load(st, "mrstft.loss");
    close_rel("mrstft loss", scalar(loss), scalar(e), TOL_LOSS);
    gvm_tensor_free(e);
    gvm_backward(ctx, loss);
    check_grad("mrstft grad", pred, st, "mrstft.grad");
    gvm_nn_mrstft_loss_free(&mr);
    gvm_zero_grad(pred);
    gvm_ctx_reset(ctx);

    // multi-scale mel loss: A = audiocraft's solver config, B = the class defaults over 2^5..2^11
    gvm_nn_msmel_cfg cfgs[2] = {gvm_nn_msmel_default_cfg(16000), gvm_nn_msmel_default_cfg(16000)};
    cfgs[1].range_start = 5;
    cfgs[1].range_end = 12;
    cfgs[1].f_min = 0;
    cfgs[1].normalized = false;
    cfgs[1].alphas = true;
    const char *names[2] = {"msmelA", "msmelB"};
    for (int c = 0; c < 2; c++) {
        gvm_nn_msmel_loss ml;
        GVM_CHECK(gvm_nn_msmel_loss_init(&ml, &cfgs[c]) == GVM_OK, "%s", gvm_error_message());
        char key[64], name[64];
        loss = gvm_nn_msmel_loss_forward(ctx, &ml, pred, target);
        snprintf(key, sizeof key, "%s.loss", names[c]);
        e = nn_golden_load(st, key);
        snprintf(name, sizeof name, "%s loss", names[c]);
        close_rel(name, scalar(loss), scalar(e), TOL_LOSS);
        gvm_tensor_free(e);
        gvm_backward(ctx, loss);
        snprintf(key, sizeof key, "%s.grad", names[c]);
        snprintf(name, sizeof name, "%s grad", names[c]);
        check_grad(name, pred, st, key);
        gvm_nn_msmel_loss_free(&ml);
        gvm_zero_grad(pred);
        gvm_ctx_reset(ctx);
    }

    // mel distance (host metric)
    gvm_nn_mel_distance_cfg mc = gvm_nn_mel_distance_default_cfg(16000);
    double md = -1;
    gvm_status s = gvm_nn_mel_distance(gvm_tensor_f32(pred), gvm_tensor_f32(target), pred->shape[0], pred->shape[1],
                                       &mc, &md);
    e = nn_golden_load(st, "meldist");
    if (test_check(s == GVM_OK, "mel distance", "%s", gvm_error_message()))
        close_rel("mel distance", md, scalar(e), TOL_LOSS);
    gvm_tensor_free(e);
    s = gvm_nn_mel_distance(gvm_tensor_f32(pred), gvm_tensor_f32(pred), pred->shape[0], pred->shape[1], &mc, &md);
    TEST_CHECK(s == GVM_OK && md == 0, "mel distance of identical signals", "%g", md);

    // SI-SNR against the numpy formula
    gvm_tensor *est = nn_golden_load(st, "sisnr.est"), *ref = nn_golden_load(st, "sisnr.ref");
    e = nn_golden_load(st, "sisnr.val");
    const int64_t P = est->shape[0], n = est->shape[1];
    for (int64_t p = 0; p < P; p++) {
        char name[64];
        snprintf(name, sizeof name, "si-snr pair %lld", (long long)p);
        const double v = gvm_nn_si_snr(gvm_tensor_f32(est) + p * n, gvm_tensor_f32(ref) + p * n, n);
        test_check(fabs(v - gvm_tensor_f32(e)[p]) < 1e-4, name, "got %.6f dB, expected %.6f", v, gvm_tensor_f32(e)[p]);
    }
    double mean = 0;
    for (int64_t p = 0; p < P; p++) mean += gvm_tensor_f32(e)[p] / (double)P;
    const double vb = gvm_nn_si_snr_batch(gvm_tensor_f32(est), gvm_tensor_f32(ref), P, n);
    TEST_CHECK(fabs(vb - mean) < 1e-4, "si-snr batch mean", "got %.6f, expected %.6f", vb, mean);
    gvm_tensor_free(est);
    gvm_tensor_free(ref);
    gvm_tensor_free(e);

    gvm_ctx_free(ctx);
    gvm_tensor_free(pred);
    gvm_tensor_free(target);
    gvm_safetensors_close(st);
}

// ---- properties ---------------------------------------------------------------------------------------------------------
static void si_snr_properties(void) {
    const int64_t n = 4000;
    gvm_tensor *r = test_randn(21, 1, (int64_t[]){n}, 0.5f, false), *z = test_randn(22, 1, (int64_t[]){n}, 1.0f, false);
    float *ref = gvm_tensor_f32(r), *noise = gvm_tensor_f32(z);
    float *est = malloc(sizeof(float) * n), *scaled = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) est[i] = ref[i] + 0.1f * noise[i];
    const double base = gvm_nn_si_snr(est, ref, n);
    const float scales[3] = {3.7f, 0.02f, -0.5f};
    for (int s = 0; s < 3; s++) {
        for (int64_t i = 0; i < n; i++) scaled[i] = scales[s] * est[i] + 0.3f;  // scale and offset
        const double v = gvm_nn_si_snr(scaled, ref, n);
        TEST_CHECK(fabs(v - base) < 1e-3, "si-snr ignores the estimate's scale and mean", "x%g: %.6f dB vs %.6f dB",
                   scales[s], v, base);
    }
    const double same = gvm_nn_si_snr(ref, ref, n);
    TEST_CHECK(same > 90, "si-snr of identical signals is large", "%.2f dB", same);
    TEST_CHECK(fabs(base - 20 * log10(0.5 / 0.1)) < 0.5, "si-snr of a 14 dB mixture", "%.3f dB", base);
    double prev = base;
    for (int k = 1; k <= 3; k++) {
        for (int64_t i = 0; i < n; i++) scaled[i] = est[i] + 0.2f * k * noise[(i * 7 + 13) % n];
        const double v = gvm_nn_si_snr(scaled, ref, n);
        TEST_CHECK(v < prev - 1, "si-snr falls as noise is added", "step %d: %.3f dB after %.3f dB", k, v, prev);
        prev = v;
    }
    free(est);
    free(scaled);
    gvm_tensor_free(r);
    gvm_tensor_free(z);
}

// The mel loss of a signal against itself is exactly 0, and both losses grow with the error. (The MR-STFT loss
// is not evaluated at pred == target: ||Y - X|| has no gradient at 0, in PyTorch as here.)
static void loss_properties(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    const int64_t T = 4000;
    gvm_tensor *y = test_randn(31, 2, (int64_t[]){2, T}, 0.3f, false);
    gvm_tensor *z = test_randn(32, 2, (int64_t[]){2, T}, 1.0f, false);
    gvm_nn_msmel_cfg c = gvm_nn_msmel_default_cfg(24000);
    gvm_nn_msmel_loss ml;
    gvm_nn_mrstft_loss mr;
    GVM_CHECK(gvm_nn_msmel_loss_init(&ml, &c) == GVM_OK && gvm_nn_mrstft_loss_init(&mr, NULL) == GVM_OK, "init");
    TEST_CHECK(scalar(gvm_nn_msmel_loss_forward(ctx, &ml, y, y)) == 0, "msmel loss of identical signals", "not 0");
    float prev_mel = 0, prev_mr = 0;
    for (int k = 1; k <= 3; k++) {
        gvm_tensor *p = gvm_add(ctx, y, gvm_mul_scalar(ctx, z, 0.03f * k));
        const float lm = scalar(gvm_nn_msmel_loss_forward(ctx, &ml, p, y));
        const float lr = scalar(gvm_nn_mrstft_loss_forward(ctx, &mr, p, y, NULL, NULL));
        TEST_CHECK(lm > prev_mel && lr > prev_mr, "losses grow with the error", "step %d: msmel %g after %g, mrstft %g "
                   "after %g", k, lm, prev_mel, lr, prev_mr);
        prev_mel = lm;
        prev_mr = lr;
    }
    gvm_nn_msmel_loss_free(&ml);
    gvm_nn_mrstft_loss_free(&mr);
    gvm_tensor_free(y);
    gvm_tensor_free(z);
    gvm_ctx_free(ctx);
}

static void config_errors(void) {
    float fb[4 * 33];
    TEST_CHECK(gvm_nn_mel_filterbank(16000, 64, 4, 5000, 4000, GVM_NN_MEL_NORM_NONE, GVM_NN_MEL_SCALE_HTK, fb) ==
                   GVM_ERR_INVALID && strstr(gvm_error_message(), "f_min"),
               "mel filterbank f_min > f_max", "%s", gvm_error_message());
    TEST_CHECK(gvm_nn_mel_filterbank(16000, 64, 0, 0, 0, GVM_NN_MEL_NORM_NONE, GVM_NN_MEL_SCALE_HTK, fb) ==
                   GVM_ERR_INVALID, "mel filterbank 0 mels", "%s", gvm_error_message());
    gvm_nn_msmel_cfg c = gvm_nn_msmel_default_cfg(16000);
    c.range_end = c.range_start;
    gvm_nn_msmel_loss ml;
    TEST_CHECK(gvm_nn_msmel_loss_init(&ml, &c) == GVM_ERR_INVALID && strstr(gvm_error_message(), "range"),
               "msmel empty scale range", "%s", gvm_error_message());
    c = gvm_nn_msmel_default_cfg(16000);
    c.f_min = 9000;  // above Nyquist: f_min >= f_max
    TEST_CHECK(gvm_nn_msmel_loss_init(&ml, &c) == GVM_ERR_INVALID && strstr(gvm_error_message(), "window 64"),
               "msmel f_min above Nyquist", "%s", gvm_error_message());
    gvm_nn_mrstft_cfg mc = {.n_res = 1, .res = {{256, 64, 512}}};
    gvm_nn_mrstft_loss mr;
    TEST_CHECK(gvm_nn_mrstft_loss_init(&mr, &mc) == GVM_ERR_INVALID && strstr(gvm_error_message(), "win_length"),
               "mrstft window longer than n_fft", "%s", gvm_error_message());
    gvm_nn_mel_distance_cfg dc = gvm_nn_mel_distance_default_cfg(16000);
    float sig[100] = {0};
    double d;
    TEST_CHECK(gvm_nn_mel_distance(sig, sig, 1, 100, &dc, &d) == GVM_ERR_INVALID &&
                   strstr(gvm_error_message(), "too short"), "mel distance short signal", "%s", gvm_error_message());
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    stft_golden();
    stft_tone();
    melfb_golden();
    losses_golden();
    si_snr_properties();
    loss_properties();
    config_errors();
    return test_finish();
}
