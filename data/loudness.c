// loudness.c: BS.1770-4 integrated loudness and loudness normalisation (data/loudness.h says what and why).
// Everything runs in double: the K-weighted signal, the block energies and the gating, so the result does
// not depend on the input length the way a float accumulation would (a 30 s clip is ~10^6 samples).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/loudness.h"

// BS.1770's filters as analog prototypes, as pyloudnorm's "DeMan" filter class writes them.
#define SHELF_GAIN_DB 3.99984385397
#define SHELF_Q 0.7071752369554193
#define SHELF_FC 1681.9744509555319
#define SHELF_VB_EXP 0.499666774155  // the shelf's mid-band gain Vb = Vh^0.4997 (De Man's fit)
#define HP_Q 0.5003270373253953
#define HP_FC 38.13547087613982

#define BLOCK_S 0.400        // gating block length
#define BLOCK_STEP 0.25      // 1 - 75 % overlap, as a fraction of the block
#define ABS_GATE_LUFS -70.0
#define REL_GATE_LU -10.0
#define LOUDNESS_OFFSET -0.691

void gvm_loudness_kweighting(int rate, double b[2][3], double a[2][3]) {
    const double pi = 3.14159265358979323846;
    // High shelf: bilinear transform of the analog shelf, pre-warped at fc.
    double K = tan(pi * SHELF_FC / rate);
    double Vh = pow(10.0, SHELF_GAIN_DB / 20.0);
    double Vb = pow(Vh, SHELF_VB_EXP);
    double a0 = 1.0 + K / SHELF_Q + K * K;
    b[0][0] = (Vh + Vb * K / SHELF_Q + K * K) / a0;
    b[0][1] = 2.0 * (K * K - Vh) / a0;
    b[0][2] = (Vh - Vb * K / SHELF_Q + K * K) / a0;
    a[0][0] = 1.0;
    a[0][1] = 2.0 * (K * K - 1.0) / a0;
    a[0][2] = (1.0 - K / SHELF_Q + K * K) / a0;
    // RLB high pass: numerator fixed at {1, -2, 1}, so its pass-band gain is not exactly 1 (pyloudnorm and
    // the standard's table agree on this; the -0.691 offset absorbs the 1 kHz gain of the whole chain).
    K = tan(pi * HP_FC / rate);
    a0 = 1.0 + K / HP_Q + K * K;
    b[1][0] = 1.0;
    b[1][1] = -2.0;
    b[1][2] = 1.0;
    a[1][0] = 1.0;
    a[1][1] = 2.0 * (K * K - 1.0) / a0;
    a[1][2] = (1.0 - K / HP_Q + K * K) / a0;
}

// Sum over channels of the mean square of each K-weighted channel in every gating block:
// energy[j] = sum_c z_cj (channel weights are all 1.0 for mono and stereo). Returns the block count,
// 0 when the signal is shorter than one block. energy must hold blocks_for(n, rate) values.
static int64_t blocks_for(int64_t n, int rate) {
    if ((double)n < BLOCK_S * rate) return 0;  // pyloudnorm refuses these (shorter than the block)
    double T = (double)n / rate;
    // nearbyint rounds half to even in the default rounding mode, as numpy's round does.
    return (int64_t)nearbyint((T - BLOCK_S) / (BLOCK_S * BLOCK_STEP)) + 1;
}

static void block_energies(const float *x, int64_t n, int channels, int rate, int64_t nb, double *energy,
                           double *w /* [n] scratch */) {
    double b[2][3], a[2][3];
    gvm_loudness_kweighting(rate, b, a);
    memset(energy, 0, (size_t)nb * sizeof *energy);
    const double norm = 1.0 / (BLOCK_S * rate);
    for (int c = 0; c < channels; c++) {
        for (int64_t i = 0; i < n; i++) w[i] = x[i * channels + c];
        for (int k = 0; k < 2; k++) {  // transposed direct form II from rest, as scipy's lfilter
            double s1 = 0, s2 = 0;
            for (int64_t i = 0; i < n; i++) {
                double in = w[i], out = b[k][0] * in + s1;
                s1 = b[k][1] * in - a[k][1] * out + s2;
                s2 = b[k][2] * in - a[k][2] * out;
                w[i] = out;
            }
        }
        for (int64_t j = 0; j < nb; j++) {
            // Same expression order as pyloudnorm, so the truncation lands on the same sample.
            int64_t lo = (int64_t)(BLOCK_S * ((double)j * BLOCK_STEP) * rate);
            int64_t hi = (int64_t)(BLOCK_S * ((double)j * BLOCK_STEP + 1.0) * rate);
            if (hi > n) hi = n;
            double sum = 0;
            for (int64_t i = lo; i < hi; i++) sum += w[i] * w[i];
            energy[j] += norm * sum;
        }
    }
}

static double energy_to_lufs(double e) { return LOUDNESS_OFFSET + 10.0 * log10(e); }

// The two-stage gate over block energies; -INFINITY when no block passes.
static double gated_loudness(const double *energy, int64_t nb) {
    double sum = 0;
    int64_t count = 0;
    for (int64_t j = 0; j < nb; j++)
        if (energy_to_lufs(energy[j]) >= ABS_GATE_LUFS) sum += energy[j], count++;
    if (count == 0) return -INFINITY;
    double rel_gate = energy_to_lufs(sum / (double)count) + REL_GATE_LU;
    sum = 0;
    count = 0;
    for (int64_t j = 0; j < nb; j++) {
        double l = energy_to_lufs(energy[j]);
        if (l > rel_gate && l > ABS_GATE_LUFS) sum += energy[j], count++;
    }
    return count ? energy_to_lufs(sum / (double)count) : -INFINITY;
}

static gvm_status check_args(const float *x, int64_t n, int channels, int rate, const char *fn) {
    if (channels != 1 && channels != 2)
        return gvm_error_set(GVM_ERR_INVALID, "%s: %d channels; only mono (1) and interleaved stereo (2) are supported",
                             fn, channels);
    if (rate < 1000 || rate > 1000000)
        return gvm_error_set(GVM_ERR_INVALID, "%s: sample rate %d Hz is out of range [1000, 1000000]", fn, rate);
    if (n < 0) return gvm_error_set(GVM_ERR_INVALID, "%s: negative length %lld", fn, (long long)n);
    if (n > INT64_MAX / 2 / (int64_t)sizeof(double))
        return gvm_error_set(GVM_ERR_INVALID, "%s: %lld frames is too long", fn, (long long)n);
    int64_t count = n * channels;
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(x[i]))
            return gvm_error_set(GVM_ERR_INVALID,
                                 "%s: sample %lld (frame %lld, channel %d) is %s; the audio is corrupt", fn,
                                 (long long)i, (long long)(i / channels), (int)(i % channels),
                                 isnan(x[i]) ? "NaN" : "infinite");
    return GVM_OK;
}

// Measure without checking (the caller did); n >= 0 frames.
static gvm_status measure(const float *x, int64_t n, int channels, int rate, double *lufs) {
    int64_t nb = blocks_for(n, rate);
    if (nb <= 0) {
        *lufs = -INFINITY;
        return GVM_OK;
    }
    double *energy = malloc((size_t)nb * sizeof *energy);
    double *w = malloc((size_t)n * sizeof *w);
    if (!energy || !w) {
        free(energy);
        free(w);
        return gvm_error_set(GVM_ERR_MEMORY, "loudness: cannot allocate %lld frames of scratch", (long long)n);
    }
    block_energies(x, n, channels, rate, nb, energy, w);
    *lufs = gated_loudness(energy, nb);
    free(energy);
    free(w);
    return GVM_OK;
}

gvm_status gvm_loudness_integrated(const float *x, int64_t n, int channels, int rate, double *lufs) {
    GVM_CHECK(lufs && (x || n == 0), "gvm_loudness_integrated: NULL argument");
    *lufs = -INFINITY;
    gvm_status s = check_args(x, n, channels, rate, "gvm_loudness_integrated");
    if (s != GVM_OK) return s;
    return measure(x, n, channels, rate, lufs);
}

double gvm_audio_peak(const float *x, int64_t count) {
    double p = 0;
    for (int64_t i = 0; i < count; i++) p = fmax(p, fabs((double)x[i]));
    return p;
}

double gvm_audio_rms(const float *x, int64_t count) {
    if (count <= 0) return 0;
    double s = 0;
    for (int64_t i = 0; i < count; i++) s += (double)x[i] * x[i];
    return sqrt(s / (double)count);
}

static void scale(float *x, int64_t count, double factor) {
    for (int64_t i = 0; i < count; i++) x[i] = (float)(x[i] * factor);
}

gvm_status gvm_loudness_normalize_channels(float *x, int64_t n, int channels, int rate, double target_lufs,
                                           double peak_limit_db, gvm_loudness_report *r) {
    GVM_CHECK(x || n == 0, "gvm_loudness_normalize: NULL samples");
    const char *fn = "gvm_loudness_normalize";
    gvm_loudness_report rep = {.action = GVM_LOUDNESS_UNCHANGED, .input_lufs = -INFINITY, .output_lufs = -INFINITY};
    if (r) *r = rep;
    gvm_status s = check_args(x, n, channels, rate, fn);
    if (s != GVM_OK) return s;
    if (!(target_lufs >= ABS_GATE_LUFS && target_lufs <= 0))
        return gvm_error_set(GVM_ERR_INVALID, "%s: target loudness %g LUFS is out of range [-70, 0] (-14 is usual)", fn,
                             target_lufs);
    if (isnan(peak_limit_db) || peak_limit_db == -INFINITY)
        return gvm_error_set(GVM_ERR_INVALID, "%s: peak limit %g dBFS is not a level (use INFINITY for no limit)", fn,
                             peak_limit_db);
    int64_t count = n * channels;
    if ((s = measure(x, n, channels, rate, &rep.input_lufs)) != GVM_OK) return s;
    rep.input_peak = rep.output_peak = gvm_audio_peak(x, count);
    rep.input_rms = gvm_audio_rms(x, count);
    rep.output_lufs = rep.input_lufs;
    if (rep.input_lufs == -INFINITY || rep.input_rms < GVM_LOUDNESS_ENERGY_FLOOR || rep.input_peak == 0) {
        if (r) *r = rep;
        return GVM_OK;
    }
    // The largest gain the peak allows; a measured signal has a nonzero peak.
    const double max_gain_db = peak_limit_db - 20.0 * log10(rep.input_peak);
    double gain_db = target_lufs - rep.input_lufs;
    rep.action = GVM_LOUDNESS_SCALED;
    // Loudness is scale-invariant except through the absolute gate, so one step nearly always lands on
    // the target; the later rounds only matter for inputs near -70 LUFS whose gated block set changes.
    double applied_db = 0;
    for (int round = 0; round < 4; round++) {
        if (gain_db > max_gain_db) {
            gain_db = max_gain_db;
            rep.action = GVM_LOUDNESS_PEAK_LIMITED;
        }
        scale(x, count, pow(10.0, (gain_db - applied_db) / 20.0));
        applied_db = gain_db;
        if ((s = measure(x, n, channels, rate, &rep.output_lufs)) != GVM_OK) return s;
        if (rep.action == GVM_LOUDNESS_PEAK_LIMITED || fabs(rep.output_lufs - target_lufs) <= 1e-4 ||
            !isfinite(rep.output_lufs))
            break;
        gain_db += target_lufs - rep.output_lufs;
    }
    rep.gain_db = applied_db;
    rep.output_peak = gvm_audio_peak(x, count);
    if (r) *r = rep;
    return GVM_OK;
}

gvm_status gvm_loudness_normalize(float *x, int64_t n, int rate, double target_lufs, double peak_limit_db,
                                  gvm_loudness_report *r) {
    return gvm_loudness_normalize_channels(x, n, 1, rate, target_lufs, peak_limit_db, r);
}
