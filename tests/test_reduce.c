// test_reduce.c: sum, mean, max and masked mean pooling: gradient checks over axes (negative, keepdim,
// GVM_AXIS_ALL), odd and size-1 shapes; PyTorch goldens; output shapes; the first-index rule of max with
// ties (also NaN and the chunked long-row path); all-masked pooling rows; large inputs (the parallel and
// chunked paths) against a double-precision reference.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"

static gvm_tensor *fwd_sum(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_sum(ctx, in[0], (int)test_param_i(p, "axis", 0), test_param_i(p, "keepdim", 0));
}
static gvm_tensor *fwd_mean(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_mean(ctx, in[0], (int)test_param_i(p, "axis", 0), test_param_i(p, "keepdim", 0));
}
static gvm_tensor *fwd_max(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_max(ctx, in[0], (int)test_param_i(p, "axis", 0), test_param_i(p, "keepdim", 0));
}
static gvm_tensor *fwd_pool(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_mean_pool(ctx, in[0], (int)test_param_i(p, "axis", 0), in[1]);
}

// Heap f32 tensor holding a shuffle of well-separated values (steps of 0.05 >> the gradcheck's 1e-3), so the
// argmax of max cannot flip under finite differences.
static gvm_tensor *distinct_values(uint64_t seed, int ndim, const int64_t *shape) {
    gvm_tensor *t = gvm_tensor_new(GVM_F32, ndim, shape);
    float *v = t->data;
    for (int64_t i = 0; i < t->numel; i++) v[i] = 0.05f * (float)(i - t->numel / 2);
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    for (int64_t i = t->numel - 1; i > 0; i--) {
        int64_t j = (int64_t)gvm_rng_below(&rng, (uint64_t)(i + 1));
        float tmp = v[i];
        v[i] = v[j];
        v[j] = tmp;
    }
    t->requires_grad = true;
    return t;
}

typedef struct {
    int ndim;
    int64_t shape[4];
    int axis, keepdim;
} reduce_case;

static const reduce_case k_cases[] = {
    {3, {3, 5, 7}, 0, 0},  {3, {3, 5, 7}, 1, 0},    {3, {3, 5, 7}, 2, 1},    {3, {3, 5, 7}, -1, 0},
    {3, {3, 5, 7}, -3, 1}, {3, {4, 1, 6}, 1, 0},    {2, {1, 9}, 0, 1},       {1, {13}, 0, 0},
    {4, {2, 3, 1, 5}, -2, 1}, {3, {3, 5, 7}, GVM_AXIS_ALL, 0}, {3, {2, 1, 3}, GVM_AXIS_ALL, 1},
    {2, {3, 300}, 0, 0},   {2, {2, 260}, 1, 0},    {0, {0}, GVM_AXIS_ALL, 0}, {0, {0}, 0, 0},
};

static void gradcheck_reductions(void) {
    char name[128], spec[64];
    for (size_t c = 0; c < sizeof k_cases / sizeof k_cases[0]; c++) {
        const reduce_case *k = &k_cases[c];
        snprintf(spec, sizeof spec, "axis=%d,keepdim=%d", k->axis, k->keepdim);
        test_params p = test_params_parse(spec);
        gvm_tensor *x = test_randn(10 + c, k->ndim, k->shape, 1.0f, true);
        snprintf(name, sizeof name, "gradcheck sum case %zu (%s)", c, spec);
        test_gradcheck(name, fwd_sum, &x, 1, &p, NULL);
        snprintf(name, sizeof name, "gradcheck mean case %zu (%s)", c, spec);
        test_gradcheck(name, fwd_mean, &x, 1, &p, NULL);
        gvm_tensor_free(x);
        x = distinct_values(20 + c, k->ndim, k->shape);
        snprintf(name, sizeof name, "gradcheck max case %zu (%s)", c, spec);
        test_gradcheck(name, fwd_max, &x, 1, &p, NULL);
        gvm_tensor_free(x);
    }
}

// Mask tensor (bool) with values from a pattern string of '0'/'1'.
static gvm_tensor *mask_from(gvm_dtype dtype, int ndim, const int64_t *shape, const char *bits) {
    gvm_tensor *m = gvm_tensor_new(dtype, ndim, shape);
    GVM_CHECK((int64_t)strlen(bits) == m->numel, "mask pattern length");
    for (int64_t i = 0; i < m->numel; i++) ((uint8_t *)m->data)[i] = bits[i] == '1';
    return m;
}

static void gradcheck_pool(void) {
    // x [B=3, T=4, D=5], axis 1, batch row 1 fully masked.
    gvm_tensor *in[2] = {test_randn(30, 3, (int64_t[]){3, 4, 5}, 1.0f, true),
                         mask_from(GVM_BOOL, 2, (int64_t[]){3, 4}, "101100001111")};
    test_params p = test_params_parse("axis=1");
    test_gradcheck("gradcheck mean_pool [3,4,5] axis 1", fwd_pool, in, 2, &p, NULL);
    gvm_tensor_free(in[1]);
    in[1] = NULL;
    test_gradcheck("gradcheck mean_pool no mask", fwd_pool, in, 2, &p, NULL);
    gvm_tensor_free(in[0]);
    // x [5, 3] axis 0 with a u8 mask [5]; x [2, 3, 4] axis -1 (mask [2, 3, 4]).
    in[0] = test_randn(31, 2, (int64_t[]){5, 3}, 1.0f, true);
    in[1] = mask_from(GVM_U8, 1, (int64_t[]){5}, "01101");
    p = test_params_parse("axis=0");
    test_gradcheck("gradcheck mean_pool axis 0 u8", fwd_pool, in, 2, &p, NULL);
    gvm_tensor_free(in[0]);
    gvm_tensor_free(in[1]);
    in[0] = test_randn(32, 3, (int64_t[]){2, 3, 4}, 1.0f, true);
    in[1] = mask_from(GVM_BOOL, 3, (int64_t[]){2, 3, 4}, "100100000000111101011000");
    p = test_params_parse("axis=-1");
    test_gradcheck("gradcheck mean_pool last axis", fwd_pool, in, 2, &p, NULL);
    gvm_tensor_free(in[0]);
    gvm_tensor_free(in[1]);
}

static void check_shapes(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *x = gvm_tensor_zeros(ctx, GVM_F32, 3, (int64_t[]){2, 3, 4});
    gvm_tensor *a = gvm_sum(ctx, x, -2, false), *b = gvm_mean(ctx, x, 1, true), *c = gvm_max(ctx, x, GVM_AXIS_ALL, 0);
    gvm_tensor *d = gvm_sum(ctx, x, GVM_AXIS_ALL, true);
    TEST_CHECK(a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 4, "sum axis -2 shape", "got rank %d", a->ndim);
    TEST_CHECK(b->ndim == 3 && b->shape[0] == 2 && b->shape[1] == 1 && b->shape[2] == 4, "mean keepdim shape",
               "got rank %d", b->ndim);
    TEST_CHECK(c->ndim == 0 && c->numel == 1, "max all is 0-d", "rank %d numel %lld", c->ndim, (long long)c->numel);
    TEST_CHECK(d->ndim == 3 && d->numel == 1 && d->shape[0] == 1 && d->shape[2] == 1, "sum all keepdim is [1,1,1]",
               "rank %d", d->ndim);
    // Summing an empty axis gives zeros.
    gvm_tensor *e = gvm_tensor_zeros(ctx, GVM_F32, 2, (int64_t[]){3, 0});
    gvm_tensor *es = gvm_sum(ctx, e, 1, false);
    float *ev = es->data;
    TEST_CHECK(es->numel == 3 && ev[0] == 0 && ev[1] == 0 && ev[2] == 0, "sum over an empty axis is 0", "numel %lld",
               (long long)es->numel);
    gvm_ctx_free(ctx);
}

// max routes the whole gradient to the FIRST maximal element, in every loop shape of the kernel.
static void check_max_ties(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    // Rows (inner == 1): [[1, 3, 3, 2], [5, 5, 5, 5]] over axis 1.
    gvm_tensor *x = test_randn(1, 2, (int64_t[]){2, 4}, 1.0f, true);
    memcpy(x->data, (float[]){1, 3, 3, 2, 5, 5, 5, 5}, 8 * sizeof(float));
    gvm_backward(ctx, gvm_max(ctx, x, 1, false));
    float *g = x->grad->data;
    float want_rows[8] = {0, 1, 0, 0, 1, 0, 0, 0};
    test_allclose("max ties axis 1 grad", g, want_rows, 8, 0, 0);
    // Blocks (inner > 1): the same tensor over axis 0: column ties [1,5], [3,5], [3,5], [2,5] -> no ties; use
    // [[4, 3], [4, 7], [1, 7]] over axis 0.
    gvm_tensor *y = test_randn(2, 2, (int64_t[]){3, 2}, 1.0f, true);
    memcpy(y->data, (float[]){4, 3, 4, 7, 1, 7}, 6 * sizeof(float));
    gvm_backward(ctx, gvm_max(ctx, y, 0, true));
    float want_cols[6] = {1, 0, 0, 1, 0, 0};
    test_allclose("max ties axis 0 grad", y->grad->data, want_cols, 6, 0, 0);
    // GVM_AXIS_ALL: [2, 7, 7, 1] -> index 1.
    gvm_tensor *z = test_randn(3, 1, (int64_t[]){4}, 1.0f, true);
    memcpy(z->data, (float[]){2, 7, 7, 1}, 4 * sizeof(float));
    gvm_backward(ctx, gvm_max(ctx, z, GVM_AXIS_ALL, false));
    float want_all[4] = {0, 1, 0, 0};
    test_allclose("max ties all grad", z->grad->data, want_all, 4, 0, 0);
    // Long row (chunked parallel path): equal maxima at 70001 and 90000 and at a chunk start; the first wins.
    int64_t n = 100000;
    gvm_tensor *w = test_randn(4, 1, &n, 1.0f, true);
    float *wv = w->data;
    wv[70001] = wv[90000] = 50.0f;
    wv[n / 2] = 50.0f;  // 50000: first of the three; near a chunk boundary
    gvm_tensor *m = gvm_max(ctx, w, GVM_AXIS_ALL, false);
    gvm_backward(ctx, m);
    float *wg = w->grad->data;
    TEST_CHECK(*(float *)m->data == 50.0f && wg[n / 2] == 1.0f && wg[70001] == 0 && wg[90000] == 0,
               "max long row first index", "max %g grads %g %g %g", *(float *)m->data, wg[n / 2], wg[70001],
               wg[90000]);
    // NaN propagates and the first NaN takes the gradient.
    gvm_tensor *q = test_randn(5, 1, (int64_t[]){5}, 1.0f, true);
    memcpy(q->data, (float[]){1, NAN, 9, NAN, 2}, 5 * sizeof(float));
    gvm_tensor *qm = gvm_max(ctx, q, 0, false);
    gvm_backward(ctx, qm);
    float *qg = q->grad->data;
    TEST_CHECK(isnan(*(float *)qm->data) && qg[1] == 1.0f && qg[2] == 0 && qg[3] == 0, "max NaN propagates",
               "max %g grad %g %g %g", *(float *)qm->data, qg[1], qg[2], qg[3]);
    gvm_tensor_free(x);
    gvm_tensor_free(y);
    gvm_tensor_free(z);
    gvm_tensor_free(w);
    gvm_tensor_free(q);
    gvm_ctx_free(ctx);
}

// Large inputs take the parallel and chunked paths; compare with a plain double-precision loop.
static void check_large(int64_t outer, int64_t n, int64_t inner) {
    int64_t shape[3] = {outer, n, inner};
    gvm_tensor *x = test_randn(outer * 7 + n, 3, shape, 1.0f, true);
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *s = gvm_sum(ctx, x, 1, false), *mx = gvm_max(ctx, x, 1, false);
    gvm_tensor *mp = gvm_mean_pool(ctx, x, 1, NULL);
    const float *xv = x->data;
    float *ref_s = malloc((size_t)(outer * inner) * sizeof(float)), *ref_m = malloc((size_t)(outer * inner) * 4);
    float *ref_p = malloc((size_t)(outer * inner) * sizeof(float));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double acc = 0;
            float best = -INFINITY;
            for (int64_t k = 0; k < n; k++) {
                float v = xv[(o * n + k) * inner + i];
                acc += v;
                if (v > best) best = v;
            }
            ref_s[o * inner + i] = (float)acc;
            ref_p[o * inner + i] = (float)(acc / (double)n);
            ref_m[o * inner + i] = best;
        }
    char name[128];
    snprintf(name, sizeof name, "large sum [%lld,%lld,%lld]", (long long)outer, (long long)n, (long long)inner);
    test_allclose(name, s->data, ref_s, outer * inner, 1e-5, 1e-6);
    snprintf(name, sizeof name, "large max [%lld,%lld,%lld]", (long long)outer, (long long)n, (long long)inner);
    test_allclose(name, mx->data, ref_m, outer * inner, 0, 0);
    snprintf(name, sizeof name, "large mean_pool [%lld,%lld,%lld]", (long long)outer, (long long)n, (long long)inner);
    test_allclose(name, mp->data, ref_p, outer * inner, 1e-6, 1e-6);
    // Backward of sum + mean_pool: every element of x gets 1 + 1/n.
    gvm_backward(ctx, s);   // seed: ones
    gvm_backward(ctx, gvm_mean_pool(ctx, x, 1, NULL));
    const float *g = x->grad->data;
    float want = 1.0f + (float)(1.0 / (double)n);
    int64_t bad = 0;
    for (int64_t i = 0; i < x->numel; i++) bad += fabsf(g[i] - want) > 1e-6f;
    snprintf(name, sizeof name, "large sum/mean_pool grad [%lld,%lld,%lld]", (long long)outer, (long long)n,
             (long long)inner);
    TEST_CHECK(bad == 0, name, "%lld elements differ from %g", (long long)bad, want);
    free(ref_s);
    free(ref_m);
    free(ref_p);
    gvm_tensor_free(x);
    gvm_ctx_free(ctx);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    gradcheck_reductions();
    gradcheck_pool();
    check_shapes();
    check_max_ties();
    {
        gvm_tensor *in[2] = {test_randn(7, 3, (int64_t[]){3, 4, 5}, 1.0f, true),
                             mask_from(GVM_BOOL, 2, (int64_t[]){3, 4}, "101100001111")};
        test_check_accumulates("sum", fwd_sum, in, 1, "axis=1,keepdim=0");
        test_check_accumulates("mean", fwd_mean, in, 1, "axis=1000,keepdim=0");
        test_check_accumulates("max", fwd_max, in, 1, "axis=-1,keepdim=1");
        test_check_accumulates("mean_pool", fwd_pool, in, 2, "axis=1");
        gvm_tensor_free(in[0]);
        gvm_tensor_free(in[1]);
    }
    check_large(1, 200003, 1);   // one long row: chunked partial sums
    check_large(3, 50001, 1);    // a few long rows
    check_large(64, 1000, 1);    // many rows
    check_large(2, 300, 700);    // inner blocks, with a partial last block
    check_large(1, 5000, 129);   // outer 1, two blocks

    char path[128];
    for (int i = 0; i < 14; i++) {
        snprintf(path, sizeof path, "reduce/sum_%d.safetensors", i);
        test_golden_op(path, fwd_sum, 1e-5, 1e-5);
        snprintf(path, sizeof path, "reduce/mean_%d.safetensors", i);
        test_golden_op(path, fwd_mean, 1e-5, 1e-5);
        snprintf(path, sizeof path, "reduce/max_%d.safetensors", i);
        test_golden_op(path, fwd_max, 1e-6, 1e-6);
    }
    const char *pools[] = {"pool_btd", "pool_axis0", "pool_last", "pool_4d", "pool_nomask", "pool_nomask_last",
                           "pool_all_masked"};
    for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
        snprintf(path, sizeof path, "reduce/%s.safetensors", pools[i]);
        test_golden_op(path, fwd_pool, 1e-5, 1e-5);
    }
    return test_finish();
}
