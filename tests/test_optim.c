// test_optim.c: the CPU optimiser kernels (core/optim.h): AdamW against torch.optim.AdamW (float64 goldens
// from tests/golden/gen_optim.py, 5 steps each) and against a double reference on the threaded path,
// grad_scale, the sum of squares and finiteness test, the EMA update, and the dynamic loss scaler's
// sequence of scales as torch.cuda.amp.GradScaler's rules give it.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/optim.h"
#include "tests/test_util.h"

// f32 state rounds to 6e-8 relative per step; the kernels compute in double, so against a float64 step from
// the same f32 state they are exact to that rounding, and 5 steps of an all-float64 run stay within ~2e-7.
#define ADAMW_RTOL 1e-6

static float *copy_f32(const float *src, int64_t n) {
    float *dst = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (n) memcpy(dst, src, (size_t)n * sizeof(float));
    return dst;
}

static float *randn_f32(uint64_t seed, int64_t n, float scale) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof(float));
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    gvm_rng_normal(&rng, x, (size_t)n, 0.0f, scale);
    return x;
}

// |got - want| <= rtol * (|want| + floor) for every element, floor = floor_frac * rms(want). floor_frac 0:
// purely relative. A small floor forgives only elements that cancelled to near zero, where the rounding of
// earlier steps' f32 state (in gvm and not in an all-float64 reference) dominates.
static bool check_rel(const char *name, const float *got, const float *want, int64_t n, double rtol,
                      double floor_frac) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)want[i] * want[i];
    double floor_abs = floor_frac * sqrt(ss / (double)(n ? n : 1));
    int64_t bad = 0, worst_at = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - (double)want[i]);
        double tol = rtol * (fabs((double)want[i]) + floor_abs);
        if (!(err <= tol)) bad++;
        double ratio = tol > 0 ? err / tol : (err > 0 ? INFINITY : 0.0);
        if (!(ratio <= worst)) {
            worst = ratio;
            worst_at = i;
        }
    }
    return test_check(bad == 0, name, "%lld of %lld values off (rtol %g); worst at %lld: got %.9g want %.9g",
                      (long long)bad, (long long)n, rtol, (long long)worst_at, n ? got[worst_at] : 0.0,
                      n ? want[worst_at] : 0.0);
}

// ---- AdamW against PyTorch --------------------------------------------------------------------------------

static gvm_tensor *load(gvm_safetensors *st, const char *key) {
    gvm_tensor *t = NULL;
    GVM_CHECK(gvm_safetensors_load(st, key, &t) == GVM_OK, "%s", gvm_error_message());
    return t;
}

static void test_adamw_golden(const char *case_name) {
    char path[1024], label[256];
    snprintf(path, sizeof path, "%s/optim/%s.safetensors", test_golden_dir(), case_name);
    gvm_safetensors *st = NULL;
    if (!test_check(gvm_safetensors_open(path, &st) == GVM_OK, case_name,
                    "cannot read golden: %s (regenerate: see tests/golden/README.md)", gvm_error_message()))
        return;
    const char *spec = gvm_safetensors_metadata(st, "params");
    GVM_CHECK(spec, "%s: no params metadata", path);
    test_params p = test_params_parse(spec);
    gvm_adamw_hparams h = {
        .lr = (float)test_param_f(&p, "lr", NAN),
        .beta1 = (float)test_param_f(&p, "beta1", NAN),
        .beta2 = (float)test_param_f(&p, "beta2", NAN),
        .eps = (float)test_param_f(&p, "eps", NAN),
        .weight_decay = (float)test_param_f(&p, "weight_decay", NAN),
        .grad_scale = (float)test_param_f(&p, "grad_scale", NAN),
    };
    int64_t steps = test_param_i(&p, "steps", 0);
    gvm_tensor *param0 = load(st, "param0"), *grad = load(st, "grad");
    // param, m, v: a float64 run with its state rounded to f32 between steps (as ours is); param_f64: all float64.
    gvm_tensor *want_p = load(st, "param"), *want_m = load(st, "m"), *want_v = load(st, "v");
    gvm_tensor *want_p64 = load(st, "param_f64");
    int64_t n = param0->numel;
    GVM_CHECK(steps >= 1 && grad->numel == steps * n && want_p->numel == steps * n, "%s: bad golden shapes", path);

    float *param = copy_f32(gvm_tensor_f32(param0), n);
    float *m = calloc((size_t)n, sizeof(float)), *v = calloc((size_t)n, sizeof(float));
    for (int64_t s = 0; s < steps; s++) {
        gvm_adamw_step(GVM_DEVICE_CPU, param, gvm_tensor_f32(grad) + s * n, m, v, n, &h, s + 1);
        snprintf(label, sizeof label, "adamw %s step %lld: param", case_name, (long long)(s + 1));
        check_rel(label, param, gvm_tensor_f32(want_p) + s * n, n, ADAMW_RTOL, 0.0);
        snprintf(label, sizeof label, "adamw %s step %lld: m", case_name, (long long)(s + 1));
        check_rel(label, m, gvm_tensor_f32(want_m) + s * n, n, ADAMW_RTOL, 0.0);
        snprintf(label, sizeof label, "adamw %s step %lld: v", case_name, (long long)(s + 1));
        check_rel(label, v, gvm_tensor_f32(want_v) + s * n, n, ADAMW_RTOL, 0.0);
        snprintf(label, sizeof label, "adamw %s step %lld: param vs all-float64 run", case_name, (long long)(s + 1));
        check_rel(label, param, gvm_tensor_f32(want_p64) + s * n, n, ADAMW_RTOL, 1e-3);
    }
    free(param);
    free(m);
    free(v);
    gvm_tensor_free(param0);
    gvm_tensor_free(grad);
    gvm_tensor_free(want_p);
    gvm_tensor_free(want_m);
    gvm_tensor_free(want_v);
    gvm_tensor_free(want_p64);
    gvm_safetensors_close(st);
}

// ---- AdamW on the threaded path, against a reference written from torch's formulas -----------------------------

// One step in double from f32 state, rounded back to f32 (as gvm holds the state), in torch's own order:
// mul_(1 - lr wd), exp_avg.lerp_(g, 1 - b1), exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2),
// addcdiv_(exp_avg, exp_avg_sq.sqrt() / sqrt(bc2) + eps, -lr / bc1).
static void adamw_reference(float *param, const float *grad, float *m, float *v, int64_t n,
                            const gvm_adamw_hparams *h, int64_t step) {
    double lr = h->lr, b1 = h->beta1, b2 = h->beta2;
    double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
    for (int64_t i = 0; i < n; i++) {
        double g = (double)grad[i] * (double)h->grad_scale;
        double p = param[i] * (1.0 - lr * h->weight_decay);
        double mi = m[i] + (g - m[i]) * (1.0 - b1);
        double vi = v[i] * b2 + g * g * (1.0 - b2);
        p += -(lr / bc1) * (mi / (sqrt(vi) / sqrt(bc2) + h->eps));
        param[i] = (float)p;
        m[i] = (float)mi;
        v[i] = (float)vi;
    }
}

static void test_adamw_threaded(void) {
    const int64_t n = 100003;  // above the threading threshold, odd
    gvm_adamw_hparams h = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-6f, .weight_decay = 0.05f,
                           .grad_scale = 0.25f};
    float *param = randn_f32(1, n, 1.0f), *m = calloc((size_t)n, 4), *v = calloc((size_t)n, 4);
    float *rp = copy_f32(param, n), *rm = calloc((size_t)n, 4), *rv = calloc((size_t)n, 4);
    for (int64_t s = 1; s <= 3; s++) {
        float *grad = randn_f32(100 + (uint64_t)s, n, 2.0f);
        if (s == 2)
            for (int64_t i = 0; i < n; i += 5) grad[i] = 0.0f;
        gvm_adamw_step(GVM_DEVICE_CPU, param, grad, m, v, n, &h, s);
        adamw_reference(rp, grad, rm, rv, n, &h, s);
        free(grad);
    }
    check_rel("adamw threaded n=100003 (3 steps): param", param, rp, n, ADAMW_RTOL, 0.0);
    check_rel("adamw threaded n=100003 (3 steps): m", m, rm, n, ADAMW_RTOL, 0.0);
    check_rel("adamw threaded n=100003 (3 steps): v", v, rv, n, ADAMW_RTOL, 0.0);
    free(param);
    free(m);
    free(v);
    free(rp);
    free(rm);
    free(rv);
}

// The same step on one thread and on all: bit-identical (each element's arithmetic is independent).
static void test_adamw_thread_count(void) {
    const int64_t n = 200001;
    gvm_adamw_hparams h = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f,
                           .grad_scale = 1.0f};
    float *grad = randn_f32(7, n, 1.0f);
    float *p[2], *m[2], *v[2];
    int max_threads = omp_get_max_threads();
    for (int k = 0; k < 2; k++) {
        p[k] = randn_f32(8, n, 1.0f);
        m[k] = randn_f32(9, n, 0.1f);
        v[k] = randn_f32(10, n, 0.1f);
        for (int64_t i = 0; i < n; i++) v[k][i] = fabsf(v[k][i]);
        omp_set_num_threads(k == 0 ? 1 : (max_threads > 1 ? max_threads : 2));
        gvm_adamw_step(GVM_DEVICE_CPU, p[k], grad, m[k], v[k], n, &h, 7);
    }
    omp_set_num_threads(max_threads);
    bool same = memcmp(p[0], p[1], (size_t)n * 4) == 0 && memcmp(m[0], m[1], (size_t)n * 4) == 0 &&
                memcmp(v[0], v[1], (size_t)n * 4) == 0;
    test_check(same, "adamw: same bits on 1 thread and many", "results differ");
    for (int k = 0; k < 2; k++) {
        free(p[k]);
        free(m[k]);
        free(v[k]);
    }
    free(grad);
}

// grad_scale: gradients k times larger with grad_scale 1/k (k a power of two: the product is exact) give
// the very same step as the plain gradients; and grad_scale 1/2 on the same gradients gives another one.
static void test_adamw_grad_scale(void) {
    const int64_t n = 999;
    gvm_adamw_hparams h = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f,
                           .grad_scale = 1.0f};
    float *grad = randn_f32(20, n, 1e-3f), *grad_big = copy_f32(grad, n);
    for (int64_t i = 0; i < n; i++) grad_big[i] *= 65536.0f;
    float *p0 = randn_f32(21, n, 1.0f);
    float *pa = copy_f32(p0, n), *pb = copy_f32(p0, n), *pc = copy_f32(p0, n);
    float *ma = calloc((size_t)n, 4), *va = calloc((size_t)n, 4), *mb = calloc((size_t)n, 4), *vb = calloc((size_t)n, 4);
    float *mc = calloc((size_t)n, 4), *vc = calloc((size_t)n, 4);
    gvm_adamw_hparams hb = h, hc = h;
    hb.grad_scale = 1.0f / 65536.0f;
    hc.grad_scale = 0.5f;
    for (int64_t s = 1; s <= 2; s++) {
        gvm_adamw_step(GVM_DEVICE_CPU, pa, grad, ma, va, n, &h, s);
        gvm_adamw_step(GVM_DEVICE_CPU, pb, grad_big, mb, vb, n, &hb, s);
        gvm_adamw_step(GVM_DEVICE_CPU, pc, grad, mc, vc, n, &hc, s);
    }
    test_check(memcmp(pa, pb, (size_t)n * 4) == 0 && memcmp(ma, mb, (size_t)n * 4) == 0 &&
                   memcmp(va, vb, (size_t)n * 4) == 0,
               "adamw grad_scale 2^-16 on gradients x 2^16", "differs from the unscaled step");
    // m is linear in the gradient: half the gradient, half the moment.
    bool half = true;
    for (int64_t i = 0; i < n; i++) half &= fabsf(mc[i] - 0.5f * ma[i]) <= 1e-6f * fabsf(ma[i]);
    test_check(half, "adamw grad_scale 0.5 halves m", "m is not half of the unscaled m");
    free(grad);
    free(grad_big);
    free(p0);
    free(pa);
    free(pb);
    free(pc);
    free(ma);
    free(va);
    free(mb);
    free(vb);
    free(mc);
    free(vc);
}

// ---- sum of squares and finiteness ---------------------------------------------------------------------------

static double sumsq_reference(const float *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

static void test_sumsq(void) {
    const int64_t sizes[] = {1, 7, 8, 9, 1000, 65535, 65536, 65537, 1000003};
    char label[128];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int64_t n = sizes[k];
        float *x = randn_f32(30 + k, n, 3.0f);
        double got = gvm_grad_sumsq(GVM_DEVICE_CPU, x, n), want = sumsq_reference(x, n);
        snprintf(label, sizeof label, "grad_sumsq n=%lld", (long long)n);
        test_check(fabs(got - want) <= 1e-12 * want, label, "got %.17g want %.17g", got, want);
        snprintf(label, sizeof label, "grads_finite n=%lld (all finite)", (long long)n);
        test_check(gvm_grads_finite(GVM_DEVICE_CPU, x, n), label, "reported a non-finite value");
        free(x);
    }
    test_check(gvm_grad_sumsq(GVM_DEVICE_CPU, NULL, 0) == 0.0, "grad_sumsq n=0", "not 0");
    test_check(gvm_grads_finite(GVM_DEVICE_CPU, NULL, 0), "grads_finite n=0", "not true");

    // Finite extremes: FLT_MAX squared is far inside double's range, so it is not mistaken for inf.
    float big[5] = {3.4028235e38f, -3.4028235e38f, 1e-45f, 0.0f, -0.0f};
    test_check(gvm_grads_finite(GVM_DEVICE_CPU, big, 5), "grads_finite at FLT_MAX", "reported non-finite");

    // The same sum on one thread and on several: bit-identical.
    const int64_t n = 1000003;
    float *x = randn_f32(40, n, 1.0f);
    int max_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    double one = gvm_grad_sumsq(GVM_DEVICE_CPU, x, n);
    omp_set_num_threads(max_threads > 1 ? max_threads : 2);
    double many = gvm_grad_sumsq(GVM_DEVICE_CPU, x, n);
    omp_set_num_threads(max_threads);
    test_check(one == many, "grad_sumsq: same bits on 1 thread and many", "%.17g vs %.17g", one, many);

    // One inf, -inf or NaN planted anywhere (first, middle, last element; small and threaded sizes).
    const float bad_values[3] = {INFINITY, -INFINITY, NAN};
    const char *bad_names[3] = {"inf", "-inf", "nan"};
    const int64_t bad_sizes[2] = {37, n};
    for (int s = 0; s < 2; s++) {
        int64_t m = bad_sizes[s];
        int64_t where[3] = {0, m / 2 + 1, m - 1};
        for (int b = 0; b < 3; b++)
            for (int w = 0; w < 3; w++) {
                float saved = x[where[w]];
                x[where[w]] = bad_values[b];
                snprintf(label, sizeof label, "grads_finite n=%lld: %s at %lld", (long long)m, bad_names[b],
                         (long long)where[w]);
                test_check(!gvm_grads_finite(GVM_DEVICE_CPU, x, m), label, "not detected");
                double ss = gvm_grad_sumsq(GVM_DEVICE_CPU, x, m);
                snprintf(label, sizeof label, "grad_sumsq n=%lld: %s at %lld", (long long)m, bad_names[b],
                         (long long)where[w]);
                test_check(b == 2 ? isnan(ss) : (isinf(ss) && ss > 0), label, "sum is %g", ss);
                x[where[w]] = saved;
            }
    }
    free(x);
}

// ---- EMA ---------------------------------------------------------------------------------------------------------

static void test_ema(void) {
    const int64_t sizes[] = {1, 1000, 100003};
    const float decays[] = {0.999f, 0.9f, 0.0f, 1.0f};
    char label[128];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (size_t d = 0; d < sizeof decays / sizeof decays[0]; d++) {
            int64_t n = sizes[k];
            float decay = decays[d];
            float *ema = randn_f32(50 + k, n, 1.0f), *want = copy_f32(ema, n);
            for (int it = 0; it < 3; it++) {
                float *param = randn_f32(60 + (uint64_t)it, n, 2.0f);
                gvm_ema_update(GVM_DEVICE_CPU, ema, param, n, decay);
                for (int64_t i = 0; i < n; i++)
                    want[i] = (float)((double)decay * want[i] + (1.0 - (double)decay) * param[i]);
                if (decay == 0.0f) {  // ema becomes param exactly
                    snprintf(label, sizeof label, "ema decay 0 copies param, n=%lld", (long long)n);
                    test_check(memcmp(ema, param, (size_t)n * 4) == 0, label, "ema != param");
                }
                free(param);
            }
            snprintf(label, sizeof label, "ema n=%lld decay=%g (3 updates)", (long long)n, (double)decay);
            check_rel(label, ema, want, n, 1e-7, 0.0);
            free(ema);
            free(want);
        }
}

// ---- the dynamic loss scaler --------------------------------------------------------------------------------------

static void test_loss_scaler(void) {
    gvm_loss_scaler s;
    gvm_loss_scaler_init(&s);
    test_check(s.scale == 65536.0f && s.growth_factor == 2.0f && s.backoff_factor == 0.5f &&
                   s.growth_interval == 2000 && s.growth_tracker == 0,
               "loss scaler defaults", "scale %g growth %g backoff %g interval %d tracker %d", (double)s.scale,
               (double)s.growth_factor, (double)s.backoff_factor, s.growth_interval, s.growth_tracker);

    // Defaults: 1999 good steps keep 2^16, the 2000th doubles it; an overflow halves it and restarts the run.
    bool ok = true;
    for (int i = 0; i < 1999; i++) ok &= gvm_loss_scaler_update(&s, true) && gvm_loss_scaler_scale(&s) == 65536.0f;
    test_check(ok, "loss scaler: 1999 finite steps keep 65536", "scale %g", (double)s.scale);
    ok = gvm_loss_scaler_update(&s, true);
    test_check(ok && s.scale == 131072.0f, "loss scaler: step 2000 grows to 131072", "scale %g", (double)s.scale);
    ok = gvm_loss_scaler_update(&s, false);
    test_check(!ok && s.scale == 65536.0f, "loss scaler: overflow skips and backs off to 65536", "applied %d scale %g",
               ok, (double)s.scale);
    ok = gvm_loss_scaler_update(&s, false);
    ok |= gvm_loss_scaler_update(&s, false);
    test_check(!ok && s.scale == 16384.0f, "loss scaler: two more overflows give 16384", "scale %g", (double)s.scale);
    ok = true;
    for (int i = 0; i < 1999; i++) ok &= gvm_loss_scaler_update(&s, true) && s.scale == 16384.0f;
    ok &= gvm_loss_scaler_update(&s, true) && s.scale == 32768.0f;
    test_check(ok, "loss scaler: 2000 finite steps after backoff grow 16384 -> 32768", "scale %g", (double)s.scale);

    // Interval 3, step by step: (finite?, applied, scale after).
    gvm_loss_scaler_init(&s);
    s.growth_interval = 3;
    const struct {
        bool finite;
        float scale;
    } seq[] = {{true, 65536},  {true, 65536},  {true, 131072}, {true, 131072}, {false, 65536}, {true, 65536},
               {true, 65536},  {false, 32768}, {true, 32768},  {true, 32768},  {true, 65536},  {false, 32768},
               {false, 16384}, {true, 16384},  {true, 16384},  {true, 32768}};
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        bool applied = gvm_loss_scaler_update(&s, seq[i].finite);
        char label[96];
        snprintf(label, sizeof label, "loss scaler interval 3, update %zu (%s)", i + 1,
                 seq[i].finite ? "finite" : "overflow");
        test_check(applied == seq[i].finite && gvm_loss_scaler_scale(&s) == seq[i].scale, label,
                   "applied %d scale %g, want %d %g", applied, (double)s.scale, seq[i].finite, (double)seq[i].scale);
    }

    // Growth that would overflow f32 keeps the scale (and restarts the run), as PyTorch does.
    gvm_loss_scaler_init(&s);
    s.growth_interval = 1;
    s.scale = ldexpf(1.0f, 127);
    ok = gvm_loss_scaler_update(&s, true);
    test_check(ok && s.scale == ldexpf(1.0f, 127) && s.growth_tracker == 0, "loss scaler: growth to inf refused",
               "scale %g tracker %d", (double)s.scale, s.growth_tracker);
    ok = gvm_loss_scaler_update(&s, false);
    test_check(!ok && s.scale == ldexpf(1.0f, 126), "loss scaler: backoff from 2^127", "scale %g", (double)s.scale);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    test_adamw_golden("adamw_basic");
    test_adamw_golden("adamw_grad_scale");
    test_adamw_golden("adamw_large");
    test_adamw_golden("adamw_small");
    test_adamw_threaded();
    test_adamw_thread_count();
    test_adamw_grad_scale();
    gvm_adamw_step(GVM_DEVICE_CPU, NULL, NULL, NULL, NULL, 0,
                   &(gvm_adamw_hparams){.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .grad_scale = 1.0f}, 1);
    gvm_ema_update(GVM_DEVICE_CPU, NULL, NULL, 0, 0.5f);  // n = 0: nothing to touch, no crash
    test_sumsq();
    test_ema();
    test_loss_scaler();
    return test_finish();
}
