// test_conv.c: conv1d and conv_transpose1d: gradient checks over odd geometries (T = 1, K > T with
// padding, stride > K, groups 2, depthwise, dilation 3, output_padding, no bias, K = 1, NULL options,
// inputs that take no gradient), PyTorch goldens, gradient accumulation, and large shapes checked against a
// naive double-precision reference (these reach the chunked im2col, the side-by-side work items and the
// two-phase col2im that the small cases never do).
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"

typedef struct {
    const char *name;
    bool transposed;
    int64_t B, Cin, Cout, T, K;
    int S, P, D, G, OP;
    bool bias;
} conv_case;

static gvm_tensor *fwd_conv(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    gvm_conv1d_opts o = {(int)test_param_i(p, "stride", 0), (int)test_param_i(p, "padding", 0),
                         (int)test_param_i(p, "dilation", 0), (int)test_param_i(p, "groups", 0),
                         (int)test_param_i(p, "output_padding", 0)};
    bool null_opts = test_param_i(p, "null_opts", 0);
    if (strcmp(test_param_s(p, "op", "conv"), "convt") == 0)
        return gvm_conv_transpose1d(ctx, in[0], in[1], in[2], null_opts ? NULL : &o);
    return gvm_conv1d(ctx, in[0], in[1], in[2], null_opts ? NULL : &o);
}

static test_params case_params(const conv_case *c, bool null_opts) {
    char spec[256];
    snprintf(spec, sizeof spec, "op=%s,stride=%d,padding=%d,dilation=%d,groups=%d,output_padding=%d,null_opts=%d",
             c->transposed ? "convt" : "conv", c->S, c->P, c->D, c->G, c->OP, null_opts ? 1 : 0);
    return test_params_parse(spec);
}

// x [B, Cin, T], w [Cout, Cin/G, K] (conv) or [Cin, Cout/G, K] (transposed), b [Cout] or NULL.
static void make_inputs(const conv_case *c, uint64_t seed, float wscale, unsigned grad_mask, gvm_tensor **in) {
    int64_t G = c->G ? c->G : 1;
    int64_t ws[3] = {c->transposed ? c->Cin : c->Cout, c->transposed ? c->Cout / G : c->Cin / G, c->K};
    in[0] = test_randn(seed, 3, (int64_t[]){c->B, c->Cin, c->T}, 1.0f, grad_mask & 1);
    in[1] = test_randn(seed + 1, 3, ws, wscale, grad_mask & 2);
    in[2] = c->bias ? test_randn(seed + 2, 1, (int64_t[]){c->Cout}, 1.0f, grad_mask & 4) : NULL;
}

static void free_inputs(gvm_tensor **in) {
    for (int i = 0; i < 3; i++) gvm_tensor_free(in[i]);
}

static void gradcheck_case(const conv_case *c, unsigned grad_mask, bool null_opts) {
    gvm_tensor *in[3];
    make_inputs(c, 11, 0.5f, grad_mask, in);
    test_params p = case_params(c, null_opts);
    char name[160];
    snprintf(name, sizeof name, "gradcheck %s (grad mask %u)", c->name, grad_mask);
    test_gradcheck(name, fwd_conv, in, 3, &p, NULL);
    free_inputs(in);
}

// ---- naive reference (double) -------------------------------------------------------------------------------

// Straight from the definitions: conv1d y[b,o,t] = sum w[o,c,k] x[b, g*Cg + c, t*S - P + k*D]; the
// transposed op scatters x[b,i,t] w[i,o,k] to y[b, g*Cog + o, t*S - P + k*D]. Both give y and, for upstream
// dy, dx, dw and db. Tout must be given.
static void reference(const conv_case *c, int64_t Tout, const float *x, const float *w, const float *bias,
                      const float *dy, double *y, double *dx, double *dw, double *db) {
    int64_t G = c->G ? c->G : 1, S = c->S ? c->S : 1, D = c->D ? c->D : 1, P = c->P;
    int64_t Cig = c->Cin / G, Cog = c->Cout / G, K = c->K;
    for (int64_t i = 0; i < c->B * c->Cout * Tout; i++) y[i] = bias ? bias[(i / Tout) % c->Cout] : 0.0;
    memset(dx, 0, (size_t)(c->B * c->Cin * c->T) * sizeof(double));
    int64_t wn = c->Cin * Cog * K;
    memset(dw, 0, (size_t)wn * sizeof(double));
    for (int64_t o = 0; o < c->Cout; o++) {
        db[o] = 0.0;
        for (int64_t b = 0; b < c->B; b++)
            for (int64_t t = 0; t < Tout; t++) db[o] += dy[(b * c->Cout + o) * Tout + t];
    }
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t g = 0; g < G; g++)
            for (int64_t i = 0; i < Cig; i++)
                for (int64_t o = 0; o < Cog; o++)
                    for (int64_t k = 0; k < K; k++) {
                        int64_t ci = g * Cig + i, co = g * Cog + o;
                        int64_t widx = c->transposed ? (ci * Cog + o) * K + k : (co * Cig + i) * K + k;
                        double wv = w[widx];
                        // conv: output t reads input t*S - P + k*D; transposed: input t writes there.
                        int64_t n_src = c->transposed ? c->T : Tout;
                        for (int64_t t = 0; t < n_src; t++) {
                            int64_t pos = t * S - P + k * D;
                            int64_t lim = c->transposed ? Tout : c->T;
                            if (pos < 0 || pos >= lim) continue;
                            int64_t xi = c->transposed ? (b * c->Cin + ci) * c->T + t : (b * c->Cin + ci) * c->T + pos;
                            int64_t yi =
                                c->transposed ? (b * c->Cout + co) * Tout + pos : (b * c->Cout + co) * Tout + t;
                            y[yi] += wv * x[xi];
                            dx[xi] += wv * dy[yi];
                            dw[widx] += (double)x[xi] * dy[yi];
                        }
                    }
}

static void reference_case(const conv_case *c) {
    gvm_tensor *in[3];
    make_inputs(c, 21, 0.2f, 7, in);
    test_params p = case_params(c, false);
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *y = fwd_conv(ctx, in, &p);
    int64_t Tout = y->shape[2];
    float *dy = malloc((size_t)y->numel * sizeof(float));
    gvm_rng rng;
    gvm_rng_init(&rng, 5);
    gvm_rng_normal(&rng, dy, (size_t)y->numel, 0.0f, 1.0f);
    gvm_backward_with_grad(ctx, y, dy);
    double *ry = malloc((size_t)y->numel * sizeof(double)), *rdx = malloc((size_t)in[0]->numel * sizeof(double));
    double *rdw = malloc((size_t)in[1]->numel * sizeof(double)), *rdb = malloc((size_t)c->Cout * sizeof(double));
    reference(c, Tout, in[0]->data, in[1]->data, in[2] ? in[2]->data : NULL, dy, ry, rdx, rdw, rdb);
    char name[200];
    int thr = omp_get_max_threads();
    // f32 sums of up to a few thousand terms against double: 1e-5 of the largest value.
    snprintf(name, sizeof name, "reference %s (%d threads): y", c->name, thr);
    test_close_to_ref_scaled(name, y->data, ry, y->numel, 1e-5);
    snprintf(name, sizeof name, "reference %s (%d threads): dx", c->name, thr);
    test_close_to_ref_scaled(name, in[0]->grad->data, rdx, in[0]->numel, 1e-5);
    snprintf(name, sizeof name, "reference %s (%d threads): dw", c->name, thr);
    test_close_to_ref_scaled(name, in[1]->grad->data, rdw, in[1]->numel, 1e-5);
    if (in[2]) {
        snprintf(name, sizeof name, "reference %s (%d threads): db", c->name, thr);
        test_close_to_ref_scaled(name, in[2]->grad->data, rdb, c->Cout, 1e-5);
    }
    free(dy);
    free(ry);
    free(rdx);
    free(rdw);
    free(rdb);
    gvm_ctx_free(ctx);
    free_inputs(in);
}

// Backward must add to gradients already there: two backward passes give twice one.
static void accumulate_case(const conv_case *c) {
    gvm_tensor *in[3];
    make_inputs(c, 31, 0.5f, 7, in);
    test_params p = case_params(c, false);
    gvm_ctx *ctx = gvm_ctx_new(1);
    float *once[3] = {0};
    for (int pass = 0; pass < 2; pass++) {
        gvm_tensor *y = fwd_conv(ctx, in, &p);
        gvm_backward(ctx, y);
        if (pass == 0)
            for (int i = 0; i < 3; i++)
                if (in[i]) {
                    once[i] = malloc((size_t)in[i]->numel * sizeof(float));
                    memcpy(once[i], in[i]->grad->data, (size_t)in[i]->numel * sizeof(float));
                }
        gvm_ctx_reset(ctx);
    }
    for (int i = 0; i < 3; i++) {
        if (!in[i]) continue;
        float *twice = malloc((size_t)in[i]->numel * sizeof(float));
        for (int64_t j = 0; j < in[i]->numel; j++) twice[j] = 2.0f * once[i][j];
        char name[160];
        snprintf(name, sizeof name, "accumulate %s: input %d", c->name, i);
        test_allclose(name, in[i]->grad->data, twice, in[i]->numel, 1e-6, 1e-6);
        free(twice);
        free(once[i]);
    }
    gvm_ctx_free(ctx);
    free_inputs(in);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    //                name, transposed, B, Cin, Cout, T, K, S, P, D, G, OP, bias
    const conv_case grad_cases[] = {
        {"conv basic", false, 2, 3, 4, 7, 3, 1, 0, 1, 1, 0, true},
        {"conv T=1 K=1", false, 2, 3, 2, 1, 1, 1, 0, 1, 1, 0, true},
        {"conv T=1 K=3 pad 1", false, 1, 2, 3, 1, 3, 1, 1, 1, 1, 0, true},
        {"conv K>T pad", false, 2, 2, 3, 3, 5, 1, 2, 1, 1, 0, true},
        {"conv stride>K", false, 2, 3, 2, 13, 2, 5, 1, 1, 1, 0, true},
        {"conv groups 2", false, 2, 4, 6, 8, 3, 2, 1, 1, 2, 0, true},
        {"conv depthwise", false, 2, 4, 4, 9, 3, 1, 1, 1, 4, 0, true},
        {"conv depthwise x2", false, 1, 3, 6, 9, 2, 1, 0, 2, 3, 0, false},
        {"conv dilation 3", false, 2, 3, 2, 12, 3, 1, 3, 3, 1, 0, true},
        {"conv no bias", false, 2, 3, 4, 11, 4, 3, 1, 1, 1, 0, false},
        {"conv pointwise", false, 2, 5, 3, 6, 1, 1, 0, 1, 1, 0, true},
        {"conv k7 s2 p3", false, 1, 2, 3, 15, 7, 2, 3, 1, 1, 0, true},
        {"convt basic", true, 2, 3, 4, 5, 3, 1, 0, 1, 1, 0, true},
        {"convt T=1", true, 2, 3, 2, 1, 3, 2, 0, 1, 1, 1, true},
        {"convt K>T pad", true, 2, 2, 3, 2, 5, 1, 2, 1, 1, 0, true},
        {"convt stride>K", true, 2, 3, 2, 4, 2, 5, 0, 1, 1, 0, true},
        {"convt output_padding 1", true, 2, 3, 4, 5, 3, 2, 1, 1, 1, 1, true},
        {"convt groups 2", true, 2, 4, 6, 5, 3, 2, 1, 1, 2, 0, true},
        {"convt depthwise", true, 2, 4, 4, 6, 3, 1, 1, 1, 4, 0, true},
        {"convt dilation 3 op 1", true, 1, 2, 3, 6, 3, 1, 2, 3, 1, 1, true},
        {"convt no bias", true, 2, 3, 4, 5, 4, 3, 1, 1, 1, 2, false},
        {"convt pointwise", true, 2, 5, 3, 6, 1, 1, 0, 1, 1, 0, true},
        {"convt k16 s8 p4", true, 1, 3, 2, 4, 16, 8, 4, 1, 1, 0, true},
    };
    int n_grad = (int)(sizeof grad_cases / sizeof grad_cases[0]);
    for (int i = 0; i < n_grad; i++) gradcheck_case(&grad_cases[i], 7, false);
    // Each input alone taking a gradient (the kernels skip the others' work).
    for (unsigned m = 1; m <= 4; m <<= 1) {
        gradcheck_case(&grad_cases[5], m, false);   // conv groups 2
        gradcheck_case(&grad_cases[16], m, false);  // convt output_padding 1
    }
    // NULL options: stride 1, no padding, dilation 1, one group.
    const conv_case defaults[] = {{"conv NULL opts", false, 2, 3, 4, 6, 3, 1, 0, 1, 1, 0, true},
                                  {"convt NULL opts", true, 2, 3, 4, 6, 3, 1, 0, 1, 1, 0, true}};
    for (int i = 0; i < 2; i++) gradcheck_case(&defaults[i], 7, true);

    for (int i = 0; i < n_grad; i += 4) accumulate_case(&grad_cases[i]);

    // Large shapes (chunked, side by side or threaded BLAS, K = 1 without im2col, two-phase col2im).
    // What each reaches on 3 threads with core/cpu/conv.c's limits (on 1 thread: the same, items in turn).
    const conv_case big[] = {
        {"big conv k7 B3", false, 3, 64, 16, 5000, 7, 1, 3, 1, 1, 0, true},          // 3 chunks, side by side
        {"big conv k7 B1", false, 1, 64, 16, 4000, 7, 1, 3, 1, 1, 0, true},          // 2 chunks, in turn
        {"big conv k3 d9", false, 2, 32, 32, 24000, 3, 1, 9, 9, 1, 0, true},         // dilated, 3 chunks
        {"big conv k4 s2 g2", false, 2, 128, 16, 17000, 4, 2, 1, 1, 2, 0, false},    // strided, groups, chunks
        {"big conv pointwise", false, 2, 512, 8, 5000, 1, 1, 0, 1, 1, 0, true},      // no im2col, 3 chunks
        {"big conv 512 k11", false, 3, 512, 512, 24, 11, 1, 5, 1, 1, 0, true},       // weight pass in turn
        {"big convt k16 s8", true, 2, 8, 64, 2500, 16, 8, 4, 1, 1, 0, true},         // two-phase col2im
        {"big convt k4 s2 op1", true, 1, 8, 256, 2000, 4, 2, 1, 1, 1, 1, true},      // 2 chunks, in turn
        {"big convt pointwise", true, 3, 256, 16, 1100, 1, 1, 0, 1, 1, 0, true},     // no im2col, side by side
    };
    // Once on one thread and once on three, so both schedules run whatever the machine has.
    int threads0 = omp_get_max_threads();
    const int thread_counts[2] = {1, 3};
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(thread_counts[k]);
        for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) reference_case(&big[i]);
    }
    omp_set_num_threads(threads0);

    const char *goldens[] = {"conv_basic", "conv_k7_s2_p3", "conv_k_gt_t_pad", "conv_stride_gt_k", "conv_groups2",
                             "conv_depthwise", "conv_dilation3", "conv_nobias", "conv_t1", "conv_t1_k3_pad",
                             "conv_pointwise", "conv_pointwise_s2", "conv_mixed", "convt_basic", "convt_k4_s2_p1",
                             "convt_outpad1", "convt_dilation3_outpad1", "convt_stride_gt_k", "convt_groups2",
                             "convt_depthwise", "convt_nobias", "convt_t1", "convt_k_gt_t_pad", "convt_pointwise",
                             "convt_k16_s8_p4"};
    char path[128];
    for (size_t i = 0; i < sizeof goldens / sizeof goldens[0]; i++) {
        snprintf(path, sizeof path, "conv/%s.safetensors", goldens[i]);
        test_golden_op(path, fwd_conv, 1e-5, 1e-5);
    }
    return test_finish();
}
