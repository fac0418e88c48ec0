// test_cuda_reduce_softmax.c: the CUDA reduction, softmax and loss kernels against the CPU reference,
// forward and backward:
//  * sum / mean / max over every axis (negative axes, GVM_AXIS_ALL, keepdim both ways), size-1 dims, odd
//    sizes, short and long rows (warp, block and split-row paths), middle axes (column tiles, split columns),
//    full reductions of 3,000,001 elements (two-pass), more than 65535 rows, and the empty axis;
//  * max with ties: inputs with few distinct values (a range of a few ulps, and round(x) with x's gradient
//    built inside the op), so the first-maximum rule shows in the gradient, also across split segments; NaN;
//  * mean_pool without a mask, with u8 / bool masks (random and fixed), fully masked rows;
//  * softmax / log_softmax over the last and middle axes, rows of 1, 33, 1000, 5000, 50000, logits up to
//    +-80, more than 65535 rows;
//  * cross_entropy with i32 and i64 targets, ignore_index present / absent / every row, C = 5, 2048, 5000,
//    N = 1 and 3000;
//  * mse_loss and l1_loss with large n, equal elements (l1's sign(0) = 0), only one input wanting a gradient.
// Every case runs at the default tolerance (rtol 1e-5).
#include <stdio.h>
#include <string.h>

#include "core/gvm.h"
#include "tests/device_parity.h"

// One tensor on each device (fixed masks and targets that random inputs cannot give).
typedef struct {
    gvm_tensor *cpu, *gpu;
} dev_pair;

static dev_pair dev_pair_of(gvm_tensor *host) {
    dev_pair p = {host, gvm_tensor_to(host, GVM_DEVICE_CUDA)};
    return p;
}

static gvm_tensor *pick(const dev_pair *p, const gvm_ctx *ctx) {
    return ctx->device == GVM_DEVICE_CPU ? p->cpu : p->gpu;
}

static void dev_pair_free(dev_pair *p) {
    gvm_tensor_free(p->gpu);
    gvm_tensor_free(p->cpu);
}

static const char *shape_name(int ndim, const int64_t *shape, char *buf, size_t size) {
    return gvm_shape_str(ndim, shape, buf, size);
}

// ---- sum / mean / max --------------------------------------------------------------------------------------

enum { OP_SUM = 1, OP_MEAN = 2, OP_MAX = 4, OP_ALL3 = 7 };
enum { IN_NORMAL, IN_TIES, IN_ROUND, IN_NAN };

typedef struct {
    int op, axis, keepdim, input;
} reduce_arg;

// round(x) carrying x's gradient: x + (round(x) - x), the bracket taken without grad. round is
// (x + 1.5 * 2^23) - 1.5 * 2^23 (f32 round-to-nearest-even, exact for |x| < 2^22), and round(x) - x is exact
// (Sterbenz), so the sum is round(x) exactly: few distinct values, and max's backward shows which of the
// tied elements received the gradient.
static gvm_tensor *round_with_grad(gvm_ctx *ctx, gvm_tensor *x) {
    gvm_no_grad_begin(ctx);
    gvm_tensor *r = gvm_add_scalar(ctx, gvm_add_scalar(ctx, x, 12582912.0f), -12582912.0f);
    gvm_tensor *d = gvm_sub(ctx, r, x);
    gvm_no_grad_end(ctx);
    return gvm_add(ctx, x, d);
}

static gvm_tensor *build_reduce(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const reduce_arg *a = arg;
    gvm_tensor *x = in[0];
    if (a->input == IN_ROUND) x = round_with_grad(ctx, x);
    if (a->input == IN_NAN) x = gvm_log(ctx, x);  // NaN where x < 0
    if (a->op == OP_SUM) return gvm_sum(ctx, x, a->axis, a->keepdim);
    if (a->op == OP_MEAN) return gvm_mean(ctx, x, a->axis, a->keepdim);
    return gvm_max(ctx, x, a->axis, a->keepdim);
}

// Runs each op of `ops` (OP_* bits) over x of `shape`.
static void reduce_case(int ops, int ndim, const int64_t *shape, int axis, int keepdim, int input) {
    parity_input in;
    if (input == IN_TIES)  // [1, 1 + 4 ulp): five distinct values
        in = PARITY_F32_RANGE(true, 1.0f, 1.0000005f, 1, 1);
    else if (input == IN_ROUND)  // rounds to -3..3
        in = PARITY_F32_RANGE(true, -3.4f, 3.4f, 1, 1);
    else if (input == IN_NAN)  // log of x: NaN for about one element in six
        in = PARITY_F32_RANGE(true, -0.2f, 1.0f, 1, 1);
    else
        in = PARITY_F32(true, 1, 1);
    in.ndim = ndim;
    for (int i = 0; i < ndim; i++) in.shape[i] = shape[i];
    static const char *const input_names[] = {"", " ties", " round(x)", " log(x) NaN"};
    char sh[96], name[200], ax[24];
    if (axis == GVM_AXIS_ALL)
        snprintf(ax, sizeof ax, "all");
    else
        snprintf(ax, sizeof ax, "%d", axis);
    for (int op = OP_SUM; op <= OP_MAX; op <<= 1) {
        if (!(ops & op)) continue;
        snprintf(name, sizeof name, "%s %s axis %s keepdim %d%s", op == OP_SUM ? "sum" : op == OP_MEAN ? "mean" : "max",
                 shape_name(ndim, shape, sh, sizeof sh), ax, keepdim, input_names[input]);
        reduce_arg a = {op, axis, keepdim, input};
        parity_check(name, build_reduce, &a, 1, &in, NULL);
    }
}

#define SHAPE(...) (const int64_t[]){__VA_ARGS__}

static void test_reductions(void) {
    const int ALL = GVM_AXIS_ALL;
    // Small shapes over every axis, both keepdims.
    const int64_t s357[] = {3, 5, 7};
    for (int axis = -3; axis < 3; axis++) reduce_case(OP_ALL3, 3, s357, axis, axis & 1, IN_NORMAL);
    reduce_case(OP_ALL3, 3, s357, 1, 1, IN_NORMAL);
    reduce_case(OP_ALL3, 3, s357, ALL, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 3, s357, ALL, 1, IN_NORMAL);
    reduce_case(OP_ALL3, 3, SHAPE(4, 1, 6), 1, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 2, SHAPE(1, 9), 0, 1, IN_NORMAL);
    reduce_case(OP_ALL3, 1, SHAPE(13), 0, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 1, SHAPE(1), ALL, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 4, SHAPE(2, 3, 1, 5), -2, 1, IN_NORMAL);
    reduce_case(OP_ALL3, 3, SHAPE(2, 1, 3), ALL, 1, IN_NORMAL);
    reduce_case(OP_ALL3, 2, SHAPE(3, 300), 0, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 2, SHAPE(2, 260), 1, 0, IN_NORMAL);
    // Rows (inner == 1): warp rows (<= 1024), block rows, split long rows.
    reduce_case(OP_ALL3, 2, SHAPE(64, 1024), 1, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 2, SHAPE(300, 2000), -1, 1, IN_NORMAL);
    reduce_case(OP_ALL3, 2, SHAPE(5, 20001), 1, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 2, SHAPE(3, 100000), 1, 0, IN_NORMAL);
    // Full reductions (two passes).
    reduce_case(OP_ALL3, 1, SHAPE(3000001), ALL, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 3, SHAPE(7, 1001, 433), ALL, 1, IN_NORMAL);
    reduce_case(OP_ALL3, 2, SHAPE(1, 4097), ALL, 0, IN_NORMAL);
    // Columns (inner > 1): narrow and wide tiles, split columns.
    reduce_case(OP_ALL3, 3, SHAPE(4, 33, 2), 1, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 3, SHAPE(3, 77, 100), 1, 1, IN_NORMAL);
    reduce_case(OP_ALL3, 2, SHAPE(200001, 3), 0, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 3, SHAPE(2, 50000, 64), 1, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 3, SHAPE(2, 3000, 1000), 0, 0, IN_NORMAL);
    // More than 65535 rows or column tiles.
    reduce_case(OP_ALL3, 2, SHAPE(70000, 5), 1, 0, IN_NORMAL);
    reduce_case(OP_ALL3, 3, SHAPE(70000, 3, 4), 1, 1, IN_NORMAL);
    reduce_case(OP_ALL3, 2, SHAPE(70001, 7), 0, 0, IN_NORMAL);
    // max with ties (few distinct values): the FIRST maximum takes the gradient, in every loop shape.
    reduce_case(OP_MAX, 3, s357, 0, 0, IN_TIES);
    reduce_case(OP_MAX, 3, s357, 1, 0, IN_TIES);
    reduce_case(OP_MAX, 3, s357, 2, 0, IN_TIES);
    reduce_case(OP_MAX, 3, s357, ALL, 0, IN_TIES);
    reduce_case(OP_MAX, 2, SHAPE(300, 2000), 1, 0, IN_TIES);
    reduce_case(OP_MAX, 2, SHAPE(3, 100000), 1, 0, IN_TIES);
    reduce_case(OP_MAX, 1, SHAPE(3000001), ALL, 0, IN_TIES);
    reduce_case(OP_MAX, 2, SHAPE(200001, 3), 0, 0, IN_TIES);
    reduce_case(OP_MAX, 3, SHAPE(2, 50000, 64), 1, 0, IN_TIES);
    reduce_case(OP_MAX, 3, SHAPE(70000, 3, 4), 1, 0, IN_TIES);
}

// Cases that build on other kernels (elementwise add/sub/log on CUDA): round(x) ties, NaN, the empty axis.
static void test_reductions_composed(void) {
    reduce_case(OP_MAX, 3, SHAPE(3, 5, 7), 1, 0, IN_ROUND);
    reduce_case(OP_MAX, 3, SHAPE(3, 5, 7), 0, 1, IN_ROUND);
    reduce_case(OP_MAX, 2, SHAPE(64, 1000), 1, 0, IN_ROUND);
    reduce_case(OP_MAX, 1, SHAPE(3000001), GVM_AXIS_ALL, 0, IN_ROUND);
    reduce_case(OP_MAX | OP_SUM, 3, SHAPE(4, 5000, 3), 1, 0, IN_ROUND);
    reduce_case(OP_MAX, 2, SHAPE(16, 40), 1, 0, IN_NAN);
    reduce_case(OP_MAX, 2, SHAPE(40, 16), 0, 0, IN_NAN);
    reduce_case(OP_MAX, 1, SHAPE(100000), GVM_AXIS_ALL, 0, IN_NAN);
    // Sum / mean over an empty axis: 0 and NaN.
    reduce_case(OP_SUM | OP_MEAN, 2, SHAPE(3, 0), 1, 0, IN_NORMAL);
    reduce_case(OP_SUM | OP_MEAN, 3, SHAPE(3, 0, 4), 1, 0, IN_NORMAL);
}

// ---- mean_pool -----------------------------------------------------------------------------------------------

typedef struct {
    int axis;
    const dev_pair *mask;  // fixed mask (NULL: in[1] when given, else none)
    int mask_input;        // in[1] is the mask
} pool_arg;

static gvm_tensor *build_pool(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const pool_arg *a = arg;
    gvm_tensor *mask = a->mask ? pick(a->mask, ctx) : a->mask_input ? in[1] : NULL;
    return gvm_mean_pool(ctx, in[0], a->axis, mask);
}

// Mask tensor from a '0'/'1' pattern.
static gvm_tensor *mask_from(gvm_dtype dtype, int ndim, const int64_t *shape, const char *bits) {
    gvm_tensor *m = gvm_tensor_new(dtype, ndim, shape);
    uint8_t *d = gvm_tensor_u8(m);
    for (int64_t i = 0; i < m->numel; i++) d[i] = bits[i] == '1';
    return m;
}

static void pool_fixed(const char *name, int ndim, const int64_t *shape, int axis, gvm_dtype dtype,
                       const int64_t *mshape, const char *bits) {
    dev_pair m = dev_pair_of(mask_from(dtype, axis + 1, mshape, bits));
    parity_input in = PARITY_F32(true, 1, 1);
    in.ndim = ndim;
    memcpy(in.shape, shape, (size_t)ndim * sizeof(int64_t));
    pool_arg a = {axis, &m, 0};
    parity_check(name, build_pool, &a, 1, &in, NULL);
    dev_pair_free(&m);
}

static void test_mean_pool(void) {
    // Fixed masks with fully masked rows (their output is 0 and they get no gradient).
    pool_fixed("mean_pool [3,4,5] axis 1 bool mask, row 1 fully masked", 3, SHAPE(3, 4, 5), 1, GVM_BOOL, SHAPE(3, 4),
               "101100001111");
    pool_fixed("mean_pool [5,3] axis 0 u8 mask", 2, SHAPE(5, 3), 0, GVM_U8, SHAPE(5), "01101");
    pool_fixed("mean_pool [2,3,4] axis -1 -> 2 (rows fully masked)", 3, SHAPE(2, 3, 4), 2, GVM_BOOL, SHAPE(2, 3, 4),
               "100100000000111101011000");
    pool_fixed("mean_pool [4,3] axis 0 all masked", 2, SHAPE(4, 3), 0, GVM_U8, SHAPE(4), "0000");
    {
        // A long row (block path) whose mask is all zeros but one element at the end, and a fully masked row.
        static char bits[2 * 5000 + 1];
        memset(bits, '0', 2 * 5000);
        bits[4999] = '1';
        pool_fixed("mean_pool [2,5000] axis 1 one valid / none", 2, SHAPE(2, 5000), 1, GVM_U8, SHAPE(2, 5000), bits);
    }
    // No mask.
    pool_arg plain1 = {1, NULL, 0}, plain0 = {0, NULL, 0};
    parity_check("mean_pool [3,4,5] axis 1 no mask", build_pool, &plain1, 1, &PARITY_F32(true, 3, 3, 4, 5), NULL);
    parity_check("mean_pool [8,3000,64] axis 1 no mask", build_pool, &plain1, 1, &PARITY_F32(true, 3, 8, 3000, 64),
                 NULL);
    parity_check("mean_pool [4,5000] axis 1 no mask", build_pool, &plain1, 1, &PARITY_F32(true, 2, 4, 5000), NULL);
    parity_check("mean_pool [100001,3] axis 0 no mask", build_pool, &plain0, 1, &PARITY_F32(true, 2, 100001, 3),
                 NULL);
    // Random masks as inputs (u8 and bool): row, column and split-column paths; > 65535 rows with many fully
    // masked ones ([70000, 6] masks: one row in 64 is all zeros).
    pool_arg masked1 = {1, NULL, 1}, masked0 = {0, NULL, 1};
    parity_input a[2];
    a[0] = PARITY_F32(true, 3, 8, 3000, 64);
    a[1] = PARITY_INT(GVM_U8, 0, 2, 2, 8, 3000);
    parity_check("mean_pool [8,3000,64] axis 1 random u8 mask", build_pool, &masked1, 2, a, NULL);
    a[0] = PARITY_F32(true, 2, 4, 5000);
    a[1] = PARITY_INT(GVM_BOOL, 0, 2, 2, 4, 5000);
    parity_check("mean_pool [4,5000] axis 1 random bool mask", build_pool, &masked1, 2, a, NULL);
    a[0] = PARITY_F32(true, 2, 64, 700);
    a[1] = PARITY_INT(GVM_U8, 0, 2, 2, 64, 700);
    parity_check("mean_pool [64,700] axis 1 random u8 mask (warp rows)", build_pool, &masked1, 2, a, NULL);
    a[0] = PARITY_F32(true, 3, 70000, 6, 3);
    a[1] = PARITY_INT(GVM_U8, 0, 2, 2, 70000, 6);
    parity_check("mean_pool [70000,6,3] axis 1 random u8 mask", build_pool, &masked1, 2, a, NULL);
    a[0] = PARITY_F32(true, 2, 100001, 3);
    a[1] = PARITY_INT(GVM_U8, 0, 2, 1, 100001);
    parity_check("mean_pool [100001,3] axis 0 random u8 mask", build_pool, &masked0, 2, a, NULL);
}

// ---- softmax / log_softmax -----------------------------------------------------------------------------------

typedef struct {
    int axis, log;
} softmax_arg;

static gvm_tensor *build_softmax(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const softmax_arg *a = arg;
    return a->log ? gvm_log_softmax(ctx, in[0], a->axis) : gvm_softmax(ctx, in[0], a->axis);
}

// Both softmax and log_softmax of x [shape] over `axis`; `range` > 0: logits uniform in [-range, range).
static void softmax_case(int ndim, const int64_t *shape, int axis, float range) {
    parity_input in = range > 0 ? PARITY_F32_RANGE(true, -range, range, 1, 1) : PARITY_F32(true, 1, 1);
    in.ndim = ndim;
    memcpy(in.shape, shape, (size_t)ndim * sizeof(int64_t));
    char sh[96], name[200];
    for (int log = 0; log < 2; log++) {
        snprintf(name, sizeof name, "%s %s axis %d%s", log ? "log_softmax" : "softmax",
                 shape_name(ndim, shape, sh, sizeof sh), axis, range > 0 ? " large logits" : "");
        softmax_arg a = {axis, log};
        parity_check(name, build_softmax, &a, 1, &in, NULL);
    }
}

static void test_softmax(void) {
    // Last axis: rows of 1, 33, 1000 (warp), 5000 (block of 256), 50000 (block of 1024).
    softmax_case(2, SHAPE(7, 1), -1, 0);
    softmax_case(2, SHAPE(5, 33), -1, 0);
    softmax_case(2, SHAPE(5, 33), 1, 80);
    softmax_case(3, SHAPE(4, 16, 1000), -1, 0);
    softmax_case(2, SHAPE(64, 1000), 1, 80);
    softmax_case(2, SHAPE(2, 1025), 1, 0);
    softmax_case(2, SHAPE(9, 5000), 1, 80);
    softmax_case(2, SHAPE(3, 50000), -1, 0);
    softmax_case(2, SHAPE(3, 50000), -1, 80);
    softmax_case(2, SHAPE(1, 2048), -1, 0);
    softmax_case(2, SHAPE(70000, 33), -1, 0);  // more than 65535 rows
    // Middle axes (inner > 1): tiles of 2..32 columns, several tiles, n = 1, long n.
    softmax_case(3, SHAPE(4, 33, 5), 1, 0);
    softmax_case(3, SHAPE(4, 33, 5), 1, 80);
    softmax_case(2, SHAPE(33, 8), 0, 0);
    softmax_case(3, SHAPE(2, 1, 9), 1, 0);
    softmax_case(3, SHAPE(3, 1000, 17), 1, 80);
    softmax_case(3, SHAPE(2, 64, 100), 1, 0);
    softmax_case(4, SHAPE(2, 3, 4, 5), -3, 0);
    softmax_case(3, SHAPE(2, 50000, 3), 1, 80);
    softmax_case(3, SHAPE(70000, 2, 2), 1, 0);  // more than 65535 column tiles
}

// ---- cross-entropy -------------------------------------------------------------------------------------------

typedef struct {
    int64_t ignore_index;
    const dev_pair *targets;  // fixed targets (NULL: in[1])
} ce_arg;

static gvm_tensor *build_ce(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const ce_arg *a = arg;
    return gvm_cross_entropy(ctx, in[0], a->targets ? pick(a->targets, ctx) : in[1], a->ignore_index);
}

// Targets [N] in 0..C-1 (a fixed pseudo-random pattern), every `every`-th (every > 0) set to ignore_index.
static gvm_tensor *make_targets(gvm_dtype dtype, int64_t N, int64_t C, int64_t ignore_index, int every) {
    gvm_tensor *t = gvm_tensor_new(dtype, 1, (int64_t[]){N});
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < N; i++) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        int64_t v = every > 0 && i % every == every - 1 ? ignore_index : (int64_t)((h >> 33) % (uint64_t)C);
        if (dtype == GVM_I32)
            gvm_tensor_i32(t)[i] = (int32_t)v;
        else
            gvm_tensor_i64(t)[i] = v;
    }
    return t;
}

static void ce_fixed(gvm_dtype dtype, int64_t N, int64_t C, int64_t ignore_index, int every, float range) {
    dev_pair t = dev_pair_of(make_targets(dtype, N, C, ignore_index, every));
    parity_input in = range > 0 ? PARITY_F32_RANGE(true, -range, range, 2, N, C) : PARITY_F32(true, 2, N, C);
    char name[200];
    snprintf(name, sizeof name, "cross_entropy N=%lld C=%lld %s targets, ignore_index %lld %s%s", (long long)N,
             (long long)C, dtype == GVM_I32 ? "i32" : "i64", (long long)ignore_index,
             every == 1 ? "(every row)" : every > 0 ? "(present)" : "(absent)", range > 0 ? ", large logits" : "");
    ce_arg a = {ignore_index, &t};
    parity_check(name, build_ce, &a, 1, &in, NULL);
    dev_pair_free(&t);
}

static void test_cross_entropy(void) {
    // The LM's shape: 2048-way codebooks.
    ce_fixed(GVM_I64, 3000, 2048, -100, 7, 0);
    ce_fixed(GVM_I32, 3000, 2048, -100, 7, 0);
    ce_fixed(GVM_I32, 3000, 2048, -100, 0, 30);
    ce_fixed(GVM_I64, 1, 2048, -100, 0, 0);
    ce_fixed(GVM_I32, 1, 2048, -100, 0, 0);
    // Few classes; one row; wide rows (a block per row); every row ignored (loss 0, no gradient).
    ce_fixed(GVM_I64, 3000, 5, -100, 3, 0);
    ce_fixed(GVM_I32, 1, 5, -100, 0, 0);
    ce_fixed(GVM_I64, 1, 5, 7, 1, 0);
    ce_fixed(GVM_I32, 40, 5000, -100, 4, 10);
    ce_fixed(GVM_I64, 4, 6, 7, 1, 0);
    ce_fixed(GVM_I32, 70000, 5, -1, 9, 0);  // more than 65535 rows
    // Targets as random inputs: ignore_index -1 inside the drawn range [-1, C), and a real class (0) as
    // ignore_index.
    parity_input in[2];
    ce_arg rnd = {-1, NULL};
    in[0] = PARITY_F32(true, 2, 3000, 5);
    in[1] = PARITY_INT(GVM_I64, -1, 5, 1, 3000);
    parity_check("cross_entropy N=3000 C=5 random i64 targets, ignore_index -1", build_ce, &rnd, 2, in, NULL);
    in[0] = PARITY_F32(true, 2, 3000, 2048);
    in[1] = PARITY_INT(GVM_I32, -1, 2048, 1, 3000);
    parity_check("cross_entropy N=3000 C=2048 random i32 targets, ignore_index -1", build_ce, &rnd, 2, in, NULL);
    ce_arg zero = {0, NULL};
    in[0] = PARITY_F32(true, 2, 500, 5);
    in[1] = PARITY_INT(GVM_I32, 0, 5, 1, 500);
    parity_check("cross_entropy N=500 C=5 random i32 targets, ignore_index 0 (a class)", build_ce, &zero, 2, in, NULL);
}

// ---- MSE and L1 --------------------------------------------------------------------------------------------

static gvm_tensor *build_mse(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    (void)arg;
    return gvm_mse_loss(ctx, in[0], in[1]);
}

static gvm_tensor *build_l1(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    (void)arg;
    return gvm_l1_loss(ctx, in[0], in[1]);
}

static void pair_case(const char *what, parity_input a, parity_input b) {
    parity_input in[2] = {a, b};
    char name[200];
    snprintf(name, sizeof name, "mse_loss %s", what);
    parity_check(name, build_mse, NULL, 2, in, NULL);
    snprintf(name, sizeof name, "l1_loss %s", what);
    parity_check(name, build_l1, NULL, 2, in, NULL);
}

static void test_pair_losses(void) {
    pair_case("[1]", PARITY_F32(true, 1, 1), PARITY_F32(true, 1, 1));
    pair_case("[3,7]", PARITY_F32(true, 2, 3, 7), PARITY_F32(true, 2, 3, 7));
    pair_case("[3,7] only a wants grad", PARITY_F32(true, 2, 3, 7), PARITY_F32(false, 2, 3, 7));
    pair_case("[3,7] only b wants grad", PARITY_F32(false, 2, 3, 7), PARITY_F32(true, 2, 3, 7));
    pair_case("[1000,1001]", PARITY_F32(true, 2, 1000, 1001), PARITY_F32(true, 2, 1000, 1001));
    pair_case("[3000001]", PARITY_F32(true, 1, 3000001), PARITY_F32(true, 1, 3000001));
    // Values a few ulps apart: many a == b, where l1's gradient is 0.
    pair_case("[100003] with equal elements", PARITY_F32_RANGE(true, 1.0f, 1.0000005f, 1, 100003),
              PARITY_F32_RANGE(true, 1.0f, 1.0000005f, 1, 100003));
}

int main(int argc, char **argv) {
    parity_init(argc, argv);
    test_reductions();
    test_mean_pool();
    test_softmax();
    test_cross_entropy();
    test_pair_losses();
    test_reductions_composed();  // last: it also needs the elementwise CUDA kernels
    return parity_finish();
}
