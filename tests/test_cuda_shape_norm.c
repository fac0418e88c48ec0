// test_cuda_shape_norm.c: the CUDA shape, index, cast and normalisation kernels against the CPU reference
// (tests/device_parity.h), forward and backward.
//
// Shape: permute with many perms on 2-6 dims (the rows path, the tiled transpose, size-1 dims, the identity,
// a single element), on bf16 data (2-byte words, through casts) and on i64/u8 data (forward only), transpose,
// reshape, contiguous (also of an unaligned slice view), slice along the first/middle/last axis, concat of
// 3 parts along each axis, split with an unused part.
// Index: index_select along each axis with i32 and i64 indices and repeats (few indices: the per-column
// backward; many: the sorted backward), gather along each axis (smaller idx dims, repeats), embedding
// V 2048 x D 1024 with 3000 indices drawn from 300 rows (many repeats) and small ones.
// Cast between f32/f16/bf16/i32/i64, compared exactly (also f16 overflow to inf, subnormals, and integer
// saturation).
// Norm: layer_norm with and without weight/bias, D = 1, 7, 64, 1024, 4097, rows up to 70000, a large common
// offset, x without gradient; rms_norm likewise; l2_normalize over every axis (rows, columns, long axes,
// norms below eps); cosine_similarity over every axis (one input without gradient); weight_norm.
// The scatter-adds and the norm column sums are also run twice on the GPU and must be bit-identical.
// An index outside its axis (index_select, embedding, gather; too large and negative) must stop the program:
// each such case runs in a child process forked before this one touches CUDA (a CUDA context does not
// survive fork), and must not exit normally.
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/device_parity.h"

// Exact comparison of f32 results that only move or round values (casts): no arithmetic, so no tolerance.
#define EXACT_RTOL 1e-300

static int g_det_failed;

// ---- determinism ---------------------------------------------------------------------------------------------------

// Runs the case on the GPU twice (same inputs and upstream gradient); outputs and gradients must be identical.
static void determinism_check(const char *name, parity_build_fn build, const void *arg, int n_in,
                              const parity_input *inputs) {
    if (!parity_check_deterministic(name, build, arg, n_in, inputs, NULL)) g_det_failed++;
}

// ---- permute / transpose ------------------------------------------------------------------------------------------

typedef struct perm_arg {
    int perm[GVM_MAX_DIMS];
    gvm_dtype via;  // GVM_F32: permute the input as it is; GVM_BF16: cast to bf16, permute, cast back
} perm_arg;

static gvm_tensor *build_permute(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const perm_arg *a = arg;
    if (a->via == GVM_BF16) return gvm_cast(ctx, gvm_permute(ctx, gvm_cast(ctx, in[0], GVM_BF16), a->perm), GVM_F32);
    return gvm_permute(ctx, in[0], a->perm);
}

// Permute of `x` (any dtype: non-f32 inputs run forward only) with perm p0.. (ndim entries).
static void permute_case(parity_input x, gvm_dtype via, const int *perm) {
    perm_arg a = {{0}, via};
    char name[160], ps[64] = "", ss[64] = "";
    for (int i = 0; i < x.ndim; i++) {
        a.perm[i] = perm[i];
        snprintf(ps + strlen(ps), sizeof ps - strlen(ps), "%s%d", i ? "," : "", perm[i]);
        snprintf(ss + strlen(ss), sizeof ss - strlen(ss), "%s%lld", i ? "x" : "", (long long)x.shape[i]);
    }
    snprintf(name, sizeof name, "permute %s %s [%s]%s", gvm_dtype_name(x.dtype), ss, ps,
             via == GVM_BF16 ? " via bf16" : "");
    parity_opts o = {.rtol = via == GVM_BF16 || x.dtype != GVM_F32 ? EXACT_RTOL : 0};
    parity_check(name, build_permute, &a, 1, &x, &o);
}

static void permute_cases(void) {
    permute_case(PARITY_F32(true, 2, 33, 47), GVM_F32, (int[]){1, 0});
    permute_case(PARITY_F32(true, 2, 1024, 1000), GVM_F32, (int[]){1, 0});
    permute_case(PARITY_F32(true, 2, 3, 70001), GVM_F32, (int[]){1, 0});  // a narrow transposed dim
    permute_case(PARITY_F32(true, 3, 5, 7, 9), GVM_F32, (int[]){0, 2, 1});
    permute_case(PARITY_F32(true, 3, 5, 7, 9), GVM_F32, (int[]){2, 0, 1});
    permute_case(PARITY_F32(true, 3, 5, 7, 9), GVM_F32, (int[]){1, 0, 2});
    permute_case(PARITY_F32(true, 3, 5, 7, 9), GVM_F32, (int[]){1, 2, 0});
    permute_case(PARITY_F32(true, 3, 5, 7, 9), GVM_F32, (int[]){2, 1, 0});
    permute_case(PARITY_F32(true, 3, 4, 5, 6), GVM_F32, (int[]){0, 1, 2});  // identity
    permute_case(PARITY_F32(true, 3, 1, 1, 1), GVM_F32, (int[]){2, 0, 1});  // one element
    permute_case(PARITY_F32(true, 4, 2, 65, 3, 64), GVM_F32, (int[]){0, 2, 1, 3});   // [B,T,H,D] -> [B,H,T,D]
    permute_case(PARITY_F32(true, 4, 8, 512, 16, 64), GVM_F32, (int[]){0, 2, 1, 3}); // 4M elements, float4 rows
    permute_case(PARITY_F32(true, 4, 2, 65, 3, 64), GVM_F32, (int[]){0, 2, 3, 1});
    permute_case(PARITY_F32(true, 4, 3, 5, 7, 11), GVM_F32, (int[]){3, 1, 0, 2});
    permute_case(PARITY_F32(true, 4, 3, 5, 7, 11), GVM_F32, (int[]){1, 3, 2, 0});
    permute_case(PARITY_F32(true, 5, 2, 3, 1, 5, 7), GVM_F32, (int[]){4, 2, 0, 3, 1});
    permute_case(PARITY_F32(true, 5, 2, 3, 4, 5, 6), GVM_F32, (int[]){0, 1, 4, 2, 3});
    permute_case(PARITY_F32(true, 6, 2, 3, 2, 3, 2, 5), GVM_F32, (int[]){5, 4, 3, 2, 1, 0});
    permute_case(PARITY_F32(true, 6, 2, 3, 2, 3, 2, 5), GVM_F32, (int[]){1, 0, 3, 2, 5, 4});
    permute_case(PARITY_F32(true, 6, 3, 1, 4, 2, 5, 3), GVM_F32, (int[]){2, 0, 5, 1, 4, 3});
    // 2-byte elements (bf16) through casts: exact.
    permute_case(PARITY_F32(true, 3, 5, 7, 9), GVM_BF16, (int[]){2, 0, 1});
    permute_case(PARITY_F32(true, 4, 2, 33, 3, 17), GVM_BF16, (int[]){0, 2, 1, 3});
    // Integer data, forward only (no gradient flows): 8-byte and 1-byte elements.
    permute_case(PARITY_INT(GVM_I64, -1000, 1000, 3, 3, 4, 5), GVM_F32, (int[]){2, 0, 1});
    permute_case(PARITY_INT(GVM_I64, -1000, 1000, 3, 6, 7, 5), GVM_F32, (int[]){1, 0, 2});
    permute_case(PARITY_INT(GVM_I64, -1000, 1000, 4, 2, 3, 4, 5), GVM_F32, (int[]){3, 2, 1, 0});
    permute_case(PARITY_INT(GVM_U8, 0, 255, 2, 33, 17), GVM_F32, (int[]){1, 0});
    permute_case(PARITY_INT(GVM_U8, 0, 255, 4, 4, 5, 6, 7), GVM_F32, (int[]){0, 2, 1, 3});
    permute_case(PARITY_INT(GVM_U8, 0, 255, 4, 4, 5, 6, 7), GVM_F32, (int[]){3, 2, 1, 0});
    permute_case(PARITY_INT(GVM_I32, -1000, 1000, 5, 2, 3, 4, 5, 6), GVM_F32, (int[]){4, 0, 3, 1, 2});
}

typedef struct pair_arg {
    int a, b;
} pair_arg;

static gvm_tensor *build_transpose(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const pair_arg *p = arg;
    return gvm_transpose(ctx, in[0], p->a, p->b);
}

// ---- reshape / contiguous -------------------------------------------------------------------------------------------

static gvm_tensor *build_reshape(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    (void)arg;
    return gvm_reshape(ctx, in[0], 3, (int64_t[]){3, -1, 5});
}

static gvm_tensor *build_contiguous(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    (void)arg;
    return gvm_contiguous(ctx, in[0]);
}

// contiguous of rows [1, 6) of a view: the source starts one odd-sized row into the storage (unaligned).
static gvm_tensor *build_contiguous_of_slice(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    (void)arg;
    return gvm_contiguous(ctx, gvm_slice(ctx, in[0], 0, 1, 6));
}

// ---- slice / split / concat -----------------------------------------------------------------------------------------

typedef struct slice_arg {
    int axis;
    int64_t start, end;
} slice_arg;

static gvm_tensor *build_slice(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const slice_arg *s = arg;
    return gvm_slice(ctx, in[0], s->axis, s->start, s->end);
}

// slice then a copy that reads it (so a view slice along axis 0 is read through another kernel too).
static gvm_tensor *build_slice_bf16(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const slice_arg *s = arg;
    return gvm_cast(ctx, gvm_slice(ctx, gvm_cast(ctx, in[0], GVM_BF16), s->axis, s->start, s->end), GVM_F32);
}

typedef struct split_arg {
    int axis;
    int64_t sizes[3];
} split_arg;

// Three parts; the middle one is unused (no gradient reaches its rows), the others are joined in reverse.
static gvm_tensor *build_split(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const split_arg *s = arg;
    gvm_tensor *parts[3];
    gvm_split(ctx, in[0], s->axis, 3, s->sizes, parts);
    gvm_tensor *keep[2] = {parts[2], parts[0]};
    return gvm_concat(ctx, keep, 2, s->axis);
}

typedef struct concat_arg {
    int axis;
    gvm_dtype via;  // GVM_F32, or GVM_U8: the parts are cast to u8 (values 0..9), joined, cast back
} concat_arg;

static gvm_tensor *build_concat(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const concat_arg *c = arg;
    if (c->via == GVM_F32) return gvm_concat(ctx, in, 3, c->axis);
    gvm_tensor *parts[3];
    for (int k = 0; k < 3; k++) parts[k] = gvm_cast(ctx, in[k], c->via);
    return gvm_concat(ctx, parts, 3, c->axis);
}

static void window_cases(void) {
    parity_input x3 = PARITY_F32(true, 3, 7, 9, 11);
    const slice_arg slices[] = {{0, 2, 5}, {1, 3, 8}, {2, 1, 10}, {-1, 0, 1}, {1, -4, -1}, {2, 0, 11}, {1, 4, 4}};
    char name[128];
    for (size_t i = 0; i < sizeof slices / sizeof slices[0]; i++) {
        snprintf(name, sizeof name, "slice 7x9x11 axis %d [%lld:%lld]", slices[i].axis, (long long)slices[i].start,
                 (long long)slices[i].end);
        parity_check(name, build_slice, &slices[i], 1, &x3, NULL);
    }
    const slice_arg big = {1, 17, 290};
    parity_check("slice 64x300x129 axis 1 [17:290]", build_slice, &big, 1, &PARITY_F32(true, 3, 64, 300, 129), NULL);
    const slice_arg last = {2, 3, 67};
    parity_check("slice 300x2x128 axis 2 [3:67]", build_slice, &last, 1, &PARITY_F32(true, 3, 300, 2, 128), NULL);
    const slice_arg sb = {1, 1, 4};
    const parity_opts exact = {.rtol = EXACT_RTOL};
    parity_check("slice bf16 5x7x3 axis 1 [1:4]", build_slice_bf16, &sb, 1, &PARITY_F32(true, 3, 5, 7, 3), &exact);

    const split_arg splits[] = {{0, {2, 1, 4}}, {1, {3, 5, 1}}, {2, {4, 0, 7}}};
    for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++) {
        snprintf(name, sizeof name, "split 7x9x11 axis %d", splits[i].axis);
        parity_check(name, build_split, &splits[i], 1, &x3, NULL);
    }

    for (int axis = 0; axis < 3; axis++) {
        parity_input parts[3];
        const int64_t lens[3] = {2, 5, 1};
        for (int k = 0; k < 3; k++) {
            parts[k] = PARITY_F32(true, 3, 4, 6, 5);
            parts[k].shape[axis] = lens[k];
        }
        concat_arg c = {axis, GVM_F32};
        snprintf(name, sizeof name, "concat 3 parts axis %d", axis);
        parity_check(name, build_concat, &c, 3, parts, NULL);
        c.via = GVM_U8;
        for (int k = 0; k < 3; k++) parts[k] = (parity_input){GVM_F32, 3, {3, 7, 5}, false, 0.0f, 9.0f};
        for (int k = 0; k < 3; k++) parts[k].shape[axis] = lens[k] + 2;
        snprintf(name, sizeof name, "concat u8 3 parts axis %d", axis);
        parity_check(name, build_concat, &c, 3, parts, &(parity_opts){.forward_only = true});
    }
    concat_arg cl = {1, GVM_F32};
    parity_input big_parts[3] = {PARITY_F32(true, 3, 32, 100, 64), PARITY_F32(true, 3, 32, 37, 64),
                                 PARITY_F32(true, 3, 32, 200, 64)};
    parity_check("concat 3 large parts axis 1", build_concat, &cl, 3, big_parts, NULL);
}

// ---- index_select / gather / embedding ------------------------------------------------------------------------------

typedef struct axis_arg {
    int axis;
} axis_arg;

static gvm_tensor *build_index_select(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    return gvm_index_select(ctx, in[0], ((const axis_arg *)arg)->axis, in[1]);
}

static gvm_tensor *build_gather(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    return gvm_gather(ctx, in[0], ((const axis_arg *)arg)->axis, in[1]);
}

static gvm_tensor *build_embedding(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    (void)arg;
    return gvm_embedding(ctx, in[0], in[1]);
}

static void index_select_case(parity_input a, int axis, gvm_dtype idt, int64_t m, int64_t range, bool det) {
    axis_arg arg = {axis};
    parity_input in[2] = {a, PARITY_INT(idt, 0, (float)range, 1, m)};
    char name[160];
    snprintf(name, sizeof name, "index_select rank %d axis %d %s m %lld in [0,%lld)", a.ndim, axis,
             gvm_dtype_name(idt), (long long)m, (long long)range);
    parity_check(name, build_index_select, &arg, 2, in, NULL);
    if (det) determinism_check(name, build_index_select, &arg, 2, in);
}

static void gather_case(parity_input a, parity_input idx, int axis, bool det) {
    axis_arg arg = {axis};
    parity_input in[2] = {a, idx};
    char name[160];
    snprintf(name, sizeof name, "gather rank %d axis %d %s idx numel %lld", a.ndim, axis, gvm_dtype_name(idx.dtype),
             (long long)(idx.shape[0] * (idx.ndim > 1 ? idx.shape[1] : 1) * (idx.ndim > 2 ? idx.shape[2] : 1)));
    parity_check(name, build_gather, &arg, 2, in, NULL);
    if (det) determinism_check(name, build_gather, &arg, 2, in);
}

static void index_cases(void) {
    // Few indices (< 33: one thread per column walks them) and many (the sorted path), repeats in both.
    index_select_case(PARITY_F32(true, 3, 6, 10, 7), 0, GVM_I64, 9, 3, false);
    index_select_case(PARITY_F32(true, 3, 6, 10, 7), 1, GVM_I32, 8, 4, false);
    index_select_case(PARITY_F32(true, 3, 6, 10, 7), 2, GVM_I64, 20, 7, false);
    index_select_case(PARITY_F32(true, 3, 3, 10, 33), 1, GVM_I32, 100, 10, true);
    index_select_case(PARITY_F32(true, 3, 3, 10, 33), 1, GVM_I64, 100, 10, false);
    index_select_case(PARITY_F32(true, 2, 5, 12), 1, GVM_I32, 40, 12, false);  // inner 1, sorted
    index_select_case(PARITY_F32(true, 2, 5, 12), 0, GVM_I64, 33, 5, false);   // outer 1, inner 12
    index_select_case(PARITY_F32(true, 1, 1), 0, GVM_I32, 50, 1, false);       // one row, 50 times
    index_select_case(PARITY_F32(true, 3, 2, 1000, 3), 1, GVM_I64, 5000, 1000, true);

    // Gather along each axis: idx no larger than the source outside the axis, any length along it.
    gather_case(PARITY_F32(true, 3, 4, 5, 6), PARITY_INT(GVM_I64, 0, 4, 3, 7, 5, 3), 0, false);
    gather_case(PARITY_F32(true, 3, 4, 5, 6), PARITY_INT(GVM_I32, 0, 5, 3, 3, 9, 6), 1, false);
    gather_case(PARITY_F32(true, 3, 4, 5, 6), PARITY_INT(GVM_I64, 0, 6, 3, 4, 2, 11), 2, false);
    gather_case(PARITY_F32(true, 3, 4, 5, 6), PARITY_INT(GVM_I32, 0, 6, 3, 2, 5, 6), -1, false);
    gather_case(PARITY_F32(true, 1, 10), PARITY_INT(GVM_I32, 0, 10, 1, 25), 0, false);
    gather_case(PARITY_F32(true, 2, 64, 1000), PARITY_INT(GVM_I64, 0, 1000, 2, 64, 500), 1, true);
    gather_case(PARITY_F32(true, 2, 1000, 64), PARITY_INT(GVM_I32, 0, 1000, 2, 3000, 60), 0, true);

    // Embedding: V 2048, D 1024, 3000 indices over the first 300 rows (about 10 repeats each).
    parity_input emb[2] = {PARITY_F32(true, 2, 2048, 1024), PARITY_INT(GVM_I64, 0, 300, 1, 3000)};
    const axis_arg none = {0};
    parity_check("embedding V2048 D1024 i64 x3000 (300 rows)", build_embedding, &none, 2, emb, NULL);
    determinism_check("embedding V2048 D1024 i64 x3000 (300 rows)", build_embedding, &none, 2, emb);
    parity_input emb32[2] = {PARITY_F32(true, 2, 2048, 1024), PARITY_INT(GVM_I32, 0, 2048, 2, 2, 1500)};
    parity_check("embedding V2048 D1024 i32 [2,1500]", build_embedding, &none, 2, emb32, NULL);
    parity_input small[2] = {PARITY_F32(true, 2, 11, 5), PARITY_INT(GVM_I32, 0, 11, 2, 2, 3)};
    parity_check("embedding V11 D5 i32 [2,3]", build_embedding, &none, 2, small, NULL);
    parity_input odd[2] = {PARITY_F32(true, 2, 50, 3), PARITY_INT(GVM_I64, 0, 50, 1, 200)};
    parity_check("embedding V50 D3 i64 x200", build_embedding, &none, 2, odd, NULL);
}

// ---- cast ---------------------------------------------------------------------------------------------------------

typedef struct cast_arg {
    int n;
    gvm_dtype chain[4];  // cast to chain[0], then chain[1], ...
} cast_arg;

static gvm_tensor *build_cast(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const cast_arg *c = arg;
    gvm_tensor *t = in[0];
    for (int i = 0; i < c->n; i++) t = gvm_cast(ctx, t, c->chain[i]);
    return t;
}

static void cast_case(parity_input x, int n, const gvm_dtype *chain) {
    cast_arg c = {n, {GVM_F32}};
    char name[160];
    snprintf(name, sizeof name, "cast %s [%g,%g)", gvm_dtype_name(x.dtype), x.lo, x.hi);
    for (int i = 0; i < n; i++) {
        c.chain[i] = chain[i];
        snprintf(name + strlen(name), sizeof name - strlen(name), " -> %s", gvm_dtype_name(chain[i]));
    }
    const parity_opts exact = {.rtol = EXACT_RTOL};
    parity_check(name, build_cast, &c, 1, &x, &exact);
}

static void cast_cases(void) {
    const parity_input normal = PARITY_F32(true, 2, 37, 1001);
    cast_case(normal, 2, (gvm_dtype[]){GVM_F16, GVM_F32});
    cast_case(normal, 2, (gvm_dtype[]){GVM_BF16, GVM_F32});
    cast_case(normal, 3, (gvm_dtype[]){GVM_F16, GVM_BF16, GVM_F32});
    cast_case(PARITY_F32_RANGE(true, -100.0f, 100.0f, 1, 5003), 3, (gvm_dtype[]){GVM_BF16, GVM_F16, GVM_F32});
    cast_case(PARITY_F32_RANGE(true, -70000.0f, 70000.0f, 1, 5003), 2, (gvm_dtype[]){GVM_F16, GVM_F32});  // inf
    cast_case(PARITY_F32_RANGE(true, -1e-4f, 1e-4f, 1, 5003), 2, (gvm_dtype[]){GVM_F16, GVM_F32});  // subnormal
    cast_case(PARITY_F32_RANGE(true, -1e30f, 1e30f, 1, 5003), 2, (gvm_dtype[]){GVM_BF16, GVM_F32});
    cast_case(PARITY_F32_RANGE(false, -1000.0f, 1000.0f, 1, 5003), 1, (gvm_dtype[]){GVM_I32});
    cast_case(PARITY_F32_RANGE(false, -1000.0f, 1000.0f, 1, 5003), 1, (gvm_dtype[]){GVM_I64});
    cast_case(PARITY_F32_RANGE(false, -3e9f, 3e9f, 1, 5003), 1, (gvm_dtype[]){GVM_I32});  // saturates
    cast_case(PARITY_F32_RANGE(false, -1e5f, 1e5f, 1, 5003), 2, (gvm_dtype[]){GVM_F16, GVM_I32});  // inf -> max
    cast_case(PARITY_F32_RANGE(false, -300.0f, 300.0f, 1, 5003), 2, (gvm_dtype[]){GVM_BF16, GVM_I64});
    cast_case(PARITY_INT(GVM_I32, -100000, 100000, 1, 5003), 1, (gvm_dtype[]){GVM_F32});
    cast_case(PARITY_INT(GVM_I32, -100000, 100000, 1, 5003), 1, (gvm_dtype[]){GVM_I64});
    cast_case(PARITY_INT(GVM_I32, -100000, 100000, 1, 5003), 2, (gvm_dtype[]){GVM_F16, GVM_F32});
    cast_case(PARITY_INT(GVM_I64, -100000, 100000, 1, 5003), 1, (gvm_dtype[]){GVM_F32});
    cast_case(PARITY_INT(GVM_I64, -100000, 100000, 1, 5003), 1, (gvm_dtype[]){GVM_I32});
    cast_case(PARITY_INT(GVM_I64, -100000, 100000, 1, 5003), 2, (gvm_dtype[]){GVM_BF16, GVM_F32});
    cast_case(PARITY_INT(GVM_I64, -1000, 1000, 1, 5003), 2, (gvm_dtype[]){GVM_F16, GVM_I32});
}

// ---- layer norm / RMS norm ----------------------------------------------------------------------------------------

typedef struct row_norm_arg {
    bool rms;
    bool w, b;  // in[1] is the weight when w; the bias is in[1 + w] when b
    float eps;
} row_norm_arg;

static gvm_tensor *build_row_norm(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const row_norm_arg *a = arg;
    gvm_tensor *w = a->w ? in[1] : NULL, *b = a->b ? in[1 + a->w] : NULL;
    return a->rms ? gvm_rms_norm(ctx, in[0], w, a->eps) : gvm_layer_norm(ctx, in[0], w, b, a->eps);
}

// x [rows, D] (uniform in [lo, hi), or normal when lo == hi), weight/bias per the flags.
static void row_norm_case(bool rms, int64_t rows, int64_t D, bool w, bool b, bool x_grad, float lo, float hi,
                          float eps, bool det) {
    row_norm_arg a = {rms, w, b && !rms, eps};
    parity_input in[3];
    int n = 0;
    in[n++] = (parity_input){GVM_F32, 2, {rows, D}, x_grad, lo, hi};
    if (w) in[n++] = PARITY_F32_RANGE(true, 0.5f, 1.5f, 1, D);
    if (a.b) in[n++] = PARITY_F32(true, 1, D);
    char name[160];
    snprintf(name, sizeof name, "%s %lldx%lld%s%s%s x in [%g,%g) eps %g", rms ? "rms_norm" : "layer_norm",
             (long long)rows, (long long)D, w ? " weight" : "", a.b ? " bias" : "", x_grad ? "" : " (x no grad)", lo,
             hi, eps);
    parity_check(name, build_row_norm, &a, n, in, NULL);
    if (det) determinism_check(name, build_row_norm, &a, n, in);
}

static void row_norm_cases(void) {
    for (int rms = 0; rms < 2; rms++) {
        const int64_t Ds[] = {1, 7, 64, 1024, 4097};
        const int64_t rows_for[] = {50, 70000, 3000, 300, 33};
        for (int i = 0; i < 5; i++) {
            row_norm_case(rms, rows_for[i], Ds[i], true, true, true, 0, 0, 1e-5f, i == 1);
            row_norm_case(rms, rows_for[i] > 1000 ? 1000 : rows_for[i], Ds[i], false, false, true, 0, 0, 1e-5f, false);
        }
        row_norm_case(rms, 129, 1024, true, false, true, 0, 0, 1e-5f, false);
        row_norm_case(rms, 129, 1024, false, true, true, 0, 0, 1e-3f, false);
        row_norm_case(rms, 70000, 33, true, true, true, 0, 0, 1e-5f, true);  // > 65535 rows
        row_norm_case(rms, 257, 2000, true, true, false, 0, 0, 1e-5f, true); // only dweight/dbias
        row_norm_case(rms, 64, 1024, true, true, true, 1000.0f, 1001.0f, 1e-5f, false);  // a large offset
        row_norm_case(rms, 16, 3, true, true, true, 0, 0, 0.5f, false);
    }
    // A 3-D x: rows are every index but the last.
    row_norm_arg a3 = {false, true, true, 1e-5f};
    parity_input in3[3] = {PARITY_F32(true, 3, 4, 33, 65), PARITY_F32(true, 1, 65), PARITY_F32(true, 1, 65)};
    parity_check("layer_norm 4x33x65", build_row_norm, &a3, 3, in3, NULL);
}

// ---- L2 normalisation / cosine similarity / weight norm -------------------------------------------------------------

typedef struct axis_eps_arg {
    int axis;
    float eps;
} axis_eps_arg;

static gvm_tensor *build_l2n(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const axis_eps_arg *a = arg;
    return gvm_l2_normalize(ctx, in[0], a->axis, a->eps);
}

static gvm_tensor *build_cos(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const axis_eps_arg *a = arg;
    return gvm_cosine_similarity(ctx, in[0], in[1], a->axis, a->eps);
}

static gvm_tensor *build_weight_norm(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    (void)arg;
    return gvm_weight_norm(ctx, in[0], in[1]);
}

static void l2n_case(parity_input x, int axis, float eps) {
    axis_eps_arg a = {axis, eps};
    char name[160];
    snprintf(name, sizeof name, "l2_normalize rank %d [%lld,%lld,...] axis %d eps %g x in [%g,%g)", x.ndim,
             (long long)x.shape[0], (long long)x.shape[1], axis, eps, x.lo, x.hi);
    parity_check(name, build_l2n, &a, 1, &x, NULL);
}

static void cos_case(parity_input a, parity_input b, int axis, float eps) {
    axis_eps_arg arg = {axis, eps};
    parity_input in[2] = {a, b};
    char name[160];
    snprintf(name, sizeof name, "cosine_similarity rank %d [%lld,%lld,...] axis %d eps %g%s%s", a.ndim,
             (long long)a.shape[0], (long long)a.shape[1], axis, eps, a.requires_grad ? "" : " (a no grad)",
             b.requires_grad ? "" : " (b no grad)");
    parity_check(name, build_cos, &arg, 2, in, NULL);
}

static void axis_norm_cases(void) {
    for (int axis = -1; axis < 3; axis++) l2n_case(PARITY_F32(true, 3, 5, 37, 9), axis, 1e-12f);
    l2n_case(PARITY_F32(true, 3, 5, 200, 70), 1, 1e-12f);           // columns wider than a warp
    l2n_case(PARITY_F32(true, 2, 3, 2000), 1, 1e-12f);              // long rows: a block per row
    l2n_case(PARITY_F32(true, 2, 70000, 3), 1, 1e-12f);             // > 65535 rows
    l2n_case(PARITY_F32(true, 2, 2000, 3), 0, 1e-12f);              // long columns
    l2n_case(PARITY_F32(true, 1, 1), 0, 1e-12f);
    l2n_case(PARITY_F32_RANGE(true, -1e-7f, 1e-7f, 2, 6, 4), 1, 1e-6f);  // norms below eps (clamped)
    l2n_case(PARITY_F32_RANGE(true, -1e-7f, 1e-7f, 3, 3, 4, 5), 1, 1e-6f);

    for (int axis = -1; axis < 3; axis++)
        cos_case(PARITY_F32(true, 3, 6, 33, 10), PARITY_F32(true, 3, 6, 33, 10), axis, 1e-8f);
    cos_case(PARITY_F32(true, 2, 4, 3000), PARITY_F32(true, 2, 4, 3000), 1, 1e-8f);
    cos_case(PARITY_F32(true, 2, 70000, 5), PARITY_F32(false, 2, 70000, 5), 1, 1e-8f);
    cos_case(PARITY_F32(false, 2, 3000, 7), PARITY_F32(true, 2, 3000, 7), 0, 1e-8f);
    cos_case(PARITY_F32_RANGE(true, -1e-5f, 1e-5f, 2, 5, 4), PARITY_F32(true, 2, 5, 4), 1, 1e-3f);  // clamped
    cos_case(PARITY_F32_RANGE(true, -1e-5f, 1e-5f, 3, 3, 4, 5), PARITY_F32(true, 3, 3, 4, 5), 1, 1e-3f);

    const struct {
        parity_input g, v;
    } wn[] = {
        {PARITY_F32(true, 3, 8, 1, 1), PARITY_F32(true, 3, 8, 5, 3)},
        {PARITY_F32(true, 2, 64, 1), PARITY_F32(true, 2, 64, 2000)},
        {PARITY_F32(true, 2, 7, 1), PARITY_F32(true, 2, 7, 1)},
        {PARITY_F32(true, 1, 1), PARITY_F32(true, 1, 1)},
        {PARITY_F32(false, 3, 300, 1, 1), PARITY_F32(true, 3, 300, 16, 5)},
        {PARITY_F32(true, 3, 300, 1, 1), PARITY_F32(false, 3, 300, 16, 5)},
    };
    for (size_t i = 0; i < sizeof wn / sizeof wn[0]; i++) {
        parity_input in[2] = {wn[i].g, wn[i].v};
        char name[128];
        snprintf(name, sizeof name, "weight_norm v rank %d [%lld,%lld]%s%s", wn[i].v.ndim, (long long)wn[i].v.shape[0],
                 (long long)wn[i].v.shape[1], wn[i].g.requires_grad ? "" : " (g no grad)",
                 wn[i].v.requires_grad ? "" : " (v no grad)");
        parity_check(name, build_weight_norm, NULL, 2, in, NULL);
    }
}

// ---- out-of-range indices ------------------------------------------------------------------------------------------

typedef enum { BAD_SELECT, BAD_EMBEDDING_BWD, BAD_GATHER } bad_kind;

// In the child: run the op on the GPU with one bad index and copy the result back (which synchronises, so the
// kernel's trap surfaces as an abort). Returns 0 only if nothing stopped it; 77 without a GPU.
static int bad_index_child(bad_kind kind, int64_t bad) {
    if (gvm_device_init(GVM_DEVICE_CUDA) != GVM_OK) return 77;
    gvm_ctx *ctx = gvm_ctx_new(1);
    if (gvm_ctx_set_device(ctx, GVM_DEVICE_CUDA) != GVM_OK) return 77;
    gvm_tensor *a_host = gvm_tensor_new(GVM_F32, 2, (int64_t[]){4, 5});
    gvm_tensor *i_host = gvm_tensor_new(GVM_I64, 2, (int64_t[]){1, 40});  // 40 indices: the sorted backward
    int64_t *iv = i_host->data;
    for (int j = 0; j < 40; j++) iv[j] = j % 4;
    iv[37] = bad;
    gvm_tensor *a = gvm_tensor_to(a_host, GVM_DEVICE_CUDA), *idx = gvm_tensor_to(i_host, GVM_DEVICE_CUDA);
    gvm_tensor *y;
    if (kind == BAD_SELECT) {
        gvm_tensor *flat = gvm_reshape(ctx, idx, 1, (int64_t[]){40});
        y = gvm_index_select(ctx, a, 0, flat);
    } else if (kind == BAD_GATHER) {
        y = gvm_gather(ctx, a, 1, idx);  // idx [1, 40] along axis 1 of a [4, 5]
    } else {
        // The forward sees valid indices; the bad one is written into them before the backward reads them.
        a->requires_grad = true;
        iv[37] = 0;
        gvm_device_copy(idx->data, GVM_DEVICE_CUDA, i_host->data, GVM_DEVICE_CPU, gvm_tensor_nbytes(i_host));
        y = gvm_embedding(ctx, a, idx);
        iv[37] = bad;
        gvm_device_copy(idx->data, GVM_DEVICE_CUDA, i_host->data, GVM_DEVICE_CPU, gvm_tensor_nbytes(i_host));
        gvm_tensor *seed = gvm_tensor_new(GVM_F32, y->ndim, y->shape);
        gvm_tensor *seed_dev = gvm_tensor_to(seed, GVM_DEVICE_CUDA);
        gvm_backward_with_grad(ctx, y, seed_dev->data);
        y = a->grad;
    }
    gvm_tensor *back = gvm_tensor_to(y, GVM_DEVICE_CPU);
    (void)back;
    return 0;
}

static void bad_index_case(const char *name, bad_kind kind, int64_t bad) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        // The child's own output (the kernel's message) stays visible; its exit code is all that counts.
        _exit(bad_index_child(kind, bad));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return;  // no GPU: parity_init says so
    bool stopped = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("%s bad index %s: %s\n", stopped ? "ok  " : "FAIL", name,
           stopped ? "stopped" : "ran to the end without complaint");
    if (!stopped) g_det_failed++;
}

int main(int argc, char **argv) {
    // Before parity_init: the children must fork from a process that has not touched CUDA yet.
    bad_index_case("index_select idx 9 of 4 rows", BAD_SELECT, 9);
    bad_index_case("index_select idx -1", BAD_SELECT, -1);
    bad_index_case("embedding backward idx 4 of 4 rows", BAD_EMBEDDING_BWD, 4);
    bad_index_case("gather idx 5 of 5", BAD_GATHER, 5);
    bad_index_case("gather idx -3", BAD_GATHER, -3);
    parity_init(argc, argv);
    permute_cases();
    const pair_arg t12 = {1, 2}, t02 = {0, -1};
    parity_check("transpose 4x33x65 (1,2)", build_transpose, &t12, 1, &PARITY_F32(true, 3, 4, 33, 65), NULL);
    parity_check("transpose 4x33x65 (0,-1)", build_transpose, &t02, 1, &PARITY_F32(true, 3, 4, 33, 65), NULL);
    parity_check("reshape 6x10x5 -> 3x-1x5", build_reshape, NULL, 1, &PARITY_F32(true, 3, 6, 10, 5), NULL);
    parity_check("contiguous 3x1000x7", build_contiguous, NULL, 1, &PARITY_F32(true, 3, 3, 1000, 7), NULL);
    parity_check("contiguous of slice 9x13 rows 1:6", build_contiguous_of_slice, NULL, 1, &PARITY_F32(true, 2, 9, 13),
                 NULL);
    window_cases();
    index_cases();
    cast_cases();
    row_norm_cases();
    axis_norm_cases();
    int rc = parity_finish();
    if (g_det_failed) printf("%d determinism or bad-index checks failed\n", g_det_failed);
    return rc ? rc : g_det_failed ? 1 : 0;
}
