// test_cuda_matmul.c: the CUDA matmul and linear ops against the CPU reference, forward and backward:
// all four transpose combinations at M, N, K in {1, 7, 33, 257, 1000}; batched with 3-D and 4-D batch dims
// (including size-1 batch dims); a 2-D b shared by every batch entry (one stacked GEMM when a is not
// transposed, else a batch whose db accumulates into one matrix: in groups through a temporary, and per entry
// when one product is larger than the temporary); K = 0 and M = 0; gradients of only one input; linear
// with and without bias on 1-D, 2-D and 4-D inputs, in_f = 0, no rows, > 65535 rows (the chunked bias
// gradient), out_f not a multiple of 4 (the scalar bias fill), and a large linear (3000 rows, 1024 -> 4096).
// Then autocast to bf16 and f16 against the f32 CPU result, and direct checks that autocast really rounds
// the operands, also in a backward pass run after the autocast scope has ended.
#include <stdio.h>

#include "core/gvm.h"
#include "tests/device_parity.h"

// Autocast tolerances. Rounding an operand to bf16 (8 significant bits) or f16 (11) makes a relative error
// of at most 2^-8 (2^-11), about 1.6e-3 (2.0e-4) rms. A product of two rounded operands carries sqrt(2) times
// that, and in a K-term dot product of random normal data these errors add up like the terms themselves, so
// the error relative to the output's rms is about 2.3e-3 (bf16) and 2.9e-4 (f16) whatever K; numpy (rounding,
// then exact products) measured 2.35e-3 and 2.9e-4. The harness allows rtol * (|cpu| + rms) per element; the
// worst err / (|cpu| + rms) measured over 1e6 .. 1.2e7 elements was 1.1e-2 .. 2.3e-2 (bf16) and 1.3e-3 ..
// 2.6e-3 (f16) for K >= 7. K in 2..6 has heavier tails (a few large products cancelling: up to 3.2e-2 and
// 4.3e-3), so every inner dimension of an autocast case below (K of the forward, M and N of the backward
// GEMMs, the rows of linear's dW) is 1 or >= 7. f32 accumulation adds nothing visible at this scale.
// Hence rtol 3e-2 (bf16) and 4e-3 (f16): about 13 standard deviations at the rms, 1.3x the worst tail seen.
#define RTOL_BF16 3e-2
#define RTOL_F16 4e-3

static int g_extra_failed;  // the direct checks below (not counted by the harness)

// ---- matmul ----------------------------------------------------------------------------------------------

typedef struct {
    bool ta, tb;
} mm_arg;

static gvm_tensor *build_matmul(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const mm_arg *m = arg;
    return gvm_matmul(ctx, in[0], in[1], m->ta, m->tb);
}

static parity_opts autocast_opts(gvm_dtype ac) {
    parity_opts o = {0};
    o.autocast = ac;
    if (ac == GVM_BF16) o.rtol = RTOL_BF16;
    if (ac == GVM_F16) o.rtol = RTOL_F16;
    return o;
}

static const char *ac_name(gvm_dtype ac) { return ac == GVM_BF16 ? " bf16" : ac == GVM_F16 ? " f16" : ""; }

// a [batch..., M, K] (stored [batch..., K, M] when ta) times b [batch..., K, N] ([batch..., N, K] when tb);
// with `shared`, b is 2-D and a keeps its batch dims. grads: bit 0 a, bit 1 b requires grad (0: both).
static void mm_case(int nbatch, const int64_t *bdims, bool shared, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                    int grads, gvm_dtype ac) {
    parity_input in[2];
    in[0] = PARITY_F32(grads == 0 || (grads & 1), nbatch + 2, 0);
    in[1] = PARITY_F32(grads == 0 || (grads & 2), (shared ? 0 : nbatch) + 2, 0);
    for (int i = 0; i < nbatch; i++) {
        in[0].shape[i] = bdims[i];
        if (!shared) in[1].shape[i] = bdims[i];
    }
    int ia = nbatch, ib = shared ? 0 : nbatch;
    in[0].shape[ia] = ta ? K : M;
    in[0].shape[ia + 1] = ta ? M : K;
    in[1].shape[ib] = tb ? N : K;
    in[1].shape[ib + 1] = tb ? K : N;
    char name[160], bstr[48] = "";
    int len = 0;
    for (int i = 0; i < nbatch; i++)
        len += snprintf(bstr + len, sizeof bstr - (size_t)len, "%s%lld", i ? "," : " batch ", (long long)bdims[i]);
    snprintf(name, sizeof name, "matmul M=%lld N=%lld K=%lld%s%s%s%s%s%s", (long long)M, (long long)N, (long long)K,
             ta ? " ta" : "", tb ? " tb" : "", bstr, shared ? " shared-b" : "",
             grads == 1 ? " (grad a only)" : grads == 2 ? " (grad b only)" : "", ac_name(ac));
    mm_arg arg = {ta, tb};
    parity_opts o = autocast_opts(ac);
    parity_check(name, build_matmul, &arg, 2, in, &o);
}

static void mm_all_trans(int nbatch, const int64_t *bdims, bool shared, int64_t M, int64_t N, int64_t K, gvm_dtype ac) {
    for (int t = 0; t < 4; t++) mm_case(nbatch, bdims, shared, M, N, K, t & 1, (t >> 1) & 1, 0, ac);
}

// ---- linear ----------------------------------------------------------------------------------------------

typedef struct {
    bool bias;
} lin_arg;

static gvm_tensor *build_linear(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const lin_arg *l = arg;
    return gvm_linear(ctx, in[0], in[1], l->bias ? in[2] : NULL);
}

// x [lead..., in_f], w [out_f, in_f], bias [out_f] when `bias`. x_grad: whether x requires grad.
static void lin_case(int nlead, const int64_t *lead, int64_t in_f, int64_t out_f, bool bias, bool x_grad,
                     gvm_dtype ac) {
    parity_input in[3];
    in[0] = PARITY_F32(x_grad, nlead + 1, 0);
    for (int i = 0; i < nlead; i++) in[0].shape[i] = lead[i];
    in[0].shape[nlead] = in_f;
    in[1] = PARITY_F32(true, 2, out_f, in_f);
    in[2] = PARITY_F32(true, 1, out_f);
    char name[160], lstr[48] = "";
    int len = 0;
    for (int i = 0; i < nlead; i++)
        len += snprintf(lstr + len, sizeof lstr - (size_t)len, "%s%lld", i ? "," : "", (long long)lead[i]);
    snprintf(name, sizeof name, "linear x[%s%s%lld] %lld -> %lld%s%s%s", lstr, nlead ? "," : "", (long long)in_f,
             (long long)in_f, (long long)out_f, bias ? " bias" : "", x_grad ? "" : " (no grad x)", ac_name(ac));
    lin_arg arg = {bias};
    parity_opts o = autocast_opts(ac);
    parity_check(name, build_linear, &arg, bias ? 3 : 2, in, &o);
}

// ---- direct autocast checks --------------------------------------------------------------------------------

// A 1x1 tensor on the GPU holding v, requiring grad.
static gvm_tensor *gpu_scalar(float v) {
    gvm_tensor *h = gvm_tensor_new(GVM_F32, 2, (int64_t[]){1, 1});
    gvm_tensor_f32(h)[0] = v;
    gvm_tensor *d = gvm_tensor_to(h, GVM_DEVICE_CUDA);
    d->requires_grad = true;
    gvm_tensor_free(h);
    return d;
}

static float gpu_value(const gvm_tensor *t) {
    gvm_tensor *h = gvm_tensor_to(t, GVM_DEVICE_CPU);
    float v = gvm_tensor_f32(h)[0];
    gvm_tensor_free(h);
    return v;
}

static void expect(const char *what, float got, float want) {
    if (got != want) {
        printf("FAIL %s: got %.9g, want %.9g\n", what, got, want);
        g_extra_failed++;
    } else {
        printf("ok   %s\n", what);
    }
}

// 1 + 2^-10 survives f16 (11 significant bits) and f32 but rounds to 1 in bf16 (8 bits). The forward runs
// under `ac` and the backward after autocast is switched off, so the gradients show whether the node kept
// the forward's GEMM type: dB = A^T dC and dW = dY^T X take the rounded 1 + 2^-10 (dC = dY = 1).
static void check_rounding(gvm_dtype ac, bool linear) {
    const float v = 1.0f + 1.0f / 1024.0f;
    const float want = ac == GVM_BF16 ? 1.0f : v;
    gvm_ctx *ctx = gvm_ctx_new(1);
    GVM_CHECK(gvm_ctx_set_device(ctx, GVM_DEVICE_CUDA) == GVM_OK, "%s", gvm_error_message());
    ctx->autocast = ac;
    gvm_tensor *a = gpu_scalar(v), *b = gpu_scalar(1.0f);
    gvm_tensor *out = linear ? gvm_linear(ctx, a, b, NULL) : gvm_matmul(ctx, a, b, false, false);
    ctx->autocast = GVM_F32;  // the backward runs outside the autocast scope
    gvm_tensor *seed = gpu_scalar(1.0f);
    gvm_backward_with_grad(ctx, out, seed->data);
    char what[96];
    const char *op = linear ? "linear" : "matmul";
    snprintf(what, sizeof what, "%s rounds to%s: output", op, ac == GVM_F32 ? " f32" : ac_name(ac));
    expect(what, gpu_value(out), want);
    snprintf(what, sizeof what, "%s rounds to%s: backward after the scope", op, ac == GVM_F32 ? " f32" : ac_name(ac));
    expect(what, gpu_value(b->grad), want);
    gvm_tensor_free(seed);
    gvm_tensor_free(a);
    gvm_tensor_free(b);
    gvm_ctx_free(ctx);
}

int main(int argc, char **argv) {
    parity_init(argc, argv);

    // 2-D, all four transpose combinations, odd sizes and 1s.
    static const int64_t mnk[][3] = {{1, 1, 1},      {1, 7, 33},   {7, 1, 257},     {33, 257, 1},
                                     {257, 33, 7},   {1000, 7, 33}, {7, 1000, 257}, {33, 33, 1000},
                                     {1000, 1000, 1000}};
    for (size_t i = 0; i < sizeof mnk / sizeof mnk[0]; i++)
        mm_all_trans(0, NULL, false, mnk[i][0], mnk[i][1], mnk[i][2], GVM_F32);

    // Batched: same batch dims on both sides (strided batched GEMMs), size-1 batch dims.
    mm_all_trans(1, (int64_t[]){3}, false, 33, 7, 257, GVM_F32);
    mm_all_trans(2, (int64_t[]){2, 3}, false, 7, 257, 33, GVM_F32);
    mm_all_trans(2, (int64_t[]){1, 4}, false, 1, 33, 7, GVM_F32);
    mm_all_trans(3, (int64_t[]){2, 1, 3}, false, 257, 1, 33, GVM_F32);
    mm_all_trans(1, (int64_t[]){1}, false, 33, 33, 33, GVM_F32);

    // b shared by the batch: !ta stacks the rows into one GEMM; ta runs a batch whose db accumulates into
    // one matrix (stride_c 0).
    mm_all_trans(1, (int64_t[]){4}, true, 33, 7, 257, GVM_F32);
    mm_all_trans(2, (int64_t[]){2, 3}, true, 257, 33, 7, GVM_F32);
    mm_all_trans(1, (int64_t[]){1}, true, 7, 1, 33, GVM_F32);
    // db: 100 products of 4 MiB -> two groups (64 + 36) through the 256 MiB temporary.
    mm_case(1, (int64_t[]){100}, true, 8, 1024, 1024, true, false, 0, GVM_F32);
    // db [8200, 8200] is larger than the temporary: one GEMM per batch entry straight into db.
    mm_case(1, (int64_t[]){2}, true, 1, 8200, 8200, true, false, 0, GVM_F32);

    // Only one gradient wanted.
    mm_case(1, (int64_t[]){3}, false, 33, 7, 257, false, true, 1, GVM_F32);
    mm_case(1, (int64_t[]){3}, false, 33, 7, 257, true, false, 2, GVM_F32);
    mm_case(1, (int64_t[]){4}, true, 33, 7, 257, false, false, 2, GVM_F32);

    // Empty: K = 0 (the output is all zeros: C = 0 * C), M = 0 (nothing; db gets a K = 0 GEMM with beta 1).
    mm_all_trans(0, NULL, false, 3, 5, 0, GVM_F32);
    mm_all_trans(1, (int64_t[]){2}, false, 4, 3, 0, GVM_F32);
    mm_case(1, (int64_t[]){2}, true, 4, 3, 0, true, false, 0, GVM_F32);
    mm_case(0, NULL, false, 0, 5, 3, false, false, 0, GVM_F32);
    mm_case(1, (int64_t[]){2}, true, 0, 5, 3, true, false, 0, GVM_F32);

    // linear: 1-D, 2-D, 4-D inputs, with and without bias.
    for (int bias = 0; bias < 2; bias++) {
        lin_case(0, NULL, 33, 7, bias, true, GVM_F32);
        lin_case(1, (int64_t[]){33}, 257, 7, bias, true, GVM_F32);
        lin_case(3, (int64_t[]){2, 3, 5}, 33, 65, bias, true, GVM_F32);
        lin_case(1, (int64_t[]){1000}, 1, 1, bias, true, GVM_F32);
    }
    lin_case(1, (int64_t[]){100}, 16, 4, true, true, GVM_F32);      // float4 bias fill
    lin_case(1, (int64_t[]){257}, 33, 1000, true, false, GVM_F32);  // no dX (a first layer)
    lin_case(1, (int64_t[]){70000}, 3, 5, true, true, GVM_F32);     // > 65535 rows: many bias-grad chunks
    lin_case(1, (int64_t[]){5000}, 7, 1, true, true, GVM_F32);
    lin_case(1, (int64_t[]){4}, 0, 3, true, true, GVM_F32);         // in_f = 0: Y is the bias
    lin_case(1, (int64_t[]){0}, 5, 3, true, true, GVM_F32);         // no rows: db += 0
    lin_case(1, (int64_t[]){3000}, 1024, 4096, true, true, GVM_F32);

    // Autocast: the forward GEMM and both backward GEMMs take rounded operands.
    static const gvm_dtype acs[2] = {GVM_BF16, GVM_F16};
    for (int i = 0; i < 2; i++) {
        gvm_dtype ac = acs[i];
        mm_all_trans(0, NULL, false, 33, 257, 7, ac);
        mm_case(0, NULL, false, 257, 33, 1000, false, false, 0, ac);
        mm_case(0, NULL, false, 7, 33, 1, false, false, 0, ac);
        mm_all_trans(1, (int64_t[]){3}, false, 33, 7, 257, ac);
        mm_all_trans(2, (int64_t[]){2, 3}, true, 33, 7, 257, ac);
        mm_case(1, (int64_t[]){100}, true, 8, 1024, 1024, true, false, 0, ac);
        mm_case(1, (int64_t[]){2}, false, 3, 5, 0, false, false, 0, ac);  // K = 0
        lin_case(1, (int64_t[]){33}, 257, 7, true, true, ac);
        lin_case(3, (int64_t[]){2, 3, 5}, 33, 65, false, true, ac);
        lin_case(1, (int64_t[]){3000}, 1024, 4096, true, true, ac);
    }
    // Not a rounding tolerance but the rounding itself, and the node's memory of it.
    for (int linear = 0; linear < 2; linear++) {
        check_rounding(GVM_F32, linear);
        check_rounding(GVM_BF16, linear);
        check_rounding(GVM_F16, linear);
    }

    int rc = parity_finish();
    if (g_extra_failed) printf("%d direct autocast checks failed\n", g_extra_failed);
    return rc || g_extra_failed ? 1 : 0;
}
