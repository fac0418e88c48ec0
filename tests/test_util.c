// test_util.c: the test harness (see test_util.h).
#include "tests/test_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef GVM_GOLDEN_DIR_DEFAULT
#define GVM_GOLDEN_DIR_DEFAULT "tests/golden/data"
#endif

static int g_passed, g_failed;
static const char *g_golden_dir = GVM_GOLDEN_DIR_DEFAULT;

void test_init(int argc, char **argv) {
    if (argc > 1) g_golden_dir = argv[1];
}

const char *test_golden_dir(void) { return g_golden_dir; }

bool test_check(bool ok, const char *name, const char *fmt, ...) {
    if (ok) {
        g_passed++;
        return true;
    }
    g_failed++;
    printf("FAIL %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return false;
}

int test_finish(void) {
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}

// ---- params -----------------------------------------------------------------------------------------------------

test_params test_params_parse(const char *spec) {
    test_params p;
    memset(&p, 0, sizeof p);
    if (!spec) return p;
    const char *s = spec;
    while (*s && p.n < 32) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        GVM_CHECK(eq, "test params: '%.*s' has no '='", (int)len, s);
        snprintf(p.keys[p.n], sizeof p.keys[0], "%.*s", (int)(eq - s), s);
        snprintf(p.values[p.n], sizeof p.values[0], "%.*s", (int)(len - (size_t)(eq - s) - 1), eq + 1);
        p.n++;
        s += len + (comma ? 1 : 0);
    }
    return p;
}

const char *test_param_s(const test_params *p, const char *key, const char *fallback) {
    for (int i = 0; p && i < p->n; i++)
        if (strcmp(p->keys[i], key) == 0) return p->values[i];
    return fallback;
}

double test_param_f(const test_params *p, const char *key, double fallback) {
    const char *v = test_param_s(p, key, NULL);
    return v ? strtod(v, NULL) : fallback;
}

int64_t test_param_i(const test_params *p, const char *key, int64_t fallback) {
    const char *v = test_param_s(p, key, NULL);
    if (!v) return fallback;
    if (strcmp(v, "True") == 0 || strcmp(v, "true") == 0) return 1;
    if (strcmp(v, "False") == 0 || strcmp(v, "false") == 0) return 0;
    return strtoll(v, NULL, 10);
}

// ---- random inputs ----------------------------------------------------------------------------------------------

gvm_tensor *test_randn(uint64_t seed, int ndim, const int64_t *shape, float scale, bool requires_grad) {
    gvm_tensor *t = gvm_tensor_new(GVM_F32, ndim, shape);
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    gvm_rng_normal(&rng, t->data, (size_t)t->numel, 0.0f, scale);
    t->requires_grad = requires_grad;
    return t;
}

gvm_tensor *test_randint(uint64_t seed, gvm_dtype dtype, int ndim, const int64_t *shape, int64_t high) {
    GVM_CHECK(dtype == GVM_I32 || dtype == GVM_I64, "test_randint: i32 or i64");
    gvm_tensor *t = gvm_tensor_new(dtype, ndim, shape);
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    for (int64_t i = 0; i < t->numel; i++) {
        int64_t v = (int64_t)gvm_rng_below(&rng, (uint64_t)high);
        if (dtype == GVM_I32)
            ((int32_t *)t->data)[i] = (int32_t)v;
        else
            ((int64_t *)t->data)[i] = v;
    }
    return t;
}

// ---- gradient check ---------------------------------------------------------------------------------------------

static gvm_tensor *run_forward(gvm_ctx *ctx, test_forward_fn fn, gvm_tensor **in, const test_params *p) {
    gvm_ctx_reset(ctx);
    gvm_rng_init(&ctx->rng, 1234);  // same dropout mask on every evaluation
    return fn(ctx, in, p);
}

static double weighted_sum(const gvm_tensor *out, const float *r) {
    const float *o = gvm_tensor_f32(out);
    double acc = 0.0;
    for (int64_t i = 0; i < out->numel; i++) acc += (double)o[i] * (double)r[i];
    return acc;
}

bool test_gradcheck(const char *name, test_forward_fn fn, gvm_tensor **in, int n_in, const test_params *p,
                    const test_gradcheck_opts *opts) {
    test_gradcheck_opts o = {1e-3, 1e-3, 1e-2, 512};
    if (opts) {
        if (opts->eps > 0) o.eps = opts->eps;
        if (opts->atol > 0) o.atol = opts->atol;
        if (opts->rtol > 0) o.rtol = opts->rtol;
        if (opts->max_elems > 0) o.max_elems = opts->max_elems;
    }
    gvm_ctx *ctx = gvm_ctx_new(1234);
    for (int i = 0; i < n_in; i++) gvm_zero_grad(in[i]);

    // Analytic gradients for upstream gradient R.
    gvm_tensor *out = run_forward(ctx, fn, in, p);
    int64_t n_out = out->numel;
    float *r = malloc((size_t)(n_out ? n_out : 1) * sizeof(float));
    gvm_rng rng;
    gvm_rng_init(&rng, 99);
    gvm_rng_normal(&rng, r, (size_t)n_out, 0.0f, 1.0f);
    bool any_grad = out->requires_grad;
    if (any_grad) gvm_backward_with_grad(ctx, out, r);

    bool ok = true;
    char label[256];
    gvm_no_grad_begin(ctx);
    for (int i = 0; i < n_in; i++) {
        gvm_tensor *x = in[i];
        if (!x || !x->requires_grad) continue;
        snprintf(label, sizeof label, "%s: grad of input %d", name, i);
        if (!test_check(x->grad != NULL, label, "no gradient reached the input")) {
            ok = false;
            continue;
        }
        float *xv = gvm_tensor_f32(x);
        const float *g = gvm_tensor_f32(x->grad);
        int64_t n = x->numel;
        int64_t count = n < o.max_elems ? n : o.max_elems;
        int bad = 0;
        double worst = 0.0;
        int64_t worst_at = -1;
        double worst_num = 0, worst_ana = 0;
        for (int64_t c = 0; c < count; c++) {
            int64_t j = n <= o.max_elems ? c : (int64_t)gvm_rng_below(&rng, (uint64_t)n);
            float saved = xv[j];
            xv[j] = saved + (float)o.eps;
            double lp = weighted_sum(run_forward(ctx, fn, in, p), r);
            xv[j] = saved - (float)o.eps;
            double lm = weighted_sum(run_forward(ctx, fn, in, p), r);
            xv[j] = saved;
            // Divide by the step actually taken (x + eps is rounded to f32).
            double step = (double)(saved + (float)o.eps) - (double)(saved - (float)o.eps);
            double num = (lp - lm) / step;
            double err = fabs(num - (double)g[j]);
            double excess = err - (o.atol + o.rtol * fabs(num));
            if (excess > 0) {
                bad++;
                if (excess > worst) {
                    worst = excess;
                    worst_at = j;
                    worst_num = num;
                    worst_ana = g[j];
                }
            }
        }
        if (!test_check(bad == 0, label, "%d of %lld elements differ; worst at %lld: numeric %.6g analytic %.6g", bad,
                        (long long)count, (long long)worst_at, worst_num, worst_ana))
            ok = false;
    }
    gvm_no_grad_end(ctx);
    free(r);
    gvm_ctx_free(ctx);
    return ok;
}

// ---- goldens ----------------------------------------------------------------------------------------------------

bool test_allclose(const char *name, const float *actual, const float *expected, int64_t n, double atol, double rtol) {
    int64_t bad = 0, worst_at = -1;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double a = actual[i], e = expected[i];
        double excess = fabs(a - e) - (atol + rtol * fabs(e));
        if (excess > 0 || isnan(a) != isnan(e)) {
            bad++;
            if (excess > worst || worst_at < 0) {
                worst = excess;
                worst_at = i;
            }
        }
    }
    if (bad == 0) return test_check(true, name, "ok");
    return test_check(false, name, "%lld of %lld values differ; worst at %lld: got %.8g expected %.8g", (long long)bad,
                      (long long)n, (long long)worst_at, actual[worst_at], expected[worst_at]);
}

static gvm_tensor *load_required(gvm_safetensors *st, const char *key) {
    gvm_tensor *t = NULL;
    GVM_CHECK(gvm_safetensors_load(st, key, &t) == GVM_OK, "%s", gvm_error_message());
    return t;
}

bool test_golden_op(const char *rel_path, test_forward_fn fn, double atol, double rtol) {
    char path[1024], label[1200];
    snprintf(path, sizeof path, "%s/%s", g_golden_dir, rel_path);
    gvm_safetensors *st = NULL;
    if (gvm_safetensors_open(path, &st) != GVM_OK)
        return test_check(false, rel_path, "cannot read golden: %s (regenerate: see tests/golden/README.md)",
                          gvm_error_message());
    // Parameters: every metadata key; input names in call order from "inputs".
    test_params p;
    memset(&p, 0, sizeof p);
    const char *names = gvm_safetensors_metadata(st, "inputs");
    GVM_CHECK(names, "%s: golden without an 'inputs' metadata entry", path);
    const char *params = gvm_safetensors_metadata(st, "params");
    if (params) p = test_params_parse(params);

    gvm_tensor *in[GVM_NODE_MAX_INPUTS + 2] = {0};
    char in_names[GVM_NODE_MAX_INPUTS + 2][64];
    int n_in = 0;
    for (const char *s = names; *s;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        GVM_CHECK(n_in < GVM_NODE_MAX_INPUTS + 2, "too many golden inputs");
        snprintf(in_names[n_in], sizeof in_names[0], "%.*s", (int)len, s);
        char key[640];
        snprintf(key, sizeof key, "in.%s", in_names[n_in]);
        if (gvm_safetensors_find(st, key)) {
            in[n_in] = load_required(st, key);
            snprintf(key, sizeof key, "grad.%s", in_names[n_in]);
            in[n_in]->requires_grad = gvm_safetensors_find(st, key) != NULL;
        }  // absent: an optional input passed as NULL
        n_in++;
        s += len + (comma ? 1 : 0);
    }

    gvm_ctx *ctx = gvm_ctx_new(1234);
    gvm_tensor *out = fn(ctx, in, &p);
    gvm_tensor *expected = load_required(st, "out");
    bool ok = true;
    snprintf(label, sizeof label, "%s: output", rel_path);
    if (!test_check(out->numel == expected->numel, label, "has %lld values, golden %lld", (long long)out->numel,
                    (long long)expected->numel)) {
        ok = false;
    } else if (out->dtype == GVM_F32 && expected->dtype == GVM_F32) {
        ok &= test_allclose(label, out->data, expected->data, out->numel, atol, rtol);
    } else {
        bool same = true;
        for (int64_t i = 0; i < out->numel && same; i++)
            same = gvm_tensor_get_index(out, i) == gvm_tensor_get_index(expected, i);
        ok &= test_check(same, label, "integer output differs");
    }
    if (ok && gvm_safetensors_find(st, "gout") && out->requires_grad) {
        gvm_tensor *gout = load_required(st, "gout");
        gvm_backward_with_grad(ctx, out, gout->data);
        for (int i = 0; i < n_in; i++) {
            if (!in[i] || !in[i]->requires_grad) continue;
            char key[640];
            snprintf(key, sizeof key, "grad.%s", in_names[i]);
            gvm_tensor *eg = load_required(st, key);
            snprintf(label, sizeof label, "%s: grad.%s", rel_path, in_names[i]);
            if (test_check(in[i]->grad != NULL, label, "no gradient reached the input"))
                ok &= test_allclose(label, in[i]->grad->data, eg->data, eg->numel, atol, rtol);
            else
                ok = false;
            gvm_tensor_free(eg);
        }
        gvm_tensor_free(gout);
    }
    gvm_tensor_free(expected);
    for (int i = 0; i < n_in; i++) gvm_tensor_free(in[i]);
    gvm_ctx_free(ctx);
    gvm_safetensors_close(st);
    return ok;
}

// ---- references and accumulation -------------------------------------------------------------------------------

bool test_close_to_ref(const char *name, const float *got, const double *ref, int64_t n, double tol) {
    float *rf = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) rf[i] = (float)ref[i];
    bool ok = test_allclose(name, got, rf, n, tol, tol);
    free(rf);
    return ok;
}

bool test_close_to_ref_scaled(const char *name, const float *got, const double *ref, int64_t n, double rel) {
    double mx = 0.0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
    int64_t bad = 0, worst_at = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= rel * (mx + 1e-30))) {  // NaN counts as bad
            bad++;
            if (!(e <= worst)) {
                worst = e;
                worst_at = i;
            }
        }
    }
    return test_check(bad == 0, name, "%lld of %lld values off; worst at %lld: got %.8g ref %.8g (max |ref| %.4g)",
                      (long long)bad, (long long)n, (long long)worst_at, n ? got[worst_at] : 0.0,
                      n ? ref[worst_at] : 0.0, mx);
}

void test_check_accumulates(const char *name, test_forward_fn fn, gvm_tensor **in, int n_in, const char *spec) {
    test_params p = test_params_parse(spec);
    for (int i = 0; i < n_in; i++) gvm_zero_grad(in[i]);
    gvm_ctx *ctx = gvm_ctx_new(1);
    float *first = NULL;
    for (int pass = 0; pass < 2; pass++) {
        gvm_tensor *out = fn(ctx, in, &p);
        float *seed = malloc((size_t)out->numel * sizeof(float) + 4);
        for (int64_t i = 0; i < out->numel; i++) seed[i] = 0.5f * (float)(i % 7) - 1.25f;
        gvm_backward_with_grad(ctx, out, seed);
        free(seed);
        if (pass == 0) {
            first = malloc((size_t)in[0]->numel * sizeof(float) + 4);
            memcpy(first, in[0]->grad->data, (size_t)in[0]->numel * sizeof(float));
            for (int64_t i = 0; i < in[0]->numel; i++) first[i] *= 2.0f;
        }
        gvm_ctx_reset(ctx);
    }
    char label[160];
    snprintf(label, sizeof label, "%s accumulates into the gradient", name);
    test_allclose(label, in[0]->grad->data, first, in[0]->numel, 0, 0);
    free(first);
    gvm_ctx_free(ctx);
}
