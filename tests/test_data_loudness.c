// test_data_loudness.c: BS.1770 integrated loudness and loudness normalisation (data/loudness.h).
//
//  * pyloudnorm (Meter(filter_class="DeMan")) as the oracle: every case of data_loudness/cases.txt (written
//    by tests/golden/gen_data_loudness.py) is rebuilt here from its formula (sines, an LCG's noise, zeros;
//    no audio is stored) and must read the golden loudness within 0.01 LU: 1 kHz sines at 0/-6/-20/-40 dBFS,
//    noise, 60 Hz and 6 kHz tones (filter shape per rate), stereo, silence gaps and a tone the relative gate
//    drops, lengths at the block-count rounding edges, silence and sub-gate signals (-inf);
//  * the standard itself: a 0 dBFS 997 Hz sine reads -3.01 LUFS at 48 kHz; the K-weighting coefficients at
//    48 kHz equal BS.1770-4's table;
//  * properties: gain g dB raises the reading by g; identical stereo channels read 10 log10(2) above mono;
//  * normalisation: the output reads the target (0.01 LU, measured again independently) and is the input
//    times one factor; the peak limit lowers the gain and the peak sits at the limit; a quiet input whose
//    gated block set changes with the gain still reaches the target; silence and inputs under the energy
//    floor are left bit-identical; stereo;
//  * errors: bad channel count, rate, NaN, target, limit give GVM_ERR_INVALID and leave x unchanged.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/loudness.h"
#include "tests/test_util.h"

#define TOL_LU 0.01

// ---- signals from the generator's formulas -----------------------------------------------------------------
static void fill_segment(float *dst, int stride, const char *kind, double param, double amp, int64_t n, int rate) {
    const double pi = 3.14159265358979323846;
    uint32_t state = (uint32_t)param;
    for (int64_t i = 0; i < n; i++) {
        double v = 0;
        if (!strcmp(kind, "sine")) {
            v = amp * sin(2 * pi * param * (double)i / rate);
        } else if (!strcmp(kind, "noise")) {
            state = state * 1664525u + 1013904223u;
            v = amp * (((double)(state >> 8) / 16777216.0) * 2.0 - 1.0);
        }
        dst[i * stride] = (float)v;
    }
}

typedef struct golden_case {
    char name[64];
    int rate, channels;
    double lufs;
    float *x;  // [n, channels]
    int64_t n;
} golden_case;

// Reads the next case from f; false at the end of the file or on a malformed line (reported).
static bool read_case(FILE *f, golden_case *c) {
    char line[512];
    memset(c, 0, sizeof *c);
    struct seg { int ch; char kind[16]; double param, amp; int64_t n; } segs[16];
    int nseg = 0;
    bool in_case = false;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char lufs[64];
        if (!in_case) {
            if (sscanf(line, "case %63s %d %d %63s", c->name, &c->rate, &c->channels, lufs) != 4) {
                TEST_CHECK(false, "golden format", "bad line: %s", line);
                return false;
            }
            c->lufs = strtod(lufs, NULL);
            in_case = true;
        } else if (!strncmp(line, "seg ", 4)) {
            struct seg *s = &segs[nseg];
            long long n;
            if (nseg == 16 || sscanf(line, "seg %d %15s %lf %lf %lld", &s->ch, s->kind, &s->param, &s->amp, &n) != 5) {
                TEST_CHECK(false, "golden format", "bad segment in %s: %s", c->name, line);
                return false;
            }
            s->n = n;
            nseg++;
        } else if (!strncmp(line, "end", 3)) {
            for (int k = 0; k < nseg; k++)
                if (segs[k].ch == 0) c->n += segs[k].n;
            c->x = calloc((size_t)(c->n * c->channels + 1), sizeof(float));
            for (int ch = 0; ch < c->channels; ch++) {
                int64_t at = 0;
                for (int k = 0; k < nseg; k++) {
                    if (segs[k].ch != ch) continue;
                    GVM_CHECK(at + segs[k].n <= c->n, "golden case %s: channel %d is longer than channel 0", c->name,
                              ch);
                    fill_segment(c->x + at * c->channels + ch, c->channels, segs[k].kind, segs[k].param, segs[k].amp,
                                 segs[k].n, c->rate);
                    at += segs[k].n;
                }
            }
            return true;
        }
    }
    return false;
}

static bool same_lufs(double got, double want, double tol) {
    if (isinf(want) || isinf(got)) return got == want;
    return fabs(got - want) <= tol;
}

static void test_goldens(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/data_loudness/cases.txt", test_golden_dir());
    FILE *f = fopen(path, "r");
    if (!TEST_CHECK(f != NULL, "goldens", "cannot open %s (run tests/golden/generate.py --only data_loudness)", path))
        return;
    golden_case c;
    int count = 0;
    double worst = 0;
    while (read_case(f, &c)) {
        double got = NAN;
        gvm_status s = gvm_loudness_integrated(c.x, c.n, c.channels, c.rate, &got);
        if (TEST_CHECK(s == GVM_OK, c.name, "status %s: %s", gvm_status_name(s), gvm_error_message())) {
            TEST_CHECK(same_lufs(got, c.lufs, TOL_LU), c.name, "%.6f LUFS, pyloudnorm %.6f", got, c.lufs);
            if (isfinite(c.lufs) && isfinite(got)) worst = fmax(worst, fabs(got - c.lufs));
        }
        free(c.x);
        count++;
    }
    fclose(f);
    TEST_CHECK(count >= 40, "golden count", "%d cases read", count);
    printf("%d pyloudnorm cases, worst difference %.2e LU\n", count, worst);
}

// ---- the standard itself ------------------------------------------------------------------------------------
static float *sine(int64_t n, int channels, double freq, double amp, int rate) {
    float *x = malloc((size_t)(n * channels) * sizeof *x);
    for (int c = 0; c < channels; c++) fill_segment(x + c, channels, "sine", freq, amp, n, rate);
    return x;
}
static float *noise(int64_t n, uint32_t seed, double amp) {
    float *x = malloc((size_t)n * sizeof *x);
    fill_segment(x, 1, "noise", seed, amp, n, 48000);
    return x;
}

static void test_reference(void) {
    float *x = sine(48000 * 5, 1, 997, 1.0, 48000);
    double l = 0;
    gvm_loudness_integrated(x, 48000 * 5, 1, 48000, &l);
    TEST_CHECK(fabs(l - (-3.01)) <= TOL_LU, "997 Hz 0 dBFS sine", "%.4f LUFS, BS.1770 says -3.01", l);
    free(x);

    // BS.1770-4, Tables 1 and 2 (48 kHz).
    const double b0[3] = {1.53512485958697, -2.69169618940638, 1.19839281085285};
    const double a0[3] = {1.0, -1.69065929318241, 0.73248077421585};
    const double b1[3] = {1.0, -2.0, 1.0};
    const double a1[3] = {1.0, -1.99004745483398, 0.99007225036621};
    double b[2][3], a[2][3], worst = 0;
    gvm_loudness_kweighting(48000, b, a);
    for (int k = 0; k < 3; k++) {
        worst = fmax(worst, fabs(b[0][k] - b0[k]));
        worst = fmax(worst, fabs(a[0][k] - a0[k]));
        worst = fmax(worst, fabs(b[1][k] - b1[k]));
        worst = fmax(worst, fabs(a[1][k] - a1[k]));
    }
    TEST_CHECK(worst < 1e-7, "K-weighting at 48 kHz", "differs from BS.1770's table by %.2e", worst);
}

static void test_properties(void) {
    const int rate = 44100;
    const int64_t n = rate * 3;
    float *x = noise(n, 42, 0.3), *y = malloc((size_t)n * sizeof *y);
    double l0 = 0, l1 = 0;
    gvm_loudness_integrated(x, n, 1, rate, &l0);
    const double g = -17.5;
    for (int64_t i = 0; i < n; i++) y[i] = (float)(x[i] * pow(10, g / 20));
    gvm_loudness_integrated(y, n, 1, rate, &l1);
    TEST_CHECK(fabs(l1 - l0 - g) < 1e-4, "scale invariance", "%.6f -> %.6f for %g dB", l0, l1, g);

    float *st = malloc((size_t)(2 * n) * sizeof *st);
    for (int64_t i = 0; i < n; i++) st[2 * i] = st[2 * i + 1] = x[i];
    gvm_loudness_integrated(st, n, 2, rate, &l1);
    TEST_CHECK(fabs(l1 - l0 - 10 * log10(2.0)) < 1e-9, "dual mono", "stereo %.6f, mono %.6f", l1, l0);
    free(st);

    // Zero length and one sample short of a block: no loudness, not an error.
    gvm_status s = gvm_loudness_integrated(x, 0, 1, rate, &l1);
    TEST_CHECK(s == GVM_OK && l1 == -INFINITY, "empty", "status %d, %g", s, l1);
    s = gvm_loudness_integrated(x, (int64_t)(0.4 * rate) - 1, 1, rate, &l1);
    TEST_CHECK(s == GVM_OK && l1 == -INFINITY, "shorter than a block", "status %d, %g", s, l1);
    s = gvm_loudness_integrated(x, (int64_t)(0.4 * rate), 1, rate, &l1);
    TEST_CHECK(s == GVM_OK && isfinite(l1), "one block", "status %d, %g", s, l1);

    TEST_CHECK(fabs(gvm_audio_peak(x, n) - 0.3) < 1e-3, "peak", "%g", gvm_audio_peak(x, n));
    TEST_CHECK(fabs(gvm_audio_rms(x, n) - 0.3 / sqrt(3.0)) < 1e-3, "rms", "%g", gvm_audio_rms(x, n));
    TEST_CHECK(gvm_audio_peak(x, 0) == 0 && gvm_audio_rms(x, 0) == 0, "empty peak/rms", "not 0");
    free(x);
    free(y);
}

// ---- normalisation -------------------------------------------------------------------------------------------
static double measure(const float *x, int64_t n, int channels, int rate) {
    double l = NAN;
    gvm_loudness_integrated(x, n, channels, rate, &l);
    return l;
}

// x must equal x0 times one factor (10^(gain_db / 20)) to float rounding.
static void check_scaled(const char *name, const float *x0, const float *x, int64_t count, double gain_db) {
    double f = pow(10, gain_db / 20), worst = 0;
    for (int64_t i = 0; i < count; i++) worst = fmax(worst, fabs(x[i] - x0[i] * f) / (fabs(x0[i] * f) + 1e-30));
    TEST_CHECK(worst < 1e-6, name, "output is not input * %g: relative error %.2e", f, worst);
}

static void test_normalize(void) {
    const int rate = 32000;
    const int64_t n = rate * 4;
    gvm_loudness_report r;

    // Noise far from the target, no limit in the way.
    float *x0 = noise(n, 7, 0.05), *x = malloc((size_t)n * sizeof *x);
    memcpy(x, x0, (size_t)n * sizeof *x);
    gvm_status s = gvm_loudness_normalize(x, n, rate, -14, -1, &r);
    if (TEST_CHECK(s == GVM_OK, "normalize noise", "%s", gvm_error_message())) {
        double out = measure(x, n, 1, rate);
        TEST_CHECK(r.action == GVM_LOUDNESS_SCALED, "normalize noise action", "%d", r.action);
        TEST_CHECK(fabs(out + 14) <= TOL_LU && fabs(r.output_lufs - out) < 1e-9, "normalize noise level",
                   "reads %.5f (report %.5f), want -14", out, r.output_lufs);
        TEST_CHECK(fabs(r.input_lufs - measure(x0, n, 1, rate)) < 1e-12 &&
                       fabs(r.gain_db - (-14 - r.input_lufs)) < 1e-3,
                   "normalize noise gain", "in %.4f gain %.4f", r.input_lufs, r.gain_db);
        check_scaled("normalize noise scaled", x0, x, n, r.gain_db);
        TEST_CHECK(fabs(r.output_peak - gvm_audio_peak(x, n)) < 1e-12 && r.output_peak < pow(10, -1 / 20.0),
                   "normalize noise peak", "%g", r.output_peak);
    }
    // Louder than the target: the gain is negative.
    free(x0);
    x0 = noise(n, 8, 0.9);
    memcpy(x, x0, (size_t)n * sizeof *x);
    s = gvm_loudness_normalize(x, n, rate, -23, -1, &r);
    TEST_CHECK(s == GVM_OK && r.action == GVM_LOUDNESS_SCALED && r.gain_db < -10 &&
                   fabs(measure(x, n, 1, rate) + 23) <= TOL_LU,
               "normalize down", "gain %.3f, reads %.4f", r.gain_db, measure(x, n, 1, rate));

    // Quiet noise with one click: reaching -14 LUFS would put the click far above -1 dBFS.
    free(x0);
    x0 = noise(n, 9, 0.01);
    x0[n / 2] = 0.9f;
    memcpy(x, x0, (size_t)n * sizeof *x);
    s = gvm_loudness_normalize(x, n, rate, -14, -1, &r);
    if (TEST_CHECK(s == GVM_OK, "peak limit", "%s", gvm_error_message())) {
        double limit = pow(10, -1 / 20.0), out = measure(x, n, 1, rate);
        TEST_CHECK(r.action == GVM_LOUDNESS_PEAK_LIMITED, "peak limit action", "%d", r.action);
        TEST_CHECK(fabs(gvm_audio_peak(x, n) - limit) < 1e-6 && gvm_audio_peak(x, n) <= limit * (1 + 1e-7),
                   "peak at the limit", "peak %.7f, limit %.7f", gvm_audio_peak(x, n), limit);
        TEST_CHECK(fabs(r.gain_db - (-1 - 20 * log10(0.9))) < 1e-5, "peak limit gain", "%.6f dB", r.gain_db);
        TEST_CHECK(out < -14 - 1 && fabs(out - (r.input_lufs + r.gain_db)) < 1e-4, "peak limit level",
                   "reads %.4f (input %.4f + gain %.4f)", out, r.input_lufs, r.gain_db);
        check_scaled("peak limit scaled", x0, x, n, r.gain_db);
    }
    // The same with no limit reaches the target (and goes above full scale, which floats allow).
    memcpy(x, x0, (size_t)n * sizeof *x);
    s = gvm_loudness_normalize(x, n, rate, -14, INFINITY, &r);
    TEST_CHECK(s == GVM_OK && r.action == GVM_LOUDNESS_SCALED && fabs(measure(x, n, 1, rate) + 14) <= TOL_LU &&
                   r.output_peak > 1,
               "no limit", "action %d reads %.4f peak %.3f", r.action, measure(x, n, 1, rate), r.output_peak);

    // Quiet 15 Hz tones (RMS above the energy floor, ~-61 LUFS after K-weighting): the second half's blocks
    // fail the -70 gate before the gain and pass after it, so one step lands 2.3 LU short.
    free(x0);
    x0 = malloc((size_t)n * sizeof *x0);
    fill_segment(x0, 1, "sine", 15, 0.01, n / 2, rate);
    fill_segment(x0 + n / 2, 1, "sine", 15, 0.003, n / 2, rate);
    memcpy(x, x0, (size_t)n * sizeof *x);
    s = gvm_loudness_normalize(x, n, rate, -14, INFINITY, &r);
    TEST_CHECK(s == GVM_OK && fabs(measure(x, n, 1, rate) + 14) <= TOL_LU && fabs(r.gain_db - (-14 - r.input_lufs)) > 1,
               "gate-crossing input", "in %.3f gain %.3f reads %.4f", r.input_lufs, r.gain_db, measure(x, n, 1, rate));
    check_scaled("gate-crossing scaled", x0, x, n, r.gain_db);

    // Left as they are: digital silence; a 1 kHz tone at RMS 7e-4 (under the floor, though it reads -63 LUFS).
    memset(x, 0, (size_t)n * sizeof *x);
    s = gvm_loudness_normalize(x, n, rate, -14, -1, &r);
    bool zero = true;
    for (int64_t i = 0; i < n; i++) zero = zero && x[i] == 0;
    TEST_CHECK(s == GVM_OK && zero && r.action == GVM_LOUDNESS_UNCHANGED && r.gain_db == 0 && r.input_lufs == -INFINITY,
               "silence unchanged", "action %d gain %g", r.action, r.gain_db);
    fill_segment(x0, 1, "sine", 1000, 1e-3, n, rate);
    memcpy(x, x0, (size_t)n * sizeof *x);
    s = gvm_loudness_normalize(x, n, rate, -14, -1, &r);
    TEST_CHECK(s == GVM_OK && !memcmp(x, x0, (size_t)n * sizeof *x) && r.action == GVM_LOUDNESS_UNCHANGED &&
                   isfinite(r.input_lufs) && r.input_rms < GVM_LOUDNESS_ENERGY_FLOOR,
               "under the energy floor unchanged", "action %d in %.3f rms %g", r.action, r.input_lufs, r.input_rms);
    s = gvm_loudness_normalize(x, rate / 4, rate, -14, -1, &r);  // 250 ms: no loudness
    TEST_CHECK(s == GVM_OK && r.action == GVM_LOUDNESS_UNCHANGED && !memcmp(x, x0, (size_t)n * sizeof *x),
               "too short unchanged", "action %d", r.action);

    // Stereo, interleaved.
    float *st = sine(n, 2, 440, 0.02, rate), *st0 = malloc((size_t)(2 * n) * sizeof *st0);
    for (int64_t i = 0; i < n; i++) st[2 * i + 1] *= 0.5f;
    memcpy(st0, st, (size_t)(2 * n) * sizeof *st);
    s = gvm_loudness_normalize_channels(st, n, 2, rate, -16, -1, &r);
    TEST_CHECK(s == GVM_OK && r.action == GVM_LOUDNESS_SCALED && fabs(measure(st, n, 2, rate) + 16) <= TOL_LU,
               "stereo normalize", "reads %.4f", measure(st, n, 2, rate));
    check_scaled("stereo scaled", st0, st, 2 * n, r.gain_db);
    free(st);
    free(st0);
    free(x0);
    free(x);
}

static void test_errors(void) {
    const int rate = 16000;
    const int64_t n = rate;
    float *x = sine(n, 1, 1000, 0.1, rate), *x0 = malloc((size_t)n * sizeof *x0);
    memcpy(x0, x, (size_t)n * sizeof *x);
    double l = 0;
    gvm_loudness_report r;
    TEST_CHECK(gvm_loudness_integrated(x, n / 3, 3, rate, &l) == GVM_ERR_INVALID &&
                   strstr(gvm_error_message(), "channels"),
               "3 channels", "%s", gvm_error_message());
    TEST_CHECK(gvm_loudness_integrated(x, n, 1, 0, &l) == GVM_ERR_INVALID && strstr(gvm_error_message(), "rate"),
               "rate 0", "%s", gvm_error_message());
    TEST_CHECK(gvm_loudness_integrated(x, -1, 1, rate, &l) == GVM_ERR_INVALID, "negative n", "%s", gvm_error_message());
    x[100] = NAN;
    TEST_CHECK(gvm_loudness_integrated(x, n, 1, rate, &l) == GVM_ERR_INVALID && strstr(gvm_error_message(), "NaN"),
               "NaN sample", "%s", gvm_error_message());
    TEST_CHECK(gvm_loudness_normalize(x, n, rate, -14, -1, &r) == GVM_ERR_INVALID && isnan(x[100]) &&
                   !memcmp(x, x0, 100 * sizeof *x),
               "normalize NaN", "%s", gvm_error_message());
    x[100] = x0[100];
    TEST_CHECK(gvm_loudness_normalize(x, n, rate, 3, -1, &r) == GVM_ERR_INVALID &&
                   strstr(gvm_error_message(), "target"),
               "target +3", "%s", gvm_error_message());
    TEST_CHECK(gvm_loudness_normalize(x, n, rate, -14, NAN, &r) == GVM_ERR_INVALID &&
                   strstr(gvm_error_message(), "peak"),
               "limit NaN", "%s", gvm_error_message());
    TEST_CHECK(!memcmp(x, x0, (size_t)n * sizeof *x), "errors leave x", "x was modified");
    free(x);
    free(x0);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    test_goldens();
    test_reference();
    test_properties();
    test_normalize();
    test_errors();
    return test_finish();
}
