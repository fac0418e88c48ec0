// test_lstm.c: one LSTM layer: gradient checks (with and without biases, one bias only, T = 1, B = 1,
// H = 1, inputs that take no gradient), goldens against torch.nn.LSTM, gradient accumulation, wide cases
// (large enough for the threaded recurrence; hidden sizes that leave partial 16- and 32-unit blocks;
// batches that leave partial row blocks) against a naive double-precision reference of the forward pass
// and backpropagation through time on 1, 2 and 3 threads, and bit-identical results across thread counts.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"

static gvm_tensor *fwd_lstm(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_lstm(ctx, in[0], in[1], in[2], in[3], in[4]);
}

// x [B, T, I], w_ih [4H, I], w_hh [4H, H], b_ih [4H], b_hh [4H]; grad_mask bit i: input i takes a gradient.
static void make_inputs(int64_t B, int64_t T, int64_t I, int64_t H, bool b_ih, bool b_hh, unsigned grad_mask,
                        uint64_t seed, gvm_tensor **in) {
    float s = 1.0f / sqrtf((float)H);
    in[0] = test_randn(seed, 3, (int64_t[]){B, T, I}, 1.0f, grad_mask & 1);
    in[1] = test_randn(seed + 1, 2, (int64_t[]){4 * H, I}, s, grad_mask & 2);
    in[2] = test_randn(seed + 2, 2, (int64_t[]){4 * H, H}, s, grad_mask & 4);
    in[3] = b_ih ? test_randn(seed + 3, 1, (int64_t[]){4 * H}, s, grad_mask & 8) : NULL;
    in[4] = b_hh ? test_randn(seed + 4, 1, (int64_t[]){4 * H}, s, grad_mask & 16) : NULL;
}

static void free_inputs(gvm_tensor **in) {
    for (int i = 0; i < 5; i++) gvm_tensor_free(in[i]);
}

static void gradcheck_case(const char *name, int64_t B, int64_t T, int64_t I, int64_t H, bool b_ih, bool b_hh,
                           unsigned grad_mask) {
    gvm_tensor *in[5];
    make_inputs(B, T, I, H, b_ih, b_hh, grad_mask, 40, in);
    char label[160];
    snprintf(label, sizeof label, "gradcheck %s (grad mask %u)", name, grad_mask);
    test_gradcheck(label, fwd_lstm, in, 5, NULL, NULL);
    free_inputs(in);
}

// ---- naive reference (double, one element at a time, no GEMMs) -----------------------------------------------

typedef struct {
    double *h, *dx, *dw_ih, *dw_hh, *db;  // h [B, T, H]; gradients for upstream dh
} lstm_ref;

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

static lstm_ref reference(int64_t B, int64_t T, int64_t I, int64_t H, const float *x, const float *w_ih,
                          const float *w_hh, const float *b_ih, const float *b_hh, const float *dh) {
    int64_t G4 = 4 * H;
    lstm_ref r = {calloc((size_t)(B * T * H), sizeof(double)), calloc((size_t)(B * T * I), sizeof(double)),
                  calloc((size_t)(G4 * I), sizeof(double)), calloc((size_t)(G4 * H), sizeof(double)),
                  calloc((size_t)G4, sizeof(double))};
    double *act = calloc((size_t)(B * T * G4), sizeof(double));  // i, f, g, o after activation
    double *c = calloc((size_t)(B * T * H), sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            const float *xt = x + (b * T + t) * I;
            const double *hp = t ? r.h + (b * T + t - 1) * H : NULL;
            double *a = act + (b * T + t) * G4;
            for (int64_t q = 0; q < G4; q++) {
                double v = (b_ih ? b_ih[q] : 0.0) + (b_hh ? b_hh[q] : 0.0);
                for (int64_t i = 0; i < I; i++) v += (double)w_ih[q * I + i] * xt[i];
                for (int64_t k = 0; hp && k < H; k++) v += (double)w_hh[q * H + k] * hp[k];
                a[q] = (q / H == 2) ? tanh(v) : sigm(v);
            }
            for (int64_t j = 0; j < H; j++) {
                double cp = t ? c[(b * T + t - 1) * H + j] : 0.0;
                double cv = a[H + j] * cp + a[j] * a[2 * H + j];
                c[(b * T + t) * H + j] = cv;
                r.h[(b * T + t) * H + j] = a[3 * H + j] * tanh(cv);
            }
        }
    double *dhn = calloc((size_t)H, sizeof(double)), *dcn = calloc((size_t)H, sizeof(double));
    double *da = calloc((size_t)G4, sizeof(double));
    for (int64_t b = 0; b < B; b++) {
        memset(dhn, 0, (size_t)H * sizeof(double));
        memset(dcn, 0, (size_t)H * sizeof(double));
        for (int64_t t = T - 1; t >= 0; t--) {
            const double *a = act + (b * T + t) * G4;
            for (int64_t j = 0; j < H; j++) {
                double tc = tanh(c[(b * T + t) * H + j]);
                double dhv = dh[(b * T + t) * H + j] + dhn[j];
                double dcv = dcn[j] + dhv * a[3 * H + j] * (1 - tc * tc);
                double cp = t ? c[(b * T + t - 1) * H + j] : 0.0;
                double i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
                da[j] = dcv * g * i * (1 - i);
                da[H + j] = dcv * cp * f * (1 - f);
                da[2 * H + j] = dcv * i * (1 - g * g);
                da[3 * H + j] = dhv * tc * o * (1 - o);
                dcn[j] = dcv * f;
            }
            const float *xt = x + (b * T + t) * I;
            const double *hp = t ? r.h + (b * T + t - 1) * H : NULL;
            memset(dhn, 0, (size_t)H * sizeof(double));
            for (int64_t q = 0; q < G4; q++) {
                r.db[q] += da[q];
                for (int64_t i = 0; i < I; i++) {
                    r.dw_ih[q * I + i] += da[q] * xt[i];
                    r.dx[(b * T + t) * I + i] += da[q] * w_ih[q * I + i];
                }
                for (int64_t k = 0; hp && k < H; k++) {
                    r.dw_hh[q * H + k] += da[q] * hp[k];
                    dhn[k] += da[q] * w_hh[q * H + k];
                }
            }
        }
    }
    free(act);
    free(c);
    free(dhn);
    free(dcn);
    free(da);
    return r;
}

static void reference_case(const char *name, int64_t B, int64_t T, int64_t I, int64_t H) {
    gvm_tensor *in[5];
    make_inputs(B, T, I, H, true, true, 31, 70, in);
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *y = fwd_lstm(ctx, in, NULL);
    float *dh = malloc((size_t)y->numel * sizeof(float));
    gvm_rng rng;
    gvm_rng_init(&rng, 8);
    gvm_rng_normal(&rng, dh, (size_t)y->numel, 0.0f, 1.0f);
    gvm_backward_with_grad(ctx, y, dh);
    lstm_ref r = reference(B, T, I, H, in[0]->data, in[1]->data, in[2]->data, in[3]->data, in[4]->data, dh);
    char label[200];
    int thr = omp_get_max_threads();
    // 1e-5 of the largest value: f32 through a few steps and sums of up to B*T terms.
    const struct {
        const char *what;
        const float *got;
        const double *ref;
        int64_t n;
    } checks[] = {{"h", y->data, r.h, y->numel},
                  {"dx", in[0]->grad->data, r.dx, in[0]->numel},
                  {"dw_ih", in[1]->grad->data, r.dw_ih, in[1]->numel},
                  {"dw_hh", in[2]->grad->data, r.dw_hh, in[2]->numel},
                  {"db_ih", in[3]->grad->data, r.db, in[3]->numel},
                  {"db_hh", in[4]->grad->data, r.db, in[4]->numel}};
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        snprintf(label, sizeof label, "reference %s (%d threads): %s", name, thr, checks[i].what);
        test_close_to_ref_scaled(label, checks[i].got, checks[i].ref, checks[i].n, 1e-5);
    }
    free(r.h);
    free(r.dx);
    free(r.dw_ih);
    free(r.dw_hh);
    free(r.db);
    free(dh);
    gvm_ctx_free(ctx);
    free_inputs(in);
}

// The recurrence splits hidden units across threads, but each value is computed the same way whichever
// thread owns it: h and the bias gradients (sums of the gate gradients) must be bit-identical on 1, 2 and
// 3 threads. I = 1 keeps the input projection exact (one product per element): OpenBLAS's own GEMMs need
// not round the same way on different thread counts, so dx, dw_ih and dw_hh are left to the reference cases.
static void threads_case(const char *name, int64_t B, int64_t T, int64_t H) {
    gvm_tensor *in[5];
    make_inputs(B, T, 1, H, true, true, 31, 110, in);
    int threads0 = omp_get_max_threads();
    enum { N_OUT = 3 };
    float *first[N_OUT] = {0};
    for (int nth = 1; nth <= 3; nth++) {
        omp_set_num_threads(nth);
        for (int i = 0; i < 5; i++) gvm_zero_grad(in[i]);
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *y = fwd_lstm(ctx, in, NULL);
        gvm_backward(ctx, y);
        const float *got[N_OUT] = {y->data, in[3]->grad->data, in[4]->grad->data};
        int64_t n[N_OUT] = {y->numel, in[3]->numel, in[4]->numel};
        for (int k = 0; k < N_OUT; k++) {
            if (nth == 1) {
                first[k] = malloc((size_t)n[k] * sizeof(float));
                memcpy(first[k], got[k], (size_t)n[k] * sizeof(float));
                continue;
            }
            char label[160];
            snprintf(label, sizeof label, "threads %s: %s on %d threads = on 1", name,
                     (const char *[]){"h", "db_ih", "db_hh"}[k], nth);
            test_check(memcmp(first[k], got[k], (size_t)n[k] * sizeof(float)) == 0, label, "results differ");
        }
        gvm_ctx_free(ctx);
    }
    for (int k = 0; k < N_OUT; k++) free(first[k]);
    omp_set_num_threads(threads0);
    free_inputs(in);
}

// Backward must add to gradients already there: two backward passes give twice one.
static void accumulate_case(void) {
    gvm_tensor *in[5];
    make_inputs(2, 4, 3, 5, true, true, 31, 90, in);
    gvm_ctx *ctx = gvm_ctx_new(1);
    float *once[5] = {0};
    for (int pass = 0; pass < 2; pass++) {
        gvm_backward(ctx, fwd_lstm(ctx, in, NULL));
        if (pass == 0)
            for (int i = 0; i < 5; i++) {
                once[i] = malloc((size_t)in[i]->numel * sizeof(float));
                memcpy(once[i], in[i]->grad->data, (size_t)in[i]->numel * sizeof(float));
            }
        gvm_ctx_reset(ctx);
    }
    for (int i = 0; i < 5; i++) {
        float *twice = malloc((size_t)in[i]->numel * sizeof(float));
        for (int64_t j = 0; j < in[i]->numel; j++) twice[j] = 2.0f * once[i][j];
        char name[64];
        snprintf(name, sizeof name, "lstm accumulate: input %d", i);
        test_allclose(name, in[i]->grad->data, twice, in[i]->numel, 1e-6, 1e-6);
        free(twice);
        free(once[i]);
    }
    gvm_ctx_free(ctx);
    free_inputs(in);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    gradcheck_case("B2 T5 I3 H4", 2, 5, 3, 4, true, true, 31);
    gradcheck_case("no bias", 2, 5, 3, 4, false, false, 31);
    gradcheck_case("b_ih only", 2, 4, 3, 4, true, false, 31);
    gradcheck_case("b_hh only", 2, 4, 3, 4, false, true, 31);
    gradcheck_case("T=1", 2, 1, 3, 4, true, true, 31);
    gradcheck_case("B=1 H=1", 1, 6, 2, 1, true, true, 31);
    gradcheck_case("I=1 long", 3, 12, 1, 3, true, true, 31);
    for (unsigned m = 1; m <= 16; m <<= 1) gradcheck_case("one input", 2, 4, 3, 4, true, true, m);

    accumulate_case();

    // B * 4H * H >= 2^18 runs the recurrence on several threads (each owning 16-unit blocks forward,
    // 32-unit blocks backward; H = 300, 232 and 40 leave partial blocks). Batches of 5, 6, 9 and 16 leave
    // partial register blocks of rows (4 rows with AVX-512, 3 with AVX2, 2 otherwise).
    int threads0 = omp_get_max_threads();
    for (int nth = 1; nth <= 3; nth++) {
        omp_set_num_threads(nth);
        reference_case("B8 T3 I16 H512", 8, 3, 16, 512);
        reference_case("B3 T7 I5 H6", 3, 7, 5, 6);
        reference_case("B16 T3 I8 H300", 16, 3, 8, 300);
        reference_case("B9 T6 I5 H7", 9, 6, 5, 7);
        reference_case("B6 T9 I7 H40", 6, 9, 7, 40);
        reference_case("B5 T4 I3 H232", 5, 4, 3, 232);
    }
    omp_set_num_threads(threads0);
    threads_case("B4 T20 H256", 4, 20, 256);
    threads_case("B5 T10 H232", 5, 10, 232);

    const char *goldens[] = {"lstm_bias", "lstm_nobias", "lstm_t1", "lstm_t1_nobias", "lstm_b_ih_only", "lstm_larger"};
    char path[128];
    for (size_t i = 0; i < sizeof goldens / sizeof goldens[0]; i++) {
        snprintf(path, sizeof path, "lstm/%s.safetensors", goldens[i]);
        test_golden_op(path, fwd_lstm, 1e-5, 1e-5);
    }
    return test_finish();
}
