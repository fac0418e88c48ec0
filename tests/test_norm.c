// test_norm.c: layer_norm, rms_norm, l2_normalize, cosine_similarity and weight_norm.
//  * finite-difference gradient checks over shapes (D = 1, odd sizes, 1-D inputs), every option (weight
//    and bias present or NULL, several eps, every axis position, middle axes wider than a 64-column tile,
//    norms below eps) and with only some inputs requiring grad;
//  * PyTorch goldens (tests/golden/gen_norm.py), including the clamped and zero-vector cases whose
//    gradients follow PyTorch's exact formulas;
//  * large inputs against a double-precision reference on 1 and 3 threads (the per-thread dweight/dbias
//    partial sums, the parallel tiles);
//  * backward accumulates into existing gradients.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"

// The op under test comes from the params ("op=layer_norm,eps=1e-5"), as the golden files store it.
static gvm_tensor *fwd_op(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    const char *op = test_param_s(p, "op", "");
    float eps = (float)test_param_f(p, "eps", 1e-5);
    int axis = (int)test_param_i(p, "axis", -1);
    if (!strcmp(op, "layer_norm")) return gvm_layer_norm(ctx, in[0], in[1], in[2], eps);
    if (!strcmp(op, "rms_norm")) return gvm_rms_norm(ctx, in[0], in[1], eps);
    if (!strcmp(op, "l2_normalize")) return gvm_l2_normalize(ctx, in[0], axis, eps);
    if (!strcmp(op, "cosine_similarity")) return gvm_cosine_similarity(ctx, in[0], in[1], axis, eps);
    if (!strcmp(op, "weight_norm")) return gvm_weight_norm(ctx, in[0], in[1]);
    gvm_fatal(__FILE__, __LINE__, "unknown op '%s'", op);
}

static void free_all(gvm_tensor **in, int n) {
    for (int i = 0; i < n; i++) gvm_tensor_free(in[i]);
}

// ---- gradient checks -------------------------------------------------------------------------------------------

static void gradcheck_row_norms(void) {
    typedef struct {
        int ndim;
        int64_t shape[3];
        bool w, b, x_grad;
        float eps;
    } row_case;
    static const row_case cases[] = {
        {2, {3, 5}, true, true, true, 1e-5f},  {3, {2, 3, 7}, true, true, true, 1e-5f},
        {2, {4, 6}, false, true, true, 1e-5f}, {2, {4, 6}, true, false, true, 1e-3f},
        {2, {3, 9}, false, false, true, 0.5f}, {2, {4, 1}, true, true, true, 1e-5f},
        {1, {7}, true, true, true, 1e-5f},     {2, {5, 4}, true, true, false, 1e-5f},  // x constant
        {2, {3, 70}, true, true, true, 1e-5f},
    };
    // A step of 4e-3, not 1e-3: the f32 rounding of D outputs puts ~1e-6 of noise into the summed loss,
    // which a 2e-3 wide central difference turns into ~1e-3 of gradient noise, the whole of atol.
    const test_gradcheck_opts opts = {.eps = 4e-3};
    char name[160], spec[64];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const row_case *k = &cases[c];
        int64_t D = k->shape[k->ndim - 1];
        gvm_tensor *in[3] = {test_randn(10 + c, k->ndim, k->shape, 1.0f, k->x_grad),
                             k->w ? test_randn(20 + c, 1, &D, 1.0f, true) : NULL,
                             k->b ? test_randn(30 + c, 1, &D, 1.0f, true) : NULL};
        snprintf(spec, sizeof spec, "op=layer_norm,eps=%g", k->eps);
        test_params p = test_params_parse(spec);
        snprintf(name, sizeof name, "gradcheck layer_norm case %zu (w %d, b %d, eps %g)", c, k->w, k->b, k->eps);
        test_gradcheck(name, fwd_op, in, 3, &p, &opts);
        if (k->b) {  // rms_norm has no bias: reuse the case without it
            gvm_tensor_free(in[2]);
            in[2] = NULL;
        }
        snprintf(spec, sizeof spec, "op=rms_norm,eps=%g", k->eps);
        p = test_params_parse(spec);
        snprintf(name, sizeof name, "gradcheck rms_norm case %zu (w %d, eps %g)", c, k->w, k->eps);
        test_gradcheck(name, fwd_op, in, 2, &p, &opts);
        free_all(in, 3);
    }
}

typedef struct {
    int ndim;
    int64_t shape[3];
    int axis;
    float eps, scale;
} axis_case;

static void gradcheck_axis_norms(void) {
    // scale 1e-3 with eps 0.1: every norm is below eps, so the clamp is active (and stays so under the
    // finite-difference step). cosine_similarity is only checked unclamped: there PyTorch's gradient (which
    // gvm follows) differentiates the norm through the clamp, which finite differences cannot see.
    static const axis_case cases[] = {
        {2, {3, 7}, -1, 1e-12f, 1.0f},    {3, {3, 4, 5}, 1, 1e-12f, 1.0f}, {3, {3, 4, 5}, 0, 1e-12f, 1.0f},
        {3, {2, 3, 70}, 1, 1e-12f, 1.0f}, {2, {6, 1}, -1, 1e-12f, 1.0f},   {1, {8}, 0, 1e-12f, 1.0f},
        {3, {2, 1, 3}, 1, 1e-12f, 1.0f},  {2, {4, 3}, -1, 0.1f, 1e-3f},
    };
    char name[160], spec[96];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const axis_case *k = &cases[c];
        gvm_tensor *in[2] = {test_randn(40 + c, k->ndim, k->shape, k->scale, true),
                             test_randn(50 + c, k->ndim, k->shape, 1.0f, true)};
        snprintf(spec, sizeof spec, "op=l2_normalize,axis=%d,eps=%g", k->axis, k->eps);
        test_params p = test_params_parse(spec);
        snprintf(name, sizeof name, "gradcheck %s", spec);
        test_gradcheck(name, fwd_op, in, 1, &p, NULL);
        if (k->scale == 1.0f) {
            snprintf(spec, sizeof spec, "op=cosine_similarity,axis=%d,eps=%g", k->axis,
                     k->eps < 1e-8f ? 1e-8f : k->eps);
            p = test_params_parse(spec);
            snprintf(name, sizeof name, "gradcheck %s", spec);
            test_gradcheck(name, fwd_op, in, 2, &p, NULL);
            in[0]->requires_grad = false;
            snprintf(name, sizeof name, "gradcheck %s, a constant", spec);
            test_gradcheck(name, fwd_op, in, 2, &p, NULL);
        }
        free_all(in, 2);
    }
}

static void gradcheck_weight_norm(void) {
    typedef struct {
        int ndim;
        int64_t v[4], g[4];
    } wn_case;
    static const wn_case cases[] = {
        {3, {6, 4, 3}, {6, 1, 1}}, {2, {5, 7}, {5, 1}}, {1, {4}, {4}}, {2, {1, 9}, {1, 1}}, {2, {3, 1}, {3, 1}},
    };
    char name[128];
    test_params p = test_params_parse("op=weight_norm");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gvm_tensor *in[2] = {test_randn(60 + c, cases[c].ndim, cases[c].g, 1.0f, true),
                             test_randn(70 + c, cases[c].ndim, cases[c].v, 1.0f, true)};
        snprintf(name, sizeof name, "gradcheck weight_norm case %zu", c);
        test_gradcheck(name, fwd_op, in, 2, &p, NULL);
        in[1]->requires_grad = false;
        snprintf(name, sizeof name, "gradcheck weight_norm case %zu, v constant", c);
        test_gradcheck(name, fwd_op, in, 2, &p, NULL);
        free_all(in, 2);
    }
}

// ---- references in double --------------------------------------------------------------------------------------

// Layer norm (bias) or RMS norm (!bias) of x [rows, D] with weight w, and every gradient for upstream r.
static void ref_row_norm(bool layer, const float *x, const float *w, const float *r, int64_t rows, int64_t D,
                         double eps, double *y, double *dx, double *dw, double *db) {
    for (int64_t j = 0; j < D; j++) dw[j] = db[j] = 0.0;
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * D, *rr = r + i * D;
        double mu = 0.0, var = 0.0;
        if (layer) {
            for (int64_t j = 0; j < D; j++) mu += xr[j];
            mu /= D;
        }
        for (int64_t j = 0; j < D; j++) var += (xr[j] - mu) * (xr[j] - mu);
        double rs = 1.0 / sqrt(var / D + eps), a = 0.0, c = 0.0;
        for (int64_t j = 0; j < D; j++) {
            double xh = (xr[j] - mu) * rs, g = rr[j] * (double)w[j];
            y[i * D + j] = xh * w[j] + (layer ? 1.0 : 0.0) * 0.5 * (double)j / D;  // bias b[j] = 0.5 j / D
            a += g;
            c += g * xh;
            dw[j] += rr[j] * xh;
            db[j] += rr[j];
        }
        for (int64_t j = 0; j < D; j++) {
            double xh = (xr[j] - mu) * rs, g = rr[j] * (double)w[j];
            dx[i * D + j] = layer ? rs * (g - a / D - xh * c / D) : rs * (g - xh * c / D);
        }
    }
}

static void reference_row_norms(int threads) {
    // rows * D above the kernels' parallel threshold; a column count that is not a multiple of the vector width.
    const int64_t rows = 300, D = 130;
    gvm_tensor *x = test_randn(80, 2, (int64_t[]){rows, D}, 2.0f, true);
    gvm_tensor *w = test_randn(81, 1, &D, 1.0f, true), *b = gvm_tensor_new(GVM_F32, 1, &D);
    gvm_tensor *r = test_randn(82, 2, (int64_t[]){rows, D}, 1.0f, false);
    b->requires_grad = true;
    for (int64_t j = 0; j < D; j++) ((float *)b->data)[j] = 0.5f * (float)j / (float)D;
    float *xv = x->data;
    for (int64_t j = 0; j < D; j++) xv[j] += 50.0f;  // one row with a large mean
    double *y = malloc(sizeof(double) * rows * D), *dx = malloc(sizeof(double) * rows * D);
    double *dw = malloc(sizeof(double) * D), *db = malloc(sizeof(double) * D);
    char name[128];
    for (int layer = 1; layer >= 0; layer--) {
        const char *op = layer ? "layer_norm" : "rms_norm";
        ref_row_norm(layer, x->data, w->data, r->data, rows, D, 1e-5, y, dx, dw, db);
        gvm_zero_grad(x);
        gvm_zero_grad(w);
        gvm_zero_grad(b);
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *out = layer ? gvm_layer_norm(ctx, x, w, b, 1e-5f) : gvm_rms_norm(ctx, x, w, 1e-5f);
        gvm_backward_with_grad(ctx, out, r->data);
        snprintf(name, sizeof name, "%s [300, 130] on %d threads: output", op, threads);
        test_close_to_ref(name, out->data, y, rows * D, 1e-5);
        snprintf(name, sizeof name, "%s [300, 130] on %d threads: grad x", op, threads);
        test_close_to_ref(name, x->grad->data, dx, rows * D, 1e-5);
        snprintf(name, sizeof name, "%s [300, 130] on %d threads: grad weight", op, threads);
        test_close_to_ref(name, w->grad->data, dw, D, 1e-5);
        if (layer) {
            snprintf(name, sizeof name, "%s [300, 130] on %d threads: grad bias", op, threads);
            test_close_to_ref(name, b->grad->data, db, D, 1e-5);
        }
        gvm_ctx_free(ctx);
    }
    free(y);
    free(dx);
    free(dw);
    free(db);
    gvm_tensor_free(x);
    gvm_tensor_free(w);
    gvm_tensor_free(b);
    gvm_tensor_free(r);
}

// l2_normalize and cosine_similarity of [outer, n, inner] over n (unclamped), and weight_norm as [O, K].
static void reference_axis_norms(int threads) {
    const int64_t outer = 6, n = 50, inner = 150, numel = outer * n * inner, m = outer * inner;
    gvm_tensor *a = test_randn(90, 3, (int64_t[]){outer, n, inner}, 1.0f, true);
    gvm_tensor *b = test_randn(91, 3, (int64_t[]){outer, n, inner}, 1.0f, true);
    gvm_tensor *r = test_randn(92, 1, (int64_t[]){numel}, 1.0f, false);
    const float *av = a->data, *bv = b->data, *rv = r->data;
    double *y = malloc(sizeof(double) * numel), *da = malloc(sizeof(double) * numel);
    double *db = malloc(sizeof(double) * numel), *cy = malloc(sizeof(double) * m);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double na = 0, nb = 0, ab = 0, ry = 0, ra = 0;
            for (int64_t k = 0; k < n; k++) {
                int64_t at = (o * n + k) * inner + i;
                na += (double)av[at] * av[at];
                nb += (double)bv[at] * bv[at];
                ab += (double)av[at] * bv[at];
                ra += (double)rv[at] * av[at];
            }
            na = sqrt(na);
            nb = sqrt(nb);
            double cs = ab / (na * nb), g = rv[o * inner + i];  // cosine's upstream: the first m values of r
            cy[o * inner + i] = cs;
            for (int64_t k = 0; k < n; k++) {
                int64_t at = (o * n + k) * inner + i;
                y[at] = av[at] / na;
                ry = ra / na;  // sum(r * y)
                da[at] = (rv[at] - y[at] * ry) / na;
                db[at] = g * (av[at] / (na * nb) - cs * bv[at] / (nb * nb));
            }
        }
    char name[128];
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *out = gvm_l2_normalize(ctx, a, 1, 1e-12f);
    gvm_backward_with_grad(ctx, out, rv);
    snprintf(name, sizeof name, "l2_normalize [6, 50, 150] axis 1 on %d threads: output", threads);
    test_close_to_ref(name, out->data, y, numel, 1e-5);
    snprintf(name, sizeof name, "l2_normalize [6, 50, 150] axis 1 on %d threads: grad", threads);
    test_close_to_ref(name, a->grad->data, da, numel, 1e-5);
    a->requires_grad = false;
    out = gvm_cosine_similarity(ctx, a, b, 1, 1e-8f);
    gvm_backward_with_grad(ctx, out, rv);
    snprintf(name, sizeof name, "cosine_similarity [6, 50, 150] axis 1 on %d threads: output", threads);
    test_close_to_ref(name, out->data, cy, m, 1e-5);
    snprintf(name, sizeof name, "cosine_similarity [6, 50, 150] axis 1 on %d threads: grad b", threads);
    test_close_to_ref(name, b->grad->data, db, numel, 1e-5);
    gvm_ctx_free(ctx);

    // weight_norm with a as v [300, 150] (K contiguous) and g = 1.5.
    const int64_t O = outer * n, K = inner;
    gvm_tensor *g = gvm_tensor_new(GVM_F32, 2, (int64_t[]){O, 1});
    for (int64_t o = 0; o < O; o++) ((float *)g->data)[o] = 1.5f;
    g->requires_grad = true;
    gvm_tensor *v = gvm_tensor_wrap(GVM_F32, 2, (int64_t[]){O, K}, a->data);
    v->requires_grad = true;
    double *dg = malloc(sizeof(double) * O);
    for (int64_t o = 0; o < O; o++) {
        double nv = 0, s = 0;
        for (int64_t k = 0; k < K; k++) {
            nv += (double)av[o * K + k] * av[o * K + k];
            s += (double)rv[o * K + k] * av[o * K + k];
        }
        nv = sqrt(nv);
        dg[o] = s / nv;
        for (int64_t k = 0; k < K; k++) {
            int64_t at = o * K + k;
            y[at] = 1.5 * av[at] / nv;
            da[at] = 1.5 / nv * (rv[at] - av[at] * s / (nv * nv));
        }
    }
    ctx = gvm_ctx_new(1);
    out = gvm_weight_norm(ctx, g, v);
    gvm_backward_with_grad(ctx, out, rv);
    snprintf(name, sizeof name, "weight_norm [300, 150] on %d threads: output", threads);
    test_close_to_ref(name, out->data, y, numel, 1e-5);
    snprintf(name, sizeof name, "weight_norm [300, 150] on %d threads: grad v", threads);
    test_close_to_ref(name, v->grad->data, da, numel, 1e-5);
    snprintf(name, sizeof name, "weight_norm [300, 150] on %d threads: grad g", threads);
    test_close_to_ref(name, g->grad->data, dg, O, 1e-5);
    gvm_ctx_free(ctx);
    free(y);
    free(da);
    free(db);
    free(cy);
    free(dg);
    gvm_tensor_free(v);
    gvm_tensor_free(g);
    gvm_tensor_free(a);
    gvm_tensor_free(b);
    gvm_tensor_free(r);
}

// ---- accumulation ----------------------------------------------------------------------------------------------

// Backward adds into a gradient that is already there: two passes give twice one pass.
static void test_accumulates(const char *spec, gvm_tensor **in, int n_in) {
    test_params p = test_params_parse(spec);
    float *first[3] = {NULL, NULL, NULL};
    for (int i = 0; i < n_in; i++) gvm_zero_grad(in[i]);
    for (int pass = 0; pass < 2; pass++) {
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *out = fwd_op(ctx, in, &p);
        gvm_tensor *r = test_randn(1000, out->ndim, out->shape, 1.0f, false);
        gvm_backward_with_grad(ctx, out, r->data);
        for (int i = 0; i < n_in && pass == 0; i++)
            if (in[i] && in[i]->requires_grad) {
                first[i] = malloc((size_t)in[i]->numel * sizeof(float));
                for (int64_t j = 0; j < in[i]->numel; j++) first[i][j] = 2.0f * ((float *)in[i]->grad->data)[j];
            }
        gvm_tensor_free(r);
        gvm_ctx_free(ctx);
    }
    char name[128];
    for (int i = 0; i < n_in; i++)
        if (first[i]) {
            snprintf(name, sizeof name, "%s: backward accumulates into input %d", spec, i);
            test_allclose(name, in[i]->grad->data, first[i], in[i]->numel, 1e-6, 1e-6);
            free(first[i]);
        }
}

static void accumulation_checks(void) {
    // Sizes above the parallel threshold too, so the per-thread partial sums are covered.
    const int64_t shapes[2][2] = {{3, 5}, {260, 130}};
    for (int s = 0; s < 2; s++) {
        int64_t D = shapes[s][1];
        gvm_tensor *in[3] = {test_randn(1, 2, shapes[s], 1.0f, true), test_randn(2, 1, &D, 1.0f, true),
                             test_randn(3, 1, &D, 1.0f, true)};
        test_accumulates("op=layer_norm,eps=1e-5", in, 3);
        test_accumulates("op=rms_norm,eps=1e-5", in, 2);
        test_accumulates("op=l2_normalize,axis=-1,eps=1e-12", in, 1);
        test_accumulates("op=l2_normalize,axis=0,eps=1e-12", in, 1);
        gvm_tensor *ab[2] = {in[0], test_randn(4, 2, shapes[s], 1.0f, true)};
        test_accumulates("op=cosine_similarity,axis=-1,eps=1e-8", ab, 2);
        test_accumulates("op=cosine_similarity,axis=0,eps=1e-8", ab, 2);
        gvm_tensor *gv[2] = {test_randn(5, 2, (int64_t[]){shapes[s][0], 1}, 1.0f, true), in[0]};
        test_accumulates("op=weight_norm", gv, 2);
        gvm_tensor_free(ab[1]);
        gvm_tensor_free(gv[0]);
        free_all(in, 3);
    }
}

// ---- goldens -------------------------------------------------------------------------------------------------------

static void goldens(void) {
    const char *cases[] = {
        "ln_basic",  "ln_3d",        "ln_no_weight", "ln_no_bias",  "ln_plain",      "ln_d1",
        "ln_offset", "ln_wide",      "ln_1d",        "rms_basic",   "rms_no_weight", "rms_d1",
        "rms_3d",    "rms_big_eps",  "l2n_last",     "l2n_mid",     "l2n_first",     "l2n_mid_wide",
        "l2n_d1",    "l2n_clamped",  "l2n_zero_row", "l2n_1d",      "cos_last",      "cos_mid",
        "cos_first", "cos_mid_wide", "cos_d1",       "cos_clamped", "cos_zero_row",  "cos_1d",
        "wn_conv",   "wn_linear",    "wn_1d",        "wn_o1",       "wn_k1",         "wn_4d",
    };
    char path[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "norm/%s.safetensors", cases[i]);
        test_golden_op(path, fwd_op, 1e-5, 1e-5);
    }
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    goldens();
    gradcheck_row_norms();
    gradcheck_axis_norms();
    gradcheck_weight_norm();
    accumulation_checks();
    // Once on one thread and once on three, so both schedules run whatever the machine has.
    int threads0 = omp_get_max_threads();
    const int thread_counts[2] = {1, 3};
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(thread_counts[k]);
        reference_row_norms(thread_counts[k]);
        reference_axis_norms(thread_counts[k]);
    }
    omp_set_num_threads(threads0);
    return test_finish();
}
