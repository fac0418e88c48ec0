// test_shape.c: reshape, permute, transpose, contiguous, concat, split, slice, index_select, gather,
// embedding and cast. Gradient checks over shapes (odd, size-1, every axis, > 6 concat parts, duplicate
// indices, i32 and i64 indices); PyTorch goldens; view semantics (shared storage, slice offsets, gradients
// through views); split with unused parts; every permutation of 4-D shapes and every element size against
// a naive reference; large scatter-adds with duplicates (the parallel paths); casts between every dtype
// pair; out-of-range indices abort.
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_util.h"

// "2:-1:3" -> {2, -1, 3}; returns the count (0 for "").
static int parse_list(const char *s, int64_t *out) {
    int n = 0;
    while (s && *s) {
        char *end;
        out[n++] = strtoll(s, &end, 10);
        s = *end == ':' ? end + 1 : end;
        if (end == s && *end != ':') break;
    }
    return n;
}

static gvm_dtype dtype_named(const char *name) {
    for (int d = 0; d < GVM_DTYPE_COUNT; d++)
        if (strcmp(gvm_dtype_name((gvm_dtype)d), name) == 0) return (gvm_dtype)d;
    gvm_fatal(__FILE__, __LINE__, "unknown dtype %s", name);
}

// ---- adapters ---------------------------------------------------------------------------------------------------

static gvm_tensor *fwd_reshape(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    int64_t shape[GVM_MAX_DIMS];
    int n = parse_list(test_param_s(p, "shape", ""), shape);
    return gvm_reshape(ctx, in[0], n, shape);
}
static gvm_tensor *fwd_permute(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    int64_t v[GVM_MAX_DIMS];
    int perm[GVM_MAX_DIMS];
    int n = parse_list(test_param_s(p, "perm", ""), v);
    for (int i = 0; i < n; i++) perm[i] = (int)v[i];
    return gvm_permute(ctx, in[0], perm);
}
static gvm_tensor *fwd_transpose(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_transpose(ctx, in[0], (int)test_param_i(p, "dim0", 0), (int)test_param_i(p, "dim1", 1));
}
static gvm_tensor *fwd_contiguous(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_contiguous(ctx, in[0]);
}
static gvm_tensor *fwd_concat(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_concat(ctx, in, (int)test_param_i(p, "n_parts", 2), (int)test_param_i(p, "axis", 0));
}
static gvm_tensor *fwd_split(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    int64_t sizes[16];
    gvm_tensor *parts[16];
    int n = parse_list(test_param_s(p, "sizes", ""), sizes);
    gvm_split(ctx, in[0], (int)test_param_i(p, "axis", 0), n, sizes, parts);
    return parts[test_param_i(p, "part", 0)];
}
static gvm_tensor *fwd_slice(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_slice(ctx, in[0], (int)test_param_i(p, "axis", 0), test_param_i(p, "start", 0),
                     test_param_i(p, "end", 1));
}
static gvm_tensor *fwd_index_select(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_index_select(ctx, in[0], (int)test_param_i(p, "axis", 0), in[1]);
}
static gvm_tensor *fwd_gather(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_gather(ctx, in[0], (int)test_param_i(p, "axis", 0), in[1]);
}
static gvm_tensor *fwd_embedding(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_embedding(ctx, in[0], in[1]);
}
static gvm_tensor *fwd_cast(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    gvm_tensor *x = in[0];
    const char *via = test_param_s(p, "via", NULL);
    if (via) x = gvm_cast(ctx, x, dtype_named(via));
    return gvm_cast(ctx, x, dtype_named(test_param_s(p, "dtype", "f32")));
}

// ---- gradient checks -----------------------------------------------------------------------------------------

static void gradcheck1(const char *name, test_forward_fn fn, int ndim, const int64_t *shape, const char *spec) {
    gvm_tensor *x = test_randn(ndim * 31 + (uint64_t)shape[0], ndim, shape, 1.0f, true);
    test_params p = test_params_parse(spec);
    char label[160];
    snprintf(label, sizeof label, "gradcheck %s (%s)", name, spec);
    test_gradcheck(label, fn, &x, 1, &p, NULL);
    gvm_tensor_free(x);
}

static void gradcheck_index(const char *name, test_forward_fn fn, gvm_tensor *x, gvm_tensor *idx, const char *spec) {
    gvm_tensor *in[2] = {x, idx};
    test_params p = test_params_parse(spec);
    char label[160];
    snprintf(label, sizeof label, "gradcheck %s (%s)", name, spec);
    test_gradcheck(label, fn, in, 2, &p, NULL);
    gvm_tensor_free(x);
    gvm_tensor_free(idx);
}

static gvm_tensor *index_tensor(gvm_dtype dtype, int ndim, const int64_t *shape, const int64_t *values) {
    gvm_tensor *t = gvm_tensor_new(dtype, ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) {
        if (dtype == GVM_I32)
            ((int32_t *)t->data)[i] = (int32_t)values[i];
        else
            ((int64_t *)t->data)[i] = values[i];
    }
    return t;
}

static void gradchecks(void) {
    gradcheck1("reshape", fwd_reshape, 3, (int64_t[]){2, 3, 5}, "shape=5:-1");
    gradcheck1("reshape", fwd_reshape, 1, (int64_t[]){1}, "shape=");
    gradcheck1("permute", fwd_permute, 4, (int64_t[]){2, 5, 3, 4}, "perm=0:2:1:3");
    gradcheck1("permute", fwd_permute, 4, (int64_t[]){3, 1, 5, 2}, "perm=3:0:2:1");
    gradcheck1("permute", fwd_permute, 2, (int64_t[]){33, 35}, "perm=1:0");
    gradcheck1("permute", fwd_permute, 3, (int64_t[]){4, 6, 5}, "perm=1:2:0");
    gradcheck1("transpose", fwd_transpose, 3, (int64_t[]){3, 4, 5}, "dim0=-1,dim1=0");
    gradcheck1("contiguous", fwd_contiguous, 2, (int64_t[]){3, 7}, "x=0");
    gradcheck1("split part 1", fwd_split, 3, (int64_t[]){3, 6, 2}, "axis=1,sizes=2:3:1,part=1");
    gradcheck1("split axis 0 (views)", fwd_split, 2, (int64_t[]){5, 3}, "axis=0,sizes=1:4,part=1");
    gradcheck1("split last", fwd_split, 2, (int64_t[]){2, 7}, "axis=-1,sizes=3:0:4,part=2");
    gradcheck1("slice axis 0 view", fwd_slice, 3, (int64_t[]){5, 3, 2}, "axis=0,start=1,end=4");
    gradcheck1("slice axis 1", fwd_slice, 3, (int64_t[]){3, 6, 2}, "axis=1,start=2,end=5");
    gradcheck1("slice negative", fwd_slice, 2, (int64_t[]){4, 5}, "axis=-1,start=-3,end=-1");
    gradcheck1("cast f32", fwd_cast, 2, (int64_t[]){3, 4}, "dtype=f32");

    // concat: 3 parts on a middle axis, and 7 parts (more than one tape node's inputs) with a size-1 part.
    gvm_tensor *parts[7];
    for (int k = 0; k < 3; k++) parts[k] = test_randn(40 + k, 3, (int64_t[]){2, k + 1, 3}, 1.0f, true);
    test_params p = test_params_parse("axis=1,n_parts=3");
    test_gradcheck("gradcheck concat 3 parts", fwd_concat, parts, 3, &p, NULL);
    for (int k = 0; k < 3; k++) gvm_tensor_free(parts[k]);
    for (int k = 0; k < 7; k++) parts[k] = test_randn(50 + k, 2, (int64_t[]){k % 3 + 1, 2}, 1.0f, k != 3);
    p = test_params_parse("axis=0,n_parts=7");
    test_gradcheck("gradcheck concat 7 parts, one without grad", fwd_concat, parts, 7, &p, NULL);
    for (int k = 0; k < 7; k++) gvm_tensor_free(parts[k]);

    // Index ops, i32 and i64, with repeated indices.
    gradcheck_index("index_select axis 0 i64", fwd_index_select, test_randn(60, 2, (int64_t[]){5, 3}, 1, true),
                    index_tensor(GVM_I64, 1, (int64_t[]){5}, (int64_t[]){4, 0, 4, 2, 4}), "axis=0");
    gradcheck_index("index_select axis 1 i32", fwd_index_select, test_randn(61, 3, (int64_t[]){2, 6, 3}, 1, true),
                    index_tensor(GVM_I32, 1, (int64_t[]){3}, (int64_t[]){5, 5, 0}), "axis=1");
    gradcheck_index("index_select last", fwd_index_select, test_randn(62, 3, (int64_t[]){3, 4, 1}, 1, true),
                    index_tensor(GVM_I32, 1, (int64_t[]){2}, (int64_t[]){0, 0}), "axis=-1");
    gradcheck_index("gather axis 0", fwd_gather, test_randn(63, 3, (int64_t[]){3, 4, 5}, 1, true),
                    test_randint(64, GVM_I64, 3, (int64_t[]){4, 3, 5}, 3), "axis=0");
    gradcheck_index("gather axis 1 i32", fwd_gather, test_randn(65, 3, (int64_t[]){3, 4, 5}, 1, true),
                    test_randint(66, GVM_I32, 3, (int64_t[]){2, 7, 3}, 4), "axis=1");
    gradcheck_index("gather last", fwd_gather, test_randn(67, 2, (int64_t[]){3, 5}, 1, true),
                    test_randint(68, GVM_I64, 2, (int64_t[]){3, 9}, 5), "axis=-1");
    gradcheck_index("embedding i64", fwd_embedding, test_randn(69, 2, (int64_t[]){7, 4}, 1, true),
                    index_tensor(GVM_I64, 2, (int64_t[]){2, 5}, (int64_t[]){1, 3, 1, 6, 0, 6, 6, 2, 1, 1}), "x=0");
    gradcheck_index("embedding i32 0-d", fwd_embedding, test_randn(70, 2, (int64_t[]){3, 5}, 1, true),
                    index_tensor(GVM_I32, 0, NULL, (int64_t[]){2}), "x=0");
}

// ---- views ----------------------------------------------------------------------------------------------------

static void check_views(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *x = test_randn(80, 2, (int64_t[]){6, 4}, 1.0f, true);
    gvm_tensor *r = gvm_reshape(ctx, x, 3, (int64_t[]){-1, 2, 3});
    TEST_CHECK(r->data == x->data && r->flags == 0 && r->ndim == 3 && r->shape[0] == 4 && r->numel == 24,
               "reshape is a view", "data %p vs %p, flags %u, shape[0] %lld", r->data, x->data, r->flags,
               (long long)r->shape[0]);
    // Slice along axis 0 of the reshaped view: rows 1..3 of [4, 2, 3] start 6 floats into x's storage.
    gvm_tensor *s = gvm_slice(ctx, r, 0, 1, 3);
    TEST_CHECK(s->data == (float *)x->data + 6 && s->flags == 0 && s->shape[0] == 2, "slice axis 0 is a view",
               "offset %td", (float *)s->data - (float *)x->data);
    gvm_tensor *c = gvm_slice(ctx, r, 1, 0, 1);
    TEST_CHECK(c->data != x->data && c->shape[1] == 1, "slice axis 1 copies", "shares storage");
    gvm_tensor *k = gvm_contiguous(ctx, s);
    TEST_CHECK(k->data != s->data && memcmp(k->data, s->data, 12 * sizeof(float)) == 0, "contiguous copies",
               "same storage or different values");
    // Gradient through reshape -> slice view -> contiguous: rows 6..17 of x's flat storage get the seed.
    float seed[12];
    for (int i = 0; i < 12; i++) seed[i] = (float)(i + 1);
    gvm_backward_with_grad(ctx, k, seed);
    float want[24] = {0};
    for (int i = 0; i < 12; i++) want[6 + i] = (float)(i + 1);
    test_allclose("grad through reshape/slice views", x->grad->data, want, 24, 0, 0);
    // A view of a tensor without grad records nothing.
    gvm_tensor *y = test_randn(81, 1, (int64_t[]){4}, 1.0f, false);
    gvm_tensor *yv = gvm_reshape(ctx, y, 2, (int64_t[]){2, 2});
    TEST_CHECK(!yv->requires_grad && yv->grad_fn == NULL, "view without grad", "requires_grad set");
    gvm_tensor_free(x);
    gvm_tensor_free(y);
    gvm_ctx_free(ctx);
}

// Split into three parts, use only the first and last: the middle rows get no gradient, the others exactly
// their upstream gradient. Also concat of one tensor with itself (its gradient adds twice) and a zero-size part.
static void check_split_concat(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *x = test_randn(90, 2, (int64_t[]){3, 5}, 1.0f, true);
    gvm_tensor *parts[3];
    gvm_split(ctx, x, 1, 3, (int64_t[]){2, 1, 2}, parts);
    gvm_tensor *both[2] = {parts[0], parts[2]};
    gvm_tensor *cat = gvm_concat(ctx, both, 2, 1);  // [3, 4]
    float seed[12];
    for (int i = 0; i < 12; i++) seed[i] = (float)(i + 1);
    gvm_backward_with_grad(ctx, cat, seed);
    float want[15] = {1, 2, 0, 3, 4, 5, 6, 0, 7, 8, 9, 10, 0, 11, 12};
    test_allclose("split with an unused part", x->grad->data, want, 15, 0, 0);

    gvm_tensor *y = test_randn(91, 2, (int64_t[]){2, 2}, 1.0f, true);
    gvm_tensor *empty = gvm_tensor_zeros(ctx, GVM_F32, 2, (int64_t[]){2, 0});
    gvm_tensor *three[3] = {y, empty, y};
    gvm_tensor *yy = gvm_concat(ctx, three, 3, -1);  // [2, 4]
    TEST_CHECK(yy->shape[1] == 4 && ((float *)yy->data)[2] == ((float *)y->data)[0], "concat with itself and empty",
               "shape[1] %lld", (long long)yy->shape[1]);
    gvm_backward(ctx, yy);
    float twos[4] = {2, 2, 2, 2};
    test_allclose("concat with itself grad", y->grad->data, twos, 4, 0, 0);
    gvm_tensor_free(x);
    gvm_tensor_free(y);
    gvm_ctx_free(ctx);
}

// ---- permute against a naive reference ------------------------------------------------------------------------------

// ref[out index] = src[in index] element by element through multi-indices.
static void naive_permute(const char *src, char *dst, size_t esize, int ndim, const int64_t *shape, const int *perm) {
    int64_t stride[GVM_MAX_DIMS], s = 1, out_shape[GVM_MAX_DIMS], pos[GVM_MAX_DIMS];
    for (int d = ndim - 1; d >= 0; d--) {
        stride[d] = s;
        s *= shape[d];
    }
    for (int i = 0; i < ndim; i++) out_shape[i] = shape[perm[i]];
    for (int64_t o = 0; o < s; o++) {
        int64_t rem = o, off = 0;
        for (int i = ndim - 1; i >= 0; i--) {
            pos[i] = rem % out_shape[i];
            rem /= out_shape[i];
            off += pos[i] * stride[perm[i]];
        }
        memcpy(dst + o * esize, src + off * esize, esize);
    }
}

static bool next_perm(int *p, int n) {  // lexicographic successor; false after the last
    int i = n - 2;
    while (i >= 0 && p[i] > p[i + 1]) i--;
    if (i < 0) return false;
    int j = n - 1;
    while (p[j] < p[i]) j--;
    int t = p[i];
    p[i] = p[j];
    p[j] = t;
    for (int a = i + 1, b = n - 1; a < b; a++, b--) {
        t = p[a];
        p[a] = p[b];
        p[b] = t;
    }
    return true;
}

static void check_permute_all(int ndim, const int64_t *shape, gvm_dtype dtype) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *x = test_randn(100 + (uint64_t)ndim, ndim, shape, 3.0f, false);
    gvm_tensor *xd = gvm_cast(ctx, x, dtype);  // bit patterns to move, whatever the dtype
    size_t es = gvm_dtype_size(dtype), nb = (size_t)x->numel * es;
    char *ref = malloc(nb ? nb : 1);
    float *dref = malloc((size_t)x->numel * sizeof(float) + 4);
    int perm[GVM_MAX_DIMS], bad = 0, checked = 0;
    for (int i = 0; i < ndim; i++) perm[i] = i;
    do {
        gvm_tensor *out = gvm_permute(ctx, xd, perm);
        naive_permute(xd->data, ref, es, ndim, shape, perm);
        if (memcmp(out->data, ref, nb) != 0) bad++;
        // Backward (f32): dx += inverse-permuted dy, from a base of ones.
        if (dtype == GVM_F32) {
            gvm_tensor *xg = test_randn(5, ndim, shape, 1.0f, true);
            gvm_tensor *o = gvm_permute(ctx, xg, perm);
            gvm_grad_data(ctx, xg);
            gvm_tensor_fill(xg->grad, 1.0f);
            gvm_backward_with_grad(ctx, o, x->data);  // dy = x's values in out's element order
            int inv[GVM_MAX_DIMS];
            int64_t oshape[GVM_MAX_DIMS];
            for (int i = 0; i < ndim; i++) {
                inv[perm[i]] = i;
                oshape[i] = shape[perm[i]];
            }
            naive_permute(x->data, (char *)dref, sizeof(float), ndim, oshape, inv);
            const float *g = xg->grad->data;
            for (int64_t i = 0; i < x->numel; i++)
                if (g[i] != dref[i] + 1.0f) {
                    bad++;
                    break;
                }
            gvm_tensor_free(xg);
        }
        checked++;
        gvm_ctx_reset(ctx);
        xd = gvm_cast(ctx, x, dtype);
    } while (next_perm(perm, ndim));
    char name[160], sb[64];
    snprintf(name, sizeof name, "permute all %d perms of %s %s", checked, gvm_shape_str(ndim, shape, sb, sizeof sb),
             gvm_dtype_name(dtype));
    TEST_CHECK(bad == 0, name, "%d permutations differ from the naive reference", bad);
    free(ref);
    free(dref);
    gvm_tensor_free(x);
    gvm_ctx_free(ctx);
}

// ---- large scatter-adds (parallel paths) against serial references -----------------------------------------------

static void check_large_index(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    // Embedding V=300, D=64, 3000 tokens drawn from 40 values: many duplicates; dy is 750 KB.
    int64_t V = 300, D = 64, N = 3000;
    gvm_tensor *w = test_randn(110, 2, (int64_t[]){V, D}, 1.0f, true);
    gvm_tensor *idx = test_randint(111, GVM_I32, 1, &N, 40);
    // Every third token walks all rows, so whatever the thread count, rows at band edges are hit.
    for (int64_t j = 0; j < N; j += 3) ((int32_t *)idx->data)[j] = (int32_t)((j / 3) % V);
    gvm_tensor *e = gvm_embedding(ctx, w, idx);
    gvm_tensor *dy = test_randn(112, 2, (int64_t[]){N, D}, 1.0f, false);
    gvm_backward_with_grad(ctx, e, dy->data);
    float *ref = calloc((size_t)(V * D), sizeof(float));
    int bad_fwd = 0;
    for (int64_t j = 0; j < N; j++) {
        int64_t v = ((int32_t *)idx->data)[j];
        for (int64_t d = 0; d < D; d++) {
            ref[v * D + d] += ((float *)dy->data)[j * D + d];
            bad_fwd += ((float *)e->data)[j * D + d] != ((float *)w->data)[v * D + d];
        }
    }
    TEST_CHECK(bad_fwd == 0, "large embedding forward", "%d values differ", bad_fwd);
    // Same summation order per row as the serial loop: equal bit for bit.
    test_allclose("large embedding backward (duplicates)", w->grad->data, ref, V * D, 0, 0);
    free(ref);

    // Gather along axis 0 of [50, 2000] with idx [400, 2000]: duplicates in every column.
    int64_t R = 50, C = 2000, M = 400;
    gvm_tensor *a = test_randn(113, 2, (int64_t[]){R, C}, 1.0f, true);
    gvm_tensor *gi = test_randint(114, GVM_I64, 2, (int64_t[]){M, C}, R);
    gvm_tensor *gdy = test_randn(115, 2, (int64_t[]){M, C}, 1.0f, false);
    gvm_tensor *g = gvm_gather(ctx, a, 0, gi);
    gvm_backward_with_grad(ctx, g, gdy->data);
    float *gref = calloc((size_t)(R * C), sizeof(float));
    int64_t *iv = gi->data;
    bad_fwd = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t c = 0; c < C; c++) {
            gref[iv[m * C + c] * C + c] += ((float *)gdy->data)[m * C + c];
            bad_fwd += ((float *)g->data)[m * C + c] != ((float *)a->data)[iv[m * C + c] * C + c];
        }
    TEST_CHECK(bad_fwd == 0, "large gather forward", "%d values differ", bad_fwd);
    test_allclose("large gather backward (duplicates)", a->grad->data, gref, R * C, 0, 0);
    free(gref);
    gvm_tensor_free(w);
    gvm_tensor_free(idx);
    gvm_tensor_free(dy);
    gvm_tensor_free(a);
    gvm_tensor_free(gi);
    gvm_tensor_free(gdy);
    gvm_ctx_free(ctx);
}

// ---- cast ---------------------------------------------------------------------------------------------------------

// Every dtype pair gives exactly gvm_tensor_copy's bytes (values in range of every dtype), over enough
// elements to be split among threads; gradients flow only between float dtypes.
static void check_cast_pairs(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    int64_t n = 70001;
    gvm_tensor *base = gvm_tensor_new(GVM_F32, 1, &n);
    for (int64_t i = 0; i < n; i++) ((float *)base->data)[i] = (float)(i % 97) * (i % 3 ? 1.25f : 1.0f);
    int bad = 0, grad_bad = 0;
    for (int s = 0; s < GVM_DTYPE_COUNT; s++) {
        gvm_tensor *src = gvm_tensor_new((gvm_dtype)s, 1, &n);
        gvm_tensor_copy(src, base);
        src->requires_grad = gvm_dtype_is_float((gvm_dtype)s);
        for (int d = 0; d < GVM_DTYPE_COUNT; d++) {
            gvm_tensor *want = gvm_tensor_new((gvm_dtype)d, 1, &n);
            gvm_tensor_copy(want, src);
            gvm_tensor *got = gvm_cast(ctx, src, (gvm_dtype)d);
            if (got->dtype != (gvm_dtype)d || memcmp(got->data, want->data, gvm_tensor_nbytes(want)) != 0) {
                bad++;
                printf("  cast %s -> %s differs\n", gvm_dtype_name((gvm_dtype)s), gvm_dtype_name((gvm_dtype)d));
            }
            bool float_pair = gvm_dtype_is_float((gvm_dtype)s) && gvm_dtype_is_float((gvm_dtype)d);
            grad_bad += got->requires_grad != float_pair;
            gvm_tensor_free(want);
            gvm_ctx_reset(ctx);
        }
        gvm_tensor_free(src);
    }
    TEST_CHECK(bad == 0, "cast every dtype pair", "%d pairs differ from gvm_tensor_copy", bad);
    TEST_CHECK(grad_bad == 0, "cast records only float -> float", "%d pairs wrong", grad_bad);
    // f16 overflow gives inf (allclose cannot see inf vs a finite value, so check directly).
    gvm_tensor *big = gvm_tensor_from_f32(ctx, (float[]){70000.0f, -1e6f}, 1, (int64_t[]){2});
    float *back = gvm_cast(ctx, gvm_cast(ctx, big, GVM_F16), GVM_F32)->data;
    TEST_CHECK(isinf(back[0]) && back[0] > 0 && isinf(back[1]) && back[1] < 0, "cast f16 overflow is inf",
               "got %g %g", back[0], back[1]);
    gvm_tensor_free(base);
    gvm_ctx_free(ctx);
}

// ---- out-of-range indices abort (GVM_CHECK) --------------------------------------------------------------------
// Run before any large op, so no OpenMP thread pool exists yet when the children fork.

typedef enum { BAD_SELECT, BAD_EMBED_NEG, BAD_GATHER, BAD_SLICE } bad_kind;

static void expect_abort(const char *name, bad_kind kind) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(3);
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *x = gvm_tensor_zeros(ctx, GVM_F32, 2, (int64_t[]){4, 3});
        gvm_tensor *i5 = gvm_tensor_zeros(ctx, GVM_I64, 1, (int64_t[]){2});
        ((int64_t *)i5->data)[1] = 4;  // == size
        gvm_tensor *neg = gvm_tensor_zeros(ctx, GVM_I32, 1, (int64_t[]){3});
        ((int32_t *)neg->data)[2] = -1;
        gvm_tensor *g = gvm_tensor_zeros(ctx, GVM_I64, 2, (int64_t[]){1, 3});
        ((int64_t *)g->data)[2] = 3;  // axis 1 has size 3
        if (kind == BAD_SELECT) gvm_index_select(ctx, x, 0, i5);
        if (kind == BAD_EMBED_NEG) gvm_embedding(ctx, x, neg);
        if (kind == BAD_GATHER) gvm_gather(ctx, x, 1, g);
        if (kind == BAD_SLICE) gvm_slice(ctx, x, 1, 1, 4);
        _exit(0);  // no abort: the test fails
    }
    int status = 0;
    waitpid(pid, &status, 0);
    TEST_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, name, "did not abort (status %d)", status);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    expect_abort("index_select index == size aborts", BAD_SELECT);
    expect_abort("embedding negative index aborts", BAD_EMBED_NEG);
    expect_abort("gather index out of range aborts", BAD_GATHER);
    expect_abort("slice past the end aborts", BAD_SLICE);

    gradchecks();
    check_views();
    {
        gvm_tensor *x = test_randn(120, 3, (int64_t[]){4, 3, 5}, 1.0f, true);
        gvm_tensor *in[3] = {x, x, index_tensor(GVM_I64, 1, (int64_t[]){4}, (int64_t[]){2, 0, 2, 1})};
        test_check_accumulates("reshape", fwd_reshape, in, 1, "shape=-1");
        test_check_accumulates("permute", fwd_permute, in, 1, "perm=2:0:1");
        test_check_accumulates("contiguous", fwd_contiguous, in, 1, "x=0");
        test_check_accumulates("slice view", fwd_slice, in, 1, "axis=0,start=1,end=3");
        test_check_accumulates("slice copy", fwd_slice, in, 1, "axis=2,start=1,end=3");
        test_check_accumulates("concat", fwd_concat, in, 2, "axis=1,n_parts=2");
        test_check_accumulates("cast", fwd_cast, in, 1, "dtype=f32");
        gvm_tensor *sel[2] = {x, in[2]};
        test_check_accumulates("index_select", fwd_index_select, sel, 2, "axis=1");
        gvm_tensor *emb[2] = {test_randn(121, 2, (int64_t[]){3, 4}, 1.0f, true), in[2]};
        test_check_accumulates("embedding", fwd_embedding, emb, 2, "x=0");
        gvm_tensor *gi = test_randint(122, GVM_I32, 3, (int64_t[]){4, 3, 2}, 5);
        gvm_tensor *gat[2] = {x, gi};
        test_check_accumulates("gather", fwd_gather, gat, 2, "axis=2");
        gvm_tensor_free(x);
        gvm_tensor_free(in[2]);
        gvm_tensor_free(emb[0]);
        gvm_tensor_free(gi);
    }
    check_split_concat();
    check_permute_all(4, (int64_t[]){3, 5, 2, 7}, GVM_F32);
    check_permute_all(4, (int64_t[]){2, 1, 33, 35}, GVM_F32);  // tiles with partial edges
    check_permute_all(4, (int64_t[]){4, 3, 1, 5}, GVM_U8);
    check_permute_all(4, (int64_t[]){3, 34, 2, 5}, GVM_F16);
    check_permute_all(5, (int64_t[]){2, 3, 1, 4, 5}, GVM_I64);
    check_permute_all(3, (int64_t[]){64, 70, 40}, GVM_F32);  // large: parallel rows and tiles
    check_permute_all(4, (int64_t[]){2, 64, 8, 64}, GVM_F32);  // attention [B, T, H, D]
    check_large_index();
    check_cast_pairs();

    char path[160];
    struct {
        const char *name;
        int count;
        test_forward_fn fn;
    } fams[] = {{"reshape", 5, fwd_reshape}, {"permute", 9, fwd_permute}, {"transpose", 3, fwd_transpose},
                {"concat", 3, fwd_concat},   {"slice", 5, fwd_slice},     {"index_select", 4, fwd_index_select},
                {"gather", 6, fwd_gather},   {"embedding", 4, fwd_embedding}};
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++)
        for (int i = 0; i < fams[f].count; i++) {
            snprintf(path, sizeof path, "shape/%s_%d.safetensors", fams[f].name, i);
            test_golden_op(path, fams[f].fn, 1e-6, 1e-6);
        }
    test_golden_op("shape/contiguous.safetensors", fwd_contiguous, 1e-6, 1e-6);
    test_golden_op("shape/concat_7.safetensors", fwd_concat, 1e-6, 1e-6);
    const char *splits[] = {"split_0_0", "split_0_1", "split_0_2", "split_1_0", "split_1_1", "split_2_0", "split_2_2"};
    for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++) {
        snprintf(path, sizeof path, "shape/%s.safetensors", splits[i]);
        test_golden_op(path, fwd_split, 1e-6, 1e-6);
    }
    const char *casts[] = {"cast_f32_i32", "cast_f32_i64", "cast_f32_u8",       "cast_f32_bool",     "cast_i64_f32",
                           "cast_i32_f32", "cast_bool_f32", "cast_i64_i32",     "cast_f32_f16_f32", "cast_f32_bf16_f32",
                           "cast_f16_f32", "cast_bf16_f32", "cast_f32_f32"};
    for (size_t i = 0; i < sizeof casts / sizeof casts[0]; i++) {
        snprintf(path, sizeof path, "shape/%s.safetensors", casts[i]);
        test_golden_op(path, fwd_cast, 0, 0);  // conversions are exact
    }
    return test_finish();
}
