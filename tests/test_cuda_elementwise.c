// test_cuda_elementwise.c: the CUDA elementwise kernels (core/cuda/elementwise.cu) against the CPU reference
// (core/cpu/elementwise.c), through the ops (tests/device_parity.h) and, for the paths the ops cannot reach
// on their own, through the kernels directly.
//
// Through the ops, forward and backward:
//  * add/sub/mul/div on broadcast patterns that take every GPU path: identical shapes (the flat kernels),
//    one side a single value ([1], rank 0, a 6M-element sum), [3,1,5] x [4,1], column sums (bias
//    [1000,4097] x [4097], 70000 reduced rows, a leading broadcast), row sums (x [64,1], 70000 rows), a
//    kept middle dim, both sides broadcast, rank 6, size-1 dims, zero elements, gradients wanted for one
//    side only, a * a (both gradients in one buffer) and a * b - a (accumulation);
//  * every unary op and activation over ranges clear of undefined points (log, sqrt and pow on positive
//    inputs), including the tails where the clamps and cut-offs act, elu with two alphas, pow with seven
//    exponents (2 and 0.5 take the CPU's special forms), sizes 1, 7, 37000 and 1000003, and accumulation;
//  * dropout in training mode, p = 0.1, 0.5 and 1, sizes 1, 7 and 1000003, and two draws in a row: the mask
//    must be the CPU's, so outputs and gradients must be equal exactly;
//  * masked_fill with bool and u8 masks (u8 values 0..2: any nonzero masks) broadcast in several ways,
//    values -inf, -1e9 and 0.5;
//  * the cast op between dtypes (exact), with NaNs from log of negatives.
// Directly: unaligned pointers (the scalar paths of the float4 kernels), dropout at 64-bit seeds and a
// Philox counter crossing 2^32, and gvm_cuda_cast against the CPU's cast bit for bit (NaN payloads, every
// f16 and bf16 pattern, saturation and ties), which the op-level comparison (as floats) cannot see.
//
// Tolerance: the harness's default rtol 1e-5 for f32 (the GPU ports the CPU's activation math and matches
// it bit for bit on an H100, but pow and log use CUDA's libm, and gradient sums over broadcast dims add in
// another order); exactly equal for dropout and casts.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu/elementwise.h"
#include "core/cpu/shape.h"
#include "tests/device_parity.h"
#include "tests/test_util.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/elementwise.h"
#include "core/cuda/runtime.h"

// rtol that only 0 difference meets: the harness allows rtol * (|cpu| + rms), and no two different floats
// are closer than 1e-45.
#define EXACT 1e-300

static parity_input f32_in(bool rg, int nd, const int64_t *shape, float lo, float hi) {
    parity_input in = {GVM_F32, nd, {0}, rg, lo, hi};
    for (int d = 0; d < nd; d++) in.shape[d] = shape[d];
    return in;
}

// ==== binary ops ============================================================================================

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_MUL_SELF, BIN_CHAIN };
static const char *const k_bin_names[] = {"add", "sub", "mul", "div"};

static gvm_tensor *build_binary(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    switch (*(const int *)arg) {
    case BIN_ADD: return gvm_add(ctx, in[0], in[1]);
    case BIN_SUB: return gvm_sub(ctx, in[0], in[1]);
    case BIN_MUL: return gvm_mul(ctx, in[0], in[1]);
    case BIN_DIV: return gvm_div(ctx, in[0], in[1]);
    case BIN_MUL_SELF: return gvm_mul(ctx, in[0], in[0]);              // both gradients land in one buffer
    default: return gvm_sub(ctx, gvm_mul(ctx, in[0], in[1]), in[0]);  // a*b - a: accumulation into ga
    }
}

typedef struct {
    const char *name;
    int na;
    int64_t a[GVM_MAX_DIMS];
    int nb;
    int64_t b[GVM_MAX_DIMS];
    bool ga, gb;  // which gradients are wanted
} bin_case;

static const bin_case k_bin_cases[] = {
    {"same", 2, {5, 7}, 2, {5, 7}, true, true},
    {"same 300x501", 2, {300, 501}, 2, {300, 501}, true, true},     // flat, float4 with a tail
    {"same a only", 2, {33, 17}, 2, {33, 17}, true, false},
    {"same b only", 1, {1001}, 1, {1001}, false, true},
    {"[6,5] x [1]", 2, {6, 5}, 1, {1}, true, true},                   // one value: a row sum with M = 1
    {"rank0 x [400,300]", 0, {0}, 2, {400, 300}, true, true},
    {"[3,1,5] x [4,1]", 3, {3, 1, 5}, 2, {4, 1}, true, true},        // both sides broadcast
    {"[1000,4097] x [4097]", 2, {1000, 4097}, 1, {4097}, true, true},  // bias: column sums over tiles
    {"bias narrow", 3, {40, 50, 100}, 1, {100}, true, true},           // column sums, sliced rows
    {"bias b only", 3, {40, 50, 100}, 1, {100}, false, true},
    {"bias many rows", 2, {70000, 5}, 1, {5}, true, true},            // 70000 reduced rows, narrow columns
    {"lead", 2, {1, 77}, 3, {30, 40, 77}, true, true},                // a is the small side
    {"rowscale", 2, {64, 3001}, 2, {64, 1}, true, true},              // row sums
    {"rowscale many rows", 2, {70000, 3}, 2, {70000, 1}, true, true},  // > 65535 row-sum blocks
    {"mid", 3, {8, 50, 300}, 2, {50, 1}, true, true},                 // kept middle dim, reduced inner runs
    {"inner kept", 3, {16, 40, 200}, 3, {16, 1, 200}, true, true},    // kept rows with a reduced middle dim
    {"both [40,1,300] x [1,50,1]", 3, {40, 1, 300}, 3, {1, 50, 1}, true, true},
    {"rank6", 6, {2, 1, 3, 1, 2, 2}, 6, {1, 2, 1, 3, 2, 1}, true, true},
    {"odd [7,1] x [1,9]", 2, {7, 1}, 2, {1, 9}, true, true},
    {"size1 dims", 4, {1, 3, 1, 2}, 3, {3, 1, 1}, true, true},
    {"[1] x [2000,3001]", 1, {1}, 2, {2000, 3001}, true, true},        // a 6M-term sum, sliced
    {"empty", 2, {0, 3}, 1, {3}, true, true},
};

static void test_binary(void) {
    for (size_t c = 0; c < sizeof k_bin_cases / sizeof k_bin_cases[0]; c++) {
        const bin_case *bc = &k_bin_cases[c];
        for (int op = BIN_ADD; op <= BIN_DIV; op++) {
            // The divisor stays in [0.5, 2): away from 0, where f32 itself loses the quotient's digits.
            float lo = op == BIN_DIV ? 0.5f : 0.0f, hi = op == BIN_DIV ? 2.0f : 0.0f;
            parity_input in[2] = {f32_in(bc->ga, bc->na, bc->a, 0.0f, 0.0f), f32_in(bc->gb, bc->nb, bc->b, lo, hi)};
            char name[128];
            snprintf(name, sizeof name, "%s %s", k_bin_names[op], bc->name);
            parity_check(name, build_binary, &op, 2, in, NULL);
        }
    }
    int op = BIN_MUL_SELF;
    parity_input self[1] = {PARITY_F32(true, 2, 33, 17)};
    parity_check("mul a * a", build_binary, &op, 1, self, NULL);
    op = BIN_CHAIN;
    parity_input chain[2] = {PARITY_F32(true, 2, 40, 50), PARITY_F32(true, 1, 50)};
    parity_check("a * b - a (bias)", build_binary, &op, 2, chain, NULL);
    parity_input chain_same[2] = {PARITY_F32(true, 2, 40, 50), PARITY_F32(true, 2, 40, 50)};
    parity_check("a * b - a (same)", build_binary, &op, 2, chain_same, NULL);
}

// ==== unary ops =============================================================================================

typedef struct {
    const char *op;
    float p;
    bool accumulate;  // out = f(x) + x: the kernel adds onto a gradient that already holds gy
} un_arg;

static gvm_tensor *apply_unary(gvm_ctx *ctx, gvm_tensor *x, const char *op, float p) {
    if (!strcmp(op, "add_scalar")) return gvm_add_scalar(ctx, x, p);
    if (!strcmp(op, "mul_scalar")) return gvm_mul_scalar(ctx, x, p);
    if (!strcmp(op, "pow")) return gvm_pow_scalar(ctx, x, p);
    if (!strcmp(op, "neg")) return gvm_neg(ctx, x);
    if (!strcmp(op, "exp")) return gvm_exp(ctx, x);
    if (!strcmp(op, "log")) return gvm_log(ctx, x);
    if (!strcmp(op, "sqrt")) return gvm_sqrt(ctx, x);
    if (!strcmp(op, "abs")) return gvm_abs(ctx, x);
    if (!strcmp(op, "gelu")) return gvm_gelu(ctx, x);
    if (!strcmp(op, "gelu_tanh")) return gvm_gelu_tanh(ctx, x);
    if (!strcmp(op, "relu")) return gvm_relu(ctx, x);
    if (!strcmp(op, "elu")) return gvm_elu(ctx, x, p);
    if (!strcmp(op, "silu")) return gvm_silu(ctx, x);
    if (!strcmp(op, "tanh")) return gvm_tanh(ctx, x);
    if (!strcmp(op, "sigmoid")) return gvm_sigmoid(ctx, x);
    gvm_fatal(__FILE__, __LINE__, "test: unknown unary op '%s'", op);
}

static gvm_tensor *build_unary(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const un_arg *u = arg;
    gvm_tensor *y = apply_unary(ctx, in[0], u->op, u->p);
    return u->accumulate ? gvm_add(ctx, y, in[0]) : y;
}

typedef struct {
    const char *op;
    float p;
    float lo, hi;  // input range (lo == hi: standard normal)
} un_case;

static const un_case k_un_cases[] = {
    {"add_scalar", 0.7f, 0, 0},
    {"mul_scalar", -1.3f, 0, 0},
    {"pow", 2.0f, 0, 0},          // the CPU's x * x form, negative bases included
    {"pow", 3.0f, 0, 0},          // integer exponent: negative bases are defined
    {"pow", 0.5f, 0.05f, 4.0f},   // the CPU's sqrt form
    {"pow", -1.5f, 0.05f, 4.0f},
    {"pow", 1.7f, 0.05f, 4.0f},
    {"pow", 0.0f, 0.05f, 4.0f},   // gradient exactly 0
    {"pow", -1.0f, 0.05f, 4.0f},
    {"neg", 0, 0, 0},
    {"exp", 0, 0, 0},
    {"exp", 0, -20.0f, 20.0f},
    {"log", 0, 0.01f, 100.0f},
    {"sqrt", 0, 0.01f, 100.0f},
    {"abs", 0, 0, 0},
    {"gelu", 0, 0, 0},
    {"gelu", 0, -8.0f, 8.0f},     // both cut-offs (-5.45 and -6) and the flat right tail
    {"gelu_tanh", 0, 0, 0},
    {"gelu_tanh", 0, -12.0f, 12.0f},
    {"relu", 0, 0, 0},
    {"elu", 1.0f, 0, 0},
    {"elu", 0.3f, 0, 0},
    {"elu", 1.0f, -20.0f, 5.0f},
    {"silu", 0, 0, 0},
    {"silu", 0, -100.0f, 100.0f},  // the clamps at -88 and 86
    {"tanh", 0, 0, 0},
    {"tanh", 0, -10.0f, 10.0f},
    {"sigmoid", 0, 0, 0},
    {"sigmoid", 0, -100.0f, 100.0f},
};

static void test_unary(void) {
    const int64_t sizes[][2] = {{1000, 37}, {1, 7}, {1, 1}};
    for (size_t c = 0; c < sizeof k_un_cases / sizeof k_un_cases[0]; c++) {
        const un_case *uc = &k_un_cases[c];
        un_arg arg = {uc->op, uc->p, false};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            parity_input in[1] = {f32_in(true, 2, sizes[s], uc->lo, uc->hi)};
            char name[128];
            snprintf(name, sizeof name, "%s p=%g [%g,%g) [%lld,%lld]", uc->op, (double)uc->p, (double)uc->lo,
                     (double)uc->hi, (long long)sizes[s][0], (long long)sizes[s][1]);
            parity_check(name, build_unary, &arg, 1, in, NULL);
        }
    }
    // Many blocks (and a tail after the float4 groups), and gradients that accumulate.
    const un_case big[] = {{"gelu", 0, 0, 0}, {"exp", 0, 0, 0}, {"silu", 0, -10.0f, 10.0f}, {"pow", 1.7f, 0.05f, 4.0f}};
    for (size_t c = 0; c < sizeof big / sizeof big[0]; c++) {
        un_arg arg = {big[c].op, big[c].p, false};
        parity_input in[1] = {f32_in(true, 1, (int64_t[]){1000003}, big[c].lo, big[c].hi)};
        char name[128];
        snprintf(name, sizeof name, "%s [1000003]", big[c].op);
        parity_check(name, build_unary, &arg, 1, in, NULL);
        arg.accumulate = true;
        snprintf(name, sizeof name, "%s(x) + x [333,7]", big[c].op);
        parity_input small[1] = {f32_in(true, 2, (int64_t[]){333, 7}, big[c].lo, big[c].hi)};
        parity_check(name, build_unary, &arg, 1, small, NULL);
    }
}

// ==== dropout ===============================================================================================

typedef struct {
    float p;
    float p2;  // > 0: a second dropout on the output (its Philox range starts past the first's)
} drop_arg;

static gvm_tensor *build_dropout(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const drop_arg *d = arg;
    gvm_tensor *y = gvm_dropout(ctx, in[0], d->p);
    return d->p2 > 0.0f ? gvm_dropout(ctx, y, d->p2) : y;
}

static void test_dropout(void) {
    // The mask must be the CPU's element for element, so outputs and gradients are equal exactly.
    parity_opts opts = {.training = true, .rtol = EXACT};
    const float ps[] = {0.1f, 0.5f};
    const int64_t sizes[] = {1, 7, 1000003};
    for (size_t i = 0; i < 2; i++) {
        for (size_t s = 0; s < 3; s++) {
            drop_arg arg = {ps[i], 0.0f};
            parity_input in[1] = {f32_in(true, 1, &sizes[s], 0.0f, 0.0f)};
            char name[96];
            snprintf(name, sizeof name, "dropout p=%g [%lld]", (double)ps[i], (long long)sizes[s]);
            parity_check(name, build_dropout, &arg, 1, in, &opts);
        }
    }
    drop_arg twice = {0.3f, 0.2f};
    parity_input in2[1] = {PARITY_F32(true, 3, 4, 33, 65)};
    parity_check("dropout twice [4,33,65]", build_dropout, &twice, 1, in2, &opts);
    drop_arg all = {1.0f, 0.0f};
    parity_input in7[1] = {PARITY_F32(true, 1, 7)};
    parity_check("dropout p=1 [7]", build_dropout, &all, 1, in7, &opts);
    opts.seed = 0x123456789abcdefULL;  // a key with both 32-bit halves set
    drop_arg half = {0.5f, 0.0f};
    parity_input in3[1] = {PARITY_F32(true, 2, 999, 1001)};
    parity_check("dropout p=0.5 64-bit seed [999,1001]", build_dropout, &half, 1, in3, &opts);
}

// ==== masked_fill ===========================================================================================

static gvm_tensor *build_masked_fill(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    return gvm_masked_fill(ctx, in[0], in[1], *(const float *)arg);
}

typedef struct {
    const char *name;
    int na;
    int64_t a[GVM_MAX_DIMS];
    gvm_dtype mask_dtype;
    int nm;
    int64_t m[GVM_MAX_DIMS];
    float value;
} mf_case;

static const mf_case k_mf_cases[] = {
    {"[2,3,4] mask [3,1] bool", 3, {2, 3, 4}, GVM_BOOL, 2, {3, 1}, -INFINITY},
    {"[2,3,4] mask [2,3,4] u8", 3, {2, 3, 4}, GVM_U8, 3, {2, 3, 4}, -1e9f},
    {"[2,3,4] mask [4] bool", 3, {2, 3, 4}, GVM_BOOL, 1, {4}, 0.5f},
    {"[2,3,4] mask [2,1,4] u8", 3, {2, 3, 4}, GVM_U8, 3, {2, 1, 4}, 0.5f},
    {"[5,6] mask rank0 bool", 2, {5, 6}, GVM_BOOL, 0, {0}, -1e9f},
    {"[1000,4097] mask [1000,1] bool", 2, {1000, 4097}, GVM_BOOL, 2, {1000, 1}, -INFINITY},
    {"[1000,4097] mask [4097] u8", 2, {1000, 4097}, GVM_U8, 1, {4097}, -1e9f},
    {"[8,4,64,64] mask [8,1,1,64] bool", 4, {8, 4, 64, 64}, GVM_BOOL, 4, {8, 1, 1, 64}, -INFINITY},
    {"[8,4,64,64] mask [64,64] bool", 4, {8, 4, 64, 64}, GVM_BOOL, 2, {64, 64}, -INFINITY},
    {"[0,5] mask [5] bool", 2, {0, 5}, GVM_BOOL, 1, {5}, 1.0f},
};

static void test_masked_fill(void) {
    for (size_t c = 0; c < sizeof k_mf_cases / sizeof k_mf_cases[0]; c++) {
        const mf_case *mc = &k_mf_cases[c];
        // u8 masks take 0, 1 and 2: every nonzero value masks.
        parity_input mask = {mc->mask_dtype, mc->nm, {0}, false, 0.0f, mc->mask_dtype == GVM_U8 ? 3.0f : 2.0f};
        for (int d = 0; d < mc->nm; d++) mask.shape[d] = mc->m[d];
        parity_input in[2] = {f32_in(true, mc->na, mc->a, 0.0f, 0.0f), mask};
        char name[128];
        snprintf(name, sizeof name, "masked_fill %s value %g", mc->name, (double)mc->value);
        parity_check(name, build_masked_fill, &mc->value, 2, in, NULL);
    }
}

// ==== direct kernel calls: unaligned pointers and dropout's counters ========================================

// A device copy of host[0..n) placed `offset` floats into its allocation (offset 1: not 16-byte aligned).
static float *dev_upload(const float *host, int64_t n, int offset) {
    float *base = gvm_cuda_malloc((size_t)(n + offset) * sizeof(float));
    gvm_cuda_memcpy_h2d(base + offset, host, (size_t)n * sizeof(float));
    return base + offset;
}

static void dev_download(float *host, const float *dev, int64_t n) {
    gvm_cuda_memcpy_d2h(host, dev, (size_t)n * sizeof(float));
}

static float *host_randn(uint64_t seed, int64_t n, float lo, float hi) {
    float *x = malloc((size_t)n * sizeof(float));
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    if (lo == hi)
        gvm_rng_normal(&rng, x, (size_t)n, 0.0f, 1.0f);
    else
        gvm_rng_uniform(&rng, x, (size_t)n, lo, hi);
    return x;
}

// |gpu - cpu| <= rtol * (|cpu| + rms(cpu)) everywhere (rtol 0: bit for bit).
static bool same_within(const char *name, const float *gpu, const float *cpu, int64_t n, double rtol) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)cpu[i] * cpu[i];
    double rms = sqrt(ss / (double)n);
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        bool ok = rtol == 0.0 ? memcmp(&gpu[i], &cpu[i], sizeof(float)) == 0
                              : fabs((double)gpu[i] - cpu[i]) <= rtol * (fabs((double)cpu[i]) + rms);
        if (!ok && bad++ == 0) first = i;
    }
    return test_check(bad == 0, name, "%lld of %lld elements differ; first at %lld: gpu %.9g cpu %.9g", (long long)bad,
                      (long long)n, (long long)first, first >= 0 ? gpu[first] : 0.0, first >= 0 ? cpu[first] : 0.0);
}

// Unary forward and backward with every pointer one float off alignment (x, y, gy, gx), n = 1001.
static void direct_unary_unaligned(gvm_unary_op op, float p, float lo, float hi, const char *name) {
    const int64_t n = 1001;
    float *x = host_randn(11, n, lo, hi), *gy = host_randn(12, n, 0, 0), *gx = host_randn(13, n, 0, 0);
    float *y = malloc((size_t)n * sizeof(float)), *got = malloc((size_t)n * sizeof(float));
    float *dx = dev_upload(x, n, 1), *dgy = dev_upload(gy, n, 1), *dgx = dev_upload(gx, n, 1);
    float *dy = dev_upload(x, n, 1);
    gvm_cpu_unary_fwd(op, x, y, n, p);
    gvm_cuda_unary_fwd(op, dx, dy, n, p);
    dev_download(got, dy, n);
    char label[96];
    snprintf(label, sizeof label, "unaligned %s fwd", name);
    same_within(label, got, y, n, 1e-5);
    gvm_cpu_unary_bwd(op, x, y, gy, gx, n, p);  // gx starts non-zero: accumulation
    gvm_cuda_unary_bwd(op, dx, dy, dgy, dgx, n, p);
    dev_download(got, dgx, n);
    snprintf(label, sizeof label, "unaligned %s bwd", name);
    same_within(label, got, gx, n, 1e-5);
    gvm_cuda_free(dx - 1);
    gvm_cuda_free(dy - 1);
    gvm_cuda_free(dgy - 1);
    gvm_cuda_free(dgx - 1);
    free(x), free(y), free(gy), free(gx), free(got);
}

// Binary on identical shapes with unaligned pointers: the flat kernels' scalar path; gradients accumulate.
static void direct_binary_unaligned(gvm_binary_op op) {
    const int64_t n = 1003;
    gvm_broadcast bc;
    const int64_t shape[1] = {n};
    const int64_t *shapes[2] = {shape, shape};
    gvm_broadcast_init(&bc, 2, (int[]){1, 1}, shapes);
    float *a = host_randn(21, n, 0, 0), *b = host_randn(22, n, 0.5f, 2.0f), *g = host_randn(23, n, 0, 0);
    float *ga = host_randn(24, n, 0, 0), *gb = host_randn(25, n, 0, 0);
    float *y = malloc((size_t)n * sizeof(float)), *got = malloc((size_t)n * sizeof(float));
    float *da = dev_upload(a, n, 1), *db = dev_upload(b, n, 1), *dg = dev_upload(g, n, 1);
    float *dga = dev_upload(ga, n, 1), *dgb = dev_upload(gb, n, 1), *dy = dev_upload(a, n, 1);
    gvm_cpu_binary_fwd(op, a, b, y, &bc);
    gvm_cuda_binary_fwd(op, da, db, dy, &bc);
    dev_download(got, dy, n);
    char label[64];
    snprintf(label, sizeof label, "unaligned %s fwd", k_bin_names[op]);
    same_within(label, got, y, n, 0.0);  // one IEEE operation per element: the same bits
    gvm_cpu_binary_bwd(op, a, b, g, ga, gb, &bc);
    gvm_cuda_binary_bwd(op, da, db, dg, dga, dgb, &bc);
    dev_download(got, dga, n);
    snprintf(label, sizeof label, "unaligned %s bwd a", k_bin_names[op]);
    same_within(label, got, ga, n, 1e-5);
    dev_download(got, dgb, n);
    snprintf(label, sizeof label, "unaligned %s bwd b", k_bin_names[op]);
    same_within(label, got, gb, n, 1e-5);
    float *ptrs[] = {da, db, dg, dga, dgb, dy};
    for (int i = 0; i < 6; i++) gvm_cuda_free(ptrs[i] - 1);
    free(a), free(b), free(g), free(ga), free(gb), free(y), free(got);
}

// Dropout at a given (seed, base), `offset` floats off alignment; outputs and accumulated gradients exact.
static void direct_dropout(uint64_t seed, uint64_t base, int64_t n, float p, int offset) {
    float *x = host_randn(31, n, 0, 0), *gx = host_randn(32, n, 0, 0);
    float *y = malloc((size_t)n * sizeof(float)), *got = malloc((size_t)n * sizeof(float));
    float *dx = dev_upload(x, n, offset), *dy = dev_upload(x, n, offset), *dgx = dev_upload(gx, n, offset);
    gvm_cpu_dropout_fwd(x, y, n, seed, base, p);
    gvm_cuda_dropout_fwd(dx, dy, n, seed, base, p);
    dev_download(got, dy, n);
    char label[128];
    snprintf(label, sizeof label, "dropout seed %#llx base %#llx n %lld p %g offset %d fwd", (unsigned long long)seed,
             (unsigned long long)base, (long long)n, (double)p, offset);
    same_within(label, got, y, n, 0.0);
    gvm_cpu_dropout_bwd(x, gx, n, seed, base, p);  // x as the upstream gradient
    gvm_cuda_dropout_bwd(dx, dgx, n, seed, base, p);
    dev_download(got, dgx, n);
    label[strlen(label) - 3] = '\0';
    strcat(label, "bwd");
    same_within(label, got, gx, n, 0.0);
    gvm_cuda_free(dx - offset);
    gvm_cuda_free(dy - offset);
    gvm_cuda_free(dgx - offset);
    free(x), free(gx), free(y), free(got);
}

// ==== casts =================================================================================================

// gvm_cuda_cast against the CPU's cast, byte for byte, from `src` (n values of `from`) to every dtype.
static void direct_cast_all(const void *src, gvm_dtype from, int64_t n, const char *what) {
    size_t ss = gvm_dtype_size(from);
    void *dsrc = gvm_cuda_malloc((size_t)n * ss);
    gvm_cuda_memcpy_h2d(dsrc, src, (size_t)n * ss);
    for (int to = 0; to < GVM_DTYPE_COUNT; to++) {
        size_t ds = gvm_dtype_size((gvm_dtype)to);
        void *cpu = calloc((size_t)n, ds), *gpu = calloc((size_t)n, ds);
        void *ddst = gvm_cuda_malloc((size_t)n * ds);
        gvm_cpu_cast_fwd(src, from, cpu, (gvm_dtype)to, n);
        gvm_cuda_cast(dsrc, from, ddst, (gvm_dtype)to, n);
        gvm_cuda_memcpy_d2h(gpu, ddst, (size_t)n * ds);
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < n; i++)
            if (memcmp((char *)cpu + i * ds, (char *)gpu + i * ds, ds) != 0 && bad++ == 0) first = i;
        char label[96];
        snprintf(label, sizeof label, "cast %s %s -> %s", what, gvm_dtype_name(from), gvm_dtype_name((gvm_dtype)to));
        uint64_t cb = 0, gb = 0;
        if (first >= 0) {
            memcpy(&cb, (char *)cpu + first * ds, ds);
            memcpy(&gb, (char *)gpu + first * ds, ds);
        }
        test_check(bad == 0, label, "%lld of %lld differ; first at %lld: cpu bits %#llx, gpu bits %#llx", (long long)bad,
                   (long long)n, (long long)first, (unsigned long long)cb, (unsigned long long)gb);
        gvm_cuda_free(ddst);
        free(cpu), free(gpu);
    }
    gvm_cuda_free(dsrc);
}

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_cast_direct(void) {
    // f32: specials, rounding ties and thresholds of every target, then random bit patterns (NaNs included).
    const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 0.7f, -0.7f,
                              65504.0f, 65519.99f, 65520.0f, 65536.0f, 1e5f, -1e5f, 5.9604645e-8f, 2.9802322e-8f,
                              2.98e-8f, 3.0e-8f, 8.940697e-8f, 6.1035156e-5f, 6.1e-5f, 1e-40f, -1e-40f, 3.4028235e38f,
                              -3.4028235e38f, INFINITY, -INFINITY, bits_f(0x7fc00000u), bits_f(0x7f800001u),
                              bits_f(0xffc12345u), bits_f(0x7fbfffffu), 255.0f, 255.5f, 256.0f, -0.99f, 127.5f,
                              32767.0f, 32767.9f, 32768.0f, -32768.0f, -32768.9f, -32769.0f, 2147483520.0f,
                              2147483648.0f, -2147483648.0f, -2147483904.0f, 3e9f, -3e9f, 9.2233715e18f, 9.223372e18f,
                              -9.223372e18f, -9.2233725e18f, 1e19f, -1e19f, bits_f(0x3f808000u), bits_f(0x3f818000u),
                              bits_f(0x3f800fffu), bits_f(0x3f801000u), bits_f(0x3f803000u), bits_f(0x7f7f8000u)};
    const int64_t n_spec = (int64_t)(sizeof specials / sizeof specials[0]);
    const int64_t n_f32 = n_spec + 8192;
    float *f = malloc((size_t)n_f32 * sizeof(float));
    memcpy(f, specials, sizeof specials);
    gvm_rng rng;
    gvm_rng_init(&rng, 77);
    for (int64_t i = n_spec; i < n_f32; i++) {
        uint32_t u = gvm_rng_u32(&rng);
        f[i] = bits_f(u);
        if (i % 3 == 0) f[i] = (float)((int32_t)u % 70000) * 1.5f;  // values in the integer targets' ranges
    }
    direct_cast_all(f, GVM_F32, n_f32, "specials");
    free(f);

    // Every f16 and bf16 pattern.
    uint16_t *h = malloc(65536 * sizeof(uint16_t));
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    direct_cast_all(h, GVM_F16, 65536, "all");
    direct_cast_all(h, GVM_BF16, 65536, "all");
    free(h);

    // Integers: extremes, and values that round on their way to float.
    const int64_t i64[] = {0, 1, -1, 2, 127, 128, 255, 256, -129, 32767, 32768, -32768, -32769, 65504, 65520, 70000,
                           2147483647LL, -2147483647LL - 1, 2147483648LL, 16777217LL, 16777219LL, -16777217LL,
                           (1LL << 53) + 1, -(1LL << 53) - 3, INT64_MAX, INT64_MIN, 4611686018427387905LL};
    direct_cast_all(i64, GVM_I64, (int64_t)(sizeof i64 / sizeof i64[0]), "extremes");
    const int32_t i32[] = {0, 1, -1, 255, 256, -300, 32767, 32768, -32769, 65519, 65520, 16777217, -16777217,
                           2147483647, -2147483647 - 1, 33554435};
    direct_cast_all(i32, GVM_I32, (int64_t)(sizeof i32 / sizeof i32[0]), "extremes");
    const int16_t i16[] = {0, 1, -1, 255, 256, -256, 32767, -32768, 2049, -2049, 4097};
    direct_cast_all(i16, GVM_I16, (int64_t)(sizeof i16 / sizeof i16[0]), "extremes");
    uint8_t u8[256];
    for (int i = 0; i < 256; i++) u8[i] = (uint8_t)i;
    direct_cast_all(u8, GVM_U8, 256, "all");
    direct_cast_all(u8, GVM_BOOL, 256, "all bytes");  // a bool byte other than 0/1 still reads as true
}

// Through the cast op (its CUDA slot is core/cuda/shape.cu's gvm_cuda_cast_fwd, which calls gvm_cuda_cast).
typedef struct {
    gvm_dtype to;
    bool via_log;   // cast log(x): NaN for x < 0, -inf at 0
    bool round_trip;  // cast to `to` and back to f32, with the gradient flowing through both
} cast_arg;

static gvm_tensor *build_cast(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const cast_arg *c = arg;
    gvm_tensor *x = c->via_log ? gvm_log(ctx, in[0]) : in[0];
    gvm_tensor *y = gvm_cast(ctx, x, c->to);
    return c->round_trip ? gvm_cast(ctx, y, GVM_F32) : y;
}

static void test_cast_op(void) {
    parity_opts exact = {.rtol = EXACT, .forward_only = true};
    const int64_t shape[2] = {100, 37};
    const struct {
        const char *name;
        parity_input in;
        bool via_log;
    } sources[] = {
        {"f32 normal", f32_in(false, 2, shape, 0, 0), false},
        {"f32 [-1e5,1e5)", f32_in(false, 2, shape, -1e5f, 1e5f), false},
        {"f32 [-1e-4,1e-4)", f32_in(false, 2, shape, -1e-4f, 1e-4f), false},  // f16 subnormals
        {"f32 log([-1,1))", f32_in(false, 2, shape, -1.0f, 1.0f), true},      // NaNs
        {"i32", PARITY_INT(GVM_I32, -100000, 100000, 2, 100, 37), false},
        {"i64", PARITY_INT(GVM_I64, -100000, 100000, 2, 100, 37), false},
        {"i16", PARITY_INT(GVM_I16, -32768, 32767, 2, 100, 37), false},
        {"u8", PARITY_INT(GVM_U8, 0, 256, 2, 100, 37), false},
        {"bool", PARITY_INT(GVM_BOOL, 0, 2, 2, 100, 37), false},
        {"f16", PARITY_INT(GVM_F16, -3000, 3000, 2, 100, 37), false},
        {"bf16", PARITY_INT(GVM_BF16, -3000, 3000, 2, 100, 37), false},
    };
    for (size_t s = 0; s < sizeof sources / sizeof sources[0]; s++) {
        for (int to = 0; to < GVM_DTYPE_COUNT; to++) {
            if ((gvm_dtype)to == sources[s].in.dtype) continue;
            cast_arg arg = {(gvm_dtype)to, sources[s].via_log, false};
            char name[96];
            snprintf(name, sizeof name, "cast op %s -> %s", sources[s].name, gvm_dtype_name((gvm_dtype)to));
            parity_check(name, build_cast, &arg, 1, &sources[s].in, &exact);
        }
    }
    // f32 -> bf16/f16 -> f32 with the gradient passing through (identity).
    parity_opts grad_exact = {.rtol = EXACT};
    const gvm_dtype halves[] = {GVM_BF16, GVM_F16};
    for (int k = 0; k < 2; k++) {
        cast_arg arg = {halves[k], false, true};
        parity_input in[1] = {PARITY_F32(true, 2, 100, 37)};
        char name[64];
        snprintf(name, sizeof name, "cast op f32 -> %s -> f32, gradient", gvm_dtype_name(halves[k]));
        parity_check(name, build_cast, &arg, 1, in, &grad_exact);
    }
}
#endif

int main(int argc, char **argv) {
    parity_init(argc, argv);  // exits 77 (SKIPPED) without a usable GPU
#ifdef GVM_HAVE_CUDA
    test_init(argc, argv);
    test_binary();
    test_unary();
    test_dropout();
    test_masked_fill();

    direct_unary_unaligned(GVM_UNARY_GELU, 0.0f, 0.0f, 0.0f, "gelu");
    direct_unary_unaligned(GVM_UNARY_EXP, 0.0f, 0.0f, 0.0f, "exp");
    direct_unary_unaligned(GVM_UNARY_POW, 1.7f, 0.05f, 4.0f, "pow 1.7");
    direct_unary_unaligned(GVM_UNARY_SILU, 0.0f, -10.0f, 10.0f, "silu");
    for (int op = GVM_BINARY_ADD; op <= GVM_BINARY_DIV; op++) direct_binary_unaligned((gvm_binary_op)op);
    direct_dropout(1234, 0, 1001, 0.3f, 1);
    direct_dropout(0x9e3779b97f4a7c15ULL, 12345, 4099, 0.5f, 0);
    direct_dropout(0xffffffff00000001ULL, 0xfffffff0ULL, 1000, 0.1f, 0);  // counter crosses 2^32
    direct_dropout(42, 0xfffffffffffffff0ULL, 100, 0.5f, 3);               // counter wraps 2^64
    test_cast_direct();

    // Last: the cast op needs core/cuda/shape.cu's cast kernel registered.
    test_cast_op();

    int parity_rc = parity_finish();
    int direct_rc = test_finish();
    return parity_rc || direct_rc ? 1 : 0;
#else
    printf("SKIPPED: built without CUDA\n");
    return 77;
#endif
}
