// test_elementwise.c: the elementwise ops: broadcasting add/sub/mul/div, scalar and unary math,
// activations, dropout and masked_fill. Covers the broadcast plan itself, finite-difference gradient
// checks (broadcast on either or both sides, ranks 0..6, size-1 dims), a double-precision reference on
// tensors large enough to take the threaded paths (at 1, 2 and 3 threads, with gradient accumulation),
// the accuracy of gelu's and silu's own fast math on a dense grid, PyTorch goldens, and dropout's
// properties (it has no PyTorch twin: different RNG).
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/broadcast.h"
#include "tests/test_util.h"

// ---- the op under test, picked by the "op" parameter (goldens carry it in their metadata) -------------

static gvm_tensor *fwd_elem(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    const char *op = test_param_s(p, "op", "");
    if (!strcmp(op, "add")) return gvm_add(ctx, in[0], in[1]);
    if (!strcmp(op, "sub")) return gvm_sub(ctx, in[0], in[1]);
    if (!strcmp(op, "mul")) return gvm_mul(ctx, in[0], in[1]);
    if (!strcmp(op, "div")) return gvm_div(ctx, in[0], in[1]);
    if (!strcmp(op, "mul_self")) return gvm_mul(ctx, in[0], in[0]);  // both grads land in one buffer
    if (!strcmp(op, "chain")) return gvm_sub(ctx, gvm_mul(ctx, in[0], in[1]), in[0]);  // a*b - a: accumulation
    if (!strcmp(op, "add_scalar")) return gvm_add_scalar(ctx, in[0], (float)test_param_f(p, "s", 0));
    if (!strcmp(op, "mul_scalar")) return gvm_mul_scalar(ctx, in[0], (float)test_param_f(p, "s", 0));
    if (!strcmp(op, "pow")) return gvm_pow_scalar(ctx, in[0], (float)test_param_f(p, "p", 0));
    if (!strcmp(op, "neg")) return gvm_neg(ctx, in[0]);
    if (!strcmp(op, "exp")) return gvm_exp(ctx, in[0]);
    if (!strcmp(op, "log")) return gvm_log(ctx, in[0]);
    if (!strcmp(op, "sqrt")) return gvm_sqrt(ctx, in[0]);
    if (!strcmp(op, "abs")) return gvm_abs(ctx, in[0]);
    if (!strcmp(op, "gelu")) return gvm_gelu(ctx, in[0]);
    if (!strcmp(op, "gelu_tanh")) return gvm_gelu_tanh(ctx, in[0]);
    if (!strcmp(op, "relu")) return gvm_relu(ctx, in[0]);
    if (!strcmp(op, "elu")) return gvm_elu(ctx, in[0], (float)test_param_f(p, "alpha", 1.0));
    if (!strcmp(op, "silu")) return gvm_silu(ctx, in[0]);
    if (!strcmp(op, "tanh")) return gvm_tanh(ctx, in[0]);
    if (!strcmp(op, "sigmoid")) return gvm_sigmoid(ctx, in[0]);
    if (!strcmp(op, "masked_fill")) return gvm_masked_fill(ctx, in[0], in[1], (float)test_param_f(p, "value", 0));
    if (!strcmp(op, "dropout")) {
        ctx->training = true;
        return gvm_dropout(ctx, in[0], (float)test_param_f(p, "p", 0));
    }
    gvm_fatal(__FILE__, __LINE__, "test: unknown op '%s'", op);
}

// ---- inputs -----------------------------------------------------------------------------------------------

enum { IN_NORMAL, IN_POSITIVE, IN_AWAY };  // away: |x| >= 0.05, clear of a kink at 0 for the FD step

static gvm_tensor *make_input(uint64_t seed, int ndim, const int64_t *shape, int kind, float scale) {
    gvm_tensor *t = test_randn(seed, ndim, shape, scale, true);
    float *x = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        if (kind == IN_POSITIVE) x[i] = fabsf(x[i]) + 0.2f;
        if (kind == IN_AWAY) x[i] = x[i] < 0 ? x[i] - 0.05f : x[i] + 0.05f;
    }
    return t;
}

static gvm_tensor *make_mask(uint64_t seed, gvm_dtype dtype, int ndim, const int64_t *shape, float p_true) {
    gvm_tensor *m = gvm_tensor_new(dtype, ndim, shape);
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    uint8_t *v = m->data;
    for (int64_t i = 0; i < m->numel; i++) {
        float u;
        gvm_rng_uniform(&rng, &u, 1, 0.0f, 1.0f);
        v[i] = u < p_true;
    }
    return m;
}

typedef struct {
    int ndim;
    int64_t shape[GVM_MAX_DIMS];
} shape_t;

// ---- the broadcast plan ------------------------------------------------------------------------------------

static void check_plan(const char *name, shape_t a, shape_t b, shape_t want, int cdim, const int64_t *cshape,
                       const int64_t *sa, const int64_t *sb) {
    gvm_broadcast bc;
    const int64_t *shapes[2] = {a.shape, b.shape};
    bool ok = gvm_broadcast_init(&bc, 2, (int[]){a.ndim, b.ndim}, shapes);
    if (!TEST_CHECK(ok, name, "shapes reported incompatible")) return;
    bool same = bc.ndim == want.ndim;
    for (int d = 0; same && d < want.ndim; d++) same = bc.shape[d] == want.shape[d];
    TEST_CHECK(same, name, "output shape differs");
    same = bc.cdim == cdim;
    for (int d = 0; same && d < cdim; d++)
        same = bc.cshape[d] == cshape[d] && bc.cstride[0][d] == sa[d] && bc.cstride[1][d] == sb[d];
    TEST_CHECK(same, name, "coalesced plan differs (cdim %d, want %d)", bc.cdim, cdim);
}

static void test_broadcast_plan(void) {
    check_plan("plan same", (shape_t){3, {2, 3, 4}}, (shape_t){3, {2, 3, 4}}, (shape_t){3, {2, 3, 4}}, 1,
               (int64_t[]){24}, (int64_t[]){1}, (int64_t[]){1});
    check_plan("plan bias", (shape_t){3, {2, 3, 4}}, (shape_t){1, {4}}, (shape_t){3, {2, 3, 4}}, 2,
               (int64_t[]){6, 4}, (int64_t[]){4, 1}, (int64_t[]){0, 1});
    check_plan("plan rowscale", (shape_t){3, {2, 3, 4}}, (shape_t){3, {2, 3, 1}}, (shape_t){3, {2, 3, 4}}, 2,
               (int64_t[]){6, 4}, (int64_t[]){4, 1}, (int64_t[]){1, 0});
    check_plan("plan both", (shape_t){3, {3, 1, 5}}, (shape_t){2, {4, 1}}, (shape_t){3, {3, 4, 5}}, 3,
               (int64_t[]){3, 4, 5}, (int64_t[]){5, 0, 1}, (int64_t[]){0, 1, 0});
    check_plan("plan size1 dims", (shape_t){4, {1, 2, 1, 3}}, (shape_t){2, {1, 3}}, (shape_t){4, {1, 2, 1, 3}}, 2,
               (int64_t[]){2, 3}, (int64_t[]){3, 1}, (int64_t[]){0, 1});
    check_plan("plan scalars", (shape_t){0, {0}}, (shape_t){2, {1, 1}}, (shape_t){2, {1, 1}}, 1, (int64_t[]){1},
               (int64_t[]){0}, (int64_t[]){0});
    gvm_broadcast bc;
    const int64_t *bad[2] = {(int64_t[]){3}, (int64_t[]){2, 4}};
    TEST_CHECK(!gvm_broadcast_init(&bc, 2, (int[]){1, 2}, bad), "plan incompatible", "[3] with [2, 4] accepted");

    // The run iterator over a sub-range visits exactly the elements the plan maps, in order.
    const int64_t *sh[2] = {(int64_t[]){3, 1, 5}, (int64_t[]){4, 1}};
    gvm_broadcast_init(&bc, 2, (int[]){3, 2}, sh);
    gvm_broadcast_iter it;
    gvm_broadcast_run r;
    gvm_broadcast_iter_init(&bc, &it, 7, 53);
    int64_t next = 7, bad_runs = 0;
    while (gvm_broadcast_iter_next(&bc, &it, &r)) {
        for (int64_t i = 0; i < r.len; i++) {
            int64_t o = r.pos + i, i0 = o / 20, i1 = (o / 5) % 4, i2 = o % 5;
            int64_t oa = r.off[0] + i * gvm_broadcast_inner_stride(&bc, 0);
            int64_t ob = r.off[1] + i * gvm_broadcast_inner_stride(&bc, 1);
            if (o != next++ || oa != i0 * 5 + i2 || ob != i1) bad_runs++;
        }
    }
    TEST_CHECK(bad_runs == 0 && next == 53, "plan iterator", "%lld misplaced elements, ended at %lld",
               (long long)bad_runs, (long long)next);
}

// ---- gradient checks ---------------------------------------------------------------------------------------

static const char *const k_binary_ops[] = {"add", "sub", "mul", "div"};

static const struct {
    const char *name;
    shape_t a, b;
} k_bcast_cases[] = {
    {"same", {3, {2, 3, 4}}, {3, {2, 3, 4}}},
    {"bias", {3, {2, 3, 5}}, {1, {5}}},
    {"lead", {1, {5}}, {3, {2, 3, 5}}},
    {"rowscale", {3, {2, 3, 5}}, {3, {2, 3, 1}}},
    {"both", {3, {3, 1, 5}}, {2, {4, 1}}},
    {"mid", {3, {2, 3, 4}}, {2, {3, 1}}},
    {"scalar a", {0, {0}}, {2, {3, 4}}},
    {"scalar b", {2, {3, 4}}, {1, {1}}},
    {"size1", {4, {1, 3, 1, 2}}, {3, {3, 1, 1}}},
    {"rank6", {6, {2, 1, 3, 1, 2, 2}}, {6, {1, 2, 1, 3, 2, 1}}},
    {"odd", {2, {7, 1}}, {2, {1, 9}}},
};

static void gradcheck_binary(void) {
    char name[128], spec[64];
    for (size_t c = 0; c < sizeof k_bcast_cases / sizeof k_bcast_cases[0]; c++) {
        for (int o = 0; o < 4; o++) {
            int kind_b = o == 3 ? IN_AWAY : IN_NORMAL;  // divisors away from 0
            gvm_tensor *in[2] = {make_input(10 + c, k_bcast_cases[c].a.ndim, k_bcast_cases[c].a.shape, IN_NORMAL, 1),
                                 make_input(20 + c, k_bcast_cases[c].b.ndim, k_bcast_cases[c].b.shape, kind_b, 1)};
            if (o == 3)  // |b| >= 0.5 keeps the FD step far from the pole
                for (int64_t i = 0; i < in[1]->numel; i++) ((float *)in[1]->data)[i] *= 10.0f;
            snprintf(name, sizeof name, "gradcheck %s %s", k_binary_ops[o], k_bcast_cases[c].name);
            snprintf(spec, sizeof spec, "op=%s", k_binary_ops[o]);
            test_params p = test_params_parse(spec);
            test_gradcheck(name, fwd_elem, in, 2, &p, NULL);
            gvm_tensor_free(in[0]);
            gvm_tensor_free(in[1]);
        }
    }
    // One side without requires_grad gets nothing; the other still gets its gradient.
    gvm_tensor *in[2] = {make_input(3, 2, (int64_t[]){4, 5}, IN_NORMAL, 1),
                         make_input(4, 1, (int64_t[]){5}, IN_AWAY, 1)};
    in[0]->requires_grad = false;
    test_params p = test_params_parse("op=div");
    test_gradcheck("gradcheck div b only", fwd_elem, in, 2, &p, NULL);
    TEST_CHECK(in[0]->grad == NULL, "div b only", "a gradient reached an input without requires_grad");
    in[0]->requires_grad = true;
    p = test_params_parse("op=chain");
    test_gradcheck("gradcheck a*b - a (two nodes)", fwd_elem, in, 2, &p, NULL);
    p = test_params_parse("op=mul_self");
    test_gradcheck("gradcheck x*x (one tensor twice)", fwd_elem, in, 1, &p, NULL);
    gvm_tensor_free(in[0]);
    gvm_tensor_free(in[1]);
}

static const struct {
    const char *spec;
    int kind;
} k_unary_cases[] = {
    {"op=add_scalar,s=0.7", IN_NORMAL}, {"op=mul_scalar,s=-1.3", IN_NORMAL}, {"op=pow,p=2", IN_NORMAL},
    {"op=pow,p=3", IN_NORMAL},         {"op=pow,p=0.5", IN_POSITIVE},      {"op=pow,p=-1.5", IN_POSITIVE},
    {"op=pow,p=1.7", IN_POSITIVE},     {"op=pow,p=0", IN_POSITIVE},        {"op=neg", IN_NORMAL},
    {"op=exp", IN_NORMAL},             {"op=log", IN_POSITIVE},            {"op=sqrt", IN_POSITIVE},
    {"op=abs", IN_AWAY},               {"op=gelu", IN_NORMAL},             {"op=gelu_tanh", IN_NORMAL},
    {"op=relu", IN_AWAY},              {"op=elu,alpha=1", IN_AWAY},        {"op=elu,alpha=0.3", IN_AWAY},
    {"op=silu", IN_NORMAL},            {"op=tanh", IN_NORMAL},             {"op=sigmoid", IN_NORMAL},
};

static void gradcheck_unary(void) {
    const shape_t shapes[] = {{2, {3, 4}}, {3, {2, 1, 5}}, {1, {7}}, {0, {0}}};
    char name[160];
    for (size_t c = 0; c < sizeof k_unary_cases / sizeof k_unary_cases[0]; c++) {
        test_params p = test_params_parse(k_unary_cases[c].spec);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            // Scale 2 reaches the tails of the activations; exp and pow stay where f32 FD is accurate.
            float scale = k_unary_cases[c].kind == IN_NORMAL && strstr(k_unary_cases[c].spec, "pow") == NULL &&
                                  strstr(k_unary_cases[c].spec, "exp") == NULL
                              ? 2.0f
                              : 1.0f;
            gvm_tensor *x = make_input(30 + c * 7 + s, shapes[s].ndim, shapes[s].shape, k_unary_cases[c].kind, scale);
            snprintf(name, sizeof name, "gradcheck %s shape %zu", k_unary_cases[c].spec, s);
            test_gradcheck(name, fwd_elem, &x, 1, &p, NULL);
            gvm_tensor_free(x);
        }
    }
}

static void gradcheck_masked_fill_dropout(void) {
    const struct {
        shape_t a, m;
        gvm_dtype dtype;
    } cases[] = {
        {{2, {3, 5}}, {2, {3, 5}}, GVM_BOOL},
        {{3, {2, 3, 5}}, {3, {2, 1, 5}}, GVM_U8},
        {{3, {2, 3, 4}}, {1, {4}}, GVM_BOOL},
        {{3, {2, 3, 4}}, {3, {2, 3, 1}}, GVM_U8},
        {{4, {2, 1, 3, 4}}, {2, {3, 1}}, GVM_BOOL},
    };
    char name[96];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gvm_tensor *in[2] = {make_input(50 + c, cases[c].a.ndim, cases[c].a.shape, IN_NORMAL, 1),
                             make_mask(60 + c, cases[c].dtype, cases[c].m.ndim, cases[c].m.shape, 0.4f)};
        snprintf(name, sizeof name, "gradcheck masked_fill %zu", c);
        test_params p = test_params_parse("op=masked_fill,value=-3");
        test_gradcheck(name, fwd_elem, in, 2, &p, NULL);
        gvm_tensor_free(in[0]);
        gvm_tensor_free(in[1]);
    }
    const shape_t shapes[] = {{2, {5, 7}}, {1, {1001}}, {3, {2, 1, 3}}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        gvm_tensor *x = make_input(70 + s, shapes[s].ndim, shapes[s].shape, IN_NORMAL, 1);
        snprintf(name, sizeof name, "gradcheck dropout shape %zu", s);
        test_params p = test_params_parse("op=dropout,p=0.3");
        test_gradcheck(name, fwd_elem, &x, 1, &p, NULL);
        gvm_tensor_free(x);
    }
}

// ---- double-precision reference on large tensors ---------------------------------------------------------

// Offset in t of output index idx (t aligned right against the output's rank).
static int64_t bcast_offset(const gvm_tensor *t, int ndim, const int64_t *idx) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off = off * t->shape[d] + (t->shape[d] == 1 ? 0 : idx[d + ndim - t->ndim]);
    return off;
}

static gvm_tensor *run_binary(gvm_ctx *ctx, int op, gvm_tensor *a, gvm_tensor *b) {
    switch (op) {
    case 0: return gvm_add(ctx, a, b);
    case 1: return gvm_sub(ctx, a, b);
    case 2: return gvm_mul(ctx, a, b);
    default: return gvm_div(ctx, a, b);
    }
}

// Forward, then backward twice with the same upstream gradient: the second must add to the first.
static void check_binary_reference(const char *label, int op, shape_t sa, shape_t sb, int threads) {
    gvm_tensor *a = make_input(80, sa.ndim, sa.shape, IN_NORMAL, 1);
    gvm_tensor *b = make_input(81, sb.ndim, sb.shape, op == 3 ? IN_AWAY : IN_NORMAL, 1);
    int saved_threads = omp_get_max_threads();
    omp_set_num_threads(threads);
    gvm_ctx *ctx = gvm_ctx_new(5);
    gvm_tensor *out = NULL;
    float *gy = NULL;
    for (int pass = 0; pass < 2; pass++) {
        gvm_ctx_reset(ctx);
        out = run_binary(ctx, op, a, b);
        if (!gy) {
            gy = malloc((size_t)(out->numel + 1) * sizeof(float));
            gvm_rng rng;
            gvm_rng_init(&rng, 6);
            gvm_rng_normal(&rng, gy, (size_t)out->numel, 0.0f, 1.0f);
        }
        gvm_backward_with_grad(ctx, out, gy);
    }
    omp_set_num_threads(saved_threads);

    int64_t n = out->numel;
    float *ref = malloc((size_t)(n + 1) * sizeof(float));
    double *ga = calloc((size_t)a->numel + 1, sizeof(double)), *gb = calloc((size_t)b->numel + 1, sizeof(double));
    const float *av = a->data, *bv = b->data;
    int64_t idx[GVM_MAX_DIMS];
    for (int64_t i = 0; i < n; i++) {
        for (int64_t d = out->ndim - 1, rest = i; d >= 0; d--) {
            idx[d] = rest % out->shape[d];
            rest /= out->shape[d];
        }
        int64_t ia = bcast_offset(a, out->ndim, idx), ib = bcast_offset(b, out->ndim, idx);
        double x = av[ia], y = bv[ib], g = gy[i];
        double r = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
        ref[i] = (float)r;
        ga[ia] += op == 2 ? g * y : op == 3 ? g / y : g;
        gb[ib] += op == 0 ? g : op == 1 ? -g : op == 2 ? g * x : -g * x / (y * y);
    }
    char name[200];
    snprintf(name, sizeof name, "reference %s %s (%d threads): out", k_binary_ops[op], label, threads);
    test_allclose(name, out->data, ref, n, 1e-6, 1e-6);
    gvm_tensor *grads[2] = {a->grad, b->grad};
    double *refg[2] = {ga, gb};
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "reference %s %s (%d threads): grad %c, accumulated twice", k_binary_ops[op], label,
                 threads, 'a' + k);
        if (!TEST_CHECK(grads[k] != NULL, name, "no gradient")) continue;
        int64_t m = grads[k]->numel;
        float *want = malloc((size_t)(m + 1) * sizeof(float));
        for (int64_t i = 0; i < m; i++) want[i] = (float)(2.0 * refg[k][i]);
        test_allclose(name, grads[k]->data, want, m, 1e-5, 1e-5);
        free(want);
    }
    free(ref);
    free(ga);
    free(gb);
    free(gy);
    gvm_ctx_free(ctx);
    gvm_tensor_free(a);
    gvm_tensor_free(b);
}

static void reference_binary(void) {
    // Large enough for the threaded paths; each shape takes a different gradient path.
    const struct {
        const char *name;
        shape_t a, b;
    } cases[] = {
        {"same", {2, {300, 501}}, {2, {300, 501}}},          // flat map, one fused pass for both grads
        {"bias narrow", {3, {40, 50, 100}}, {1, {100}}},      // column sum, reduced rows sliced over threads
        {"bias wide", {2, {120, 1100}}, {1, {1100}}},         // column sum over several column tiles
        {"lead", {2, {1, 77}}, {3, {30, 40, 77}}},            // a is the small side
        {"rowscale", {2, {64, 3001}}, {2, {64, 1}}},          // row sums
        {"mid", {3, {8, 50, 300}}, {2, {50, 1}}},             // kept middle dim, contiguous inner sums
        {"inner kept", {3, {16, 40, 200}}, {3, {16, 1, 200}}},  // kept rows with a reduced middle dim
        {"scalar", {0, {0}}, {2, {400, 300}}},                // one value: a threaded full sum
        {"both", {3, {40, 1, 300}}, {3, {1, 50, 1}}},         // both sides reduce
        {"empty", {2, {0, 3}}, {1, {3}}},                     // zero elements
    };
    const int threads[] = {1, 2, 3};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int op = 0; op < 4; op++)
            for (int t = 0; t < 3; t++) check_binary_reference(cases[c].name, op, cases[c].a, cases[c].b, threads[t]);
}

// f(x) and f'(x) in double.
static double ref_unary(const char *op, double x, double p, double *dydx) {
    const double k = sqrt(2.0 / M_PI), c = 0.044715;
    if (!strcmp(op, "add_scalar")) return *dydx = 1, x + p;
    if (!strcmp(op, "mul_scalar")) return *dydx = p, x * p;
    if (!strcmp(op, "pow")) return *dydx = p == 0 ? 0 : p * pow(x, p - 1), pow(x, p);
    if (!strcmp(op, "neg")) return *dydx = -1, -x;
    if (!strcmp(op, "exp")) return *dydx = exp(x), exp(x);
    if (!strcmp(op, "log")) return *dydx = 1 / x, log(x);
    if (!strcmp(op, "sqrt")) return *dydx = 0.5 / sqrt(x), sqrt(x);
    if (!strcmp(op, "abs")) return *dydx = x > 0 ? 1 : -1, fabs(x);
    if (!strcmp(op, "gelu")) {
        double phi = 0.5 * erfc(-x / sqrt(2.0));
        *dydx = phi + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
        return x * phi;
    }
    if (!strcmp(op, "gelu_tanh")) {
        double t = tanh(k * (x + c * x * x * x));
        *dydx = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x);
        return 0.5 * x * (1 + t);
    }
    if (!strcmp(op, "relu")) return *dydx = x > 0, x > 0 ? x : 0;
    if (!strcmp(op, "elu")) return *dydx = x > 0 ? 1 : p * exp(x), x > 0 ? x : p * expm1(x);
    double s = 1 / (1 + exp(-x));
    if (!strcmp(op, "silu")) return *dydx = s * (1 + x * (1 - s)), x * s;
    if (!strcmp(op, "tanh")) return *dydx = 1 - tanh(x) * tanh(x), tanh(x);
    return *dydx = s * (1 - s), s;  // sigmoid
}

static void reference_unary(void) {
    const int64_t n = 100003;  // odd, above every threading threshold
    char name[160];
    for (size_t c = 0; c < sizeof k_unary_cases / sizeof k_unary_cases[0]; c++) {
        test_params p = test_params_parse(k_unary_cases[c].spec);
        const char *op = test_param_s(&p, "op", "");
        double param = test_param_f(&p, "s", test_param_f(&p, "p", test_param_f(&p, "alpha", 0)));
        gvm_tensor *x = make_input(90 + c, 1, &n, k_unary_cases[c].kind, strcmp(op, "exp") ? 4.0f : 2.0f);
        float *gy = malloc((size_t)n * sizeof(float)), *want_y = malloc((size_t)n * sizeof(float)),
              *want_g = malloc((size_t)n * sizeof(float));
        gvm_rng rng;
        gvm_rng_init(&rng, 91);
        gvm_rng_normal(&rng, gy, (size_t)n, 0.0f, 1.0f);
        for (int64_t i = 0; i < n; i++) {
            double d;
            want_y[i] = (float)ref_unary(op, ((float *)x->data)[i], param, &d);
            want_g[i] = (float)(d * gy[i]);
        }
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *y = fwd_elem(ctx, &x, &p);
        gvm_backward_with_grad(ctx, y, gy);
        snprintf(name, sizeof name, "reference %s: out", k_unary_cases[c].spec);
        test_allclose(name, y->data, want_y, n, 1e-5, 1e-5);
        snprintf(name, sizeof name, "reference %s: grad", k_unary_cases[c].spec);
        test_allclose(name, x->grad->data, want_g, n, 1e-5, 1e-5);
        gvm_ctx_free(ctx);
        gvm_tensor_free(x);
        free(gy);
        free(want_y);
        free(want_g);
    }
    // exp's own range: denormal results, overflow to inf, infinities and NaN in.
    {
        const float xs[] = {-INFINITY, -200.0f, -103.0f, -100.0f, -87.5f, -1e-3f, 0.0f, 1e-3f, 88.7f, 88.8f, 1e4f,
                            INFINITY, NAN};
        const int64_t m = sizeof xs / sizeof xs[0];
        float want[sizeof xs / sizeof xs[0]];
        for (int64_t i = 0; i < m; i++) want[i] = (float)exp((double)xs[i]);
        gvm_tensor *x = gvm_tensor_new(GVM_F32, 1, &m);
        memcpy(x->data, xs, sizeof xs);
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *y = gvm_exp(ctx, x);
        test_allclose("exp special values", y->data, want, m, 1e-44, 3e-7);
        gvm_ctx_free(ctx);
        gvm_tensor_free(x);
    }
    // Saturated tails: finite values, no NaN from inf/inf or inf*0.
    const float tails[] = {-1e4f, -200.0f, -88.0f, -30.0f, 30.0f, 88.0f, 200.0f, 1e4f};
    const char *const tail_ops[] = {"op=gelu", "op=gelu_tanh", "op=silu", "op=sigmoid", "op=tanh", "op=elu,alpha=1"};
    for (size_t o = 0; o < sizeof tail_ops / sizeof tail_ops[0]; o++) {
        test_params p = test_params_parse(tail_ops[o]);
        gvm_tensor *x = gvm_tensor_new(GVM_F32, 1, (int64_t[]){8});
        memcpy(x->data, tails, sizeof tails);
        x->requires_grad = true;
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *y = fwd_elem(ctx, &x, &p);
        gvm_backward(ctx, y);
        bool finite = true;
        for (int i = 0; i < 8; i++)
            finite &= isfinite(((float *)y->data)[i]) && isfinite(((float *)x->grad->data)[i]);
        snprintf(name, sizeof name, "tails %s", tail_ops[o]);
        TEST_CHECK(finite, name, "non-finite value or gradient at |x| up to 1e4");
        gvm_ctx_free(ctx);
        gvm_tensor_free(x);
    }
}

// gelu and silu use their own fast math (polynomials in core/cpu/elementwise.c): check them against double
// on a dense grid, tightly enough that one wrong coefficient or a bad clamp fails, plus their behaviour at
// the clamps, at +-inf and for NaN. Bounds: |error| <= tol * max(1, |x|) for the value and the gradient.
static void accuracy_activations(void) {
    const int64_t grid = 240001;                 // step 1e-4 over [-12, 12]
    const float special[] = {5.44f, 5.46f, -5.44f, -5.46f, 5.99f, 6.01f, -5.99f, -6.01f, 85.9f, 86.1f, -87.9f,
                             -88.1f, 1e4f, -1e4f, INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 1e-30f, -1e-30f};
    const int64_t ns = sizeof special / sizeof special[0], n = grid + ns;
    const char *const ops[] = {"op=gelu", "op=silu"};
    const double tol[] = {3e-7, 2.5e-7};
    char name[96];
    for (int o = 0; o < 2; o++) {
        test_params p = test_params_parse(ops[o]);
        gvm_tensor *x = gvm_tensor_new(GVM_F32, 1, &n);
        float *xv = x->data;
        for (int64_t i = 0; i < grid; i++) xv[i] = (float)(-12.0 + 24.0 * (double)i / (double)(grid - 1));
        memcpy(xv + grid, special, sizeof special);
        x->requires_grad = true;
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *y = fwd_elem(ctx, &x, &p);
        gvm_backward(ctx, y);
        const float *yv = y->data, *gv = x->grad->data;
        int64_t bad = 0, worst_at = 0;
        double worst = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double v = xv[i], want_y, want_g, e;
            if (isnan(v)) {
                e = isnan(yv[i]) && isnan(gv[i]) ? 0.0 : INFINITY;
            } else if (isinf(v)) {  // +inf: the identity's value and slope; -inf: both 0 (the limits, not NaN)
                bool ok = v > 0 ? yv[i] == INFINITY && fabsf(gv[i] - 1.0f) <= 1e-7f
                                : fabsf(yv[i]) <= 1e-30f && fabsf(gv[i]) <= 1e-30f;
                e = ok ? 0.0 : INFINITY;
            } else {
                want_y = ref_unary(ops[o] + 3, v, 0.0, &want_g);
                e = fmax(fabs(yv[i] - want_y), fabs(gv[i] - want_g)) / fmax(1.0, fabs(v));
            }
            if (!(e <= tol[o])) {
                bad++;
                if (!(e <= worst)) worst = e, worst_at = i;
            }
        }
        snprintf(name, sizeof name, "accuracy %s (value and gradient)", ops[o]);
        TEST_CHECK(bad == 0, name, "%lld of %lld off by more than %.1e (x max(1, |x|)); worst %.3g at x = %.9g",
                   (long long)bad, (long long)n, tol[o], worst, (double)xv[worst_at]);
        gvm_ctx_free(ctx);
        gvm_tensor_free(x);
    }
}

// ---- masked_fill and dropout properties --------------------------------------------------------------------

static void test_masked_fill_props(void) {
    // x [2, 3, 4], mask [3, 1] (u8): a masked position gets the value and a zero gradient, the rest
    // pass the value and the upstream gradient through; an all-true mask leaves no gradient at all.
    gvm_tensor *x = make_input(100, 3, (int64_t[]){2, 3, 4}, IN_NORMAL, 1);
    gvm_tensor *m = gvm_tensor_new(GVM_U8, 2, (int64_t[]){3, 1});
    uint8_t *mv = m->data;
    mv[0] = 1, mv[1] = 0, mv[2] = 7;  // any nonzero byte is true
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *y = gvm_masked_fill(ctx, x, m, -INFINITY);
    gvm_backward(ctx, y);
    const float *xv = x->data, *yv = y->data, *g = x->grad->data;
    int bad = 0;
    for (int64_t i = 0; i < 24; i++) {
        bool masked = mv[(i / 4) % 3] != 0;
        if (masked ? !(isinf(yv[i]) && yv[i] < 0 && g[i] == 0.0f) : !(yv[i] == xv[i] && g[i] == 1.0f)) bad++;
    }
    TEST_CHECK(bad == 0, "masked_fill props", "%d elements wrong", bad);
    gvm_ctx_reset(ctx);
    gvm_zero_grad(x);
    gvm_tensor *all = gvm_tensor_new(GVM_BOOL, 0, NULL);
    *(uint8_t *)all->data = 1;
    y = gvm_masked_fill(ctx, x, all, 2.0f);
    gvm_backward(ctx, y);
    bad = 0;
    for (int64_t i = 0; i < 24; i++) bad += ((float *)y->data)[i] != 2.0f || g[i] != 0.0f;
    TEST_CHECK(bad == 0, "masked_fill all masked", "%d elements wrong", bad);
    gvm_ctx_free(ctx);
    gvm_tensor_free(x);
    gvm_tensor_free(m);
    gvm_tensor_free(all);
}

static void test_dropout_props(void) {
    const int64_t n = 100001;  // not a multiple of 4: the last Philox block is partly used
    const float p = 0.3f, scale = 1.0f / (1.0f - p);
    gvm_tensor *x = make_input(110, 1, &n, IN_AWAY, 1);  // no exact zeros, so kept means y != 0
    const float *xv = x->data;
    gvm_ctx *ctx = gvm_ctx_new(42);
    ctx->training = true;
    uint64_t base = ctx->rng.offset;
    gvm_tensor *y = gvm_dropout(ctx, x, p);
    TEST_CHECK(ctx->rng.offset == base + (uint64_t)(n + 3) / 4, "dropout stream", "advanced %llu blocks",
               (unsigned long long)(ctx->rng.offset - base));
    float *gy = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) gy[i] = 0.5f + (float)(i % 7);
    gvm_backward_with_grad(ctx, y, gy);
    const float *yv = y->data, *gx = x->grad->data;
    int64_t kept = 0, bad_value = 0, bad_mask = 0, bad_grad = 0;
    for (int64_t i = 0; i < n; i++) {
        bool k = yv[i] != 0.0f;
        kept += k;
        if (k && fabsf(yv[i] - xv[i] * scale) > 1e-6f * fabsf(xv[i] * scale)) bad_value++;
        if (k != (gvm_rng_uniform_at(42, base, (uint64_t)i) >= p)) bad_mask++;
        if (gx[i] != (k ? gy[i] * scale : 0.0f)) bad_grad++;
    }
    TEST_CHECK(bad_value == 0, "dropout values", "%lld outputs neither 0 nor x/(1-p)", (long long)bad_value);
    TEST_CHECK(bad_mask == 0, "dropout mask", "%lld elements differ from the documented Philox mask",
               (long long)bad_mask);
    TEST_CHECK(bad_grad == 0, "dropout grad", "%lld gradients are not mask * scale * gy", (long long)bad_grad);
    double mean = (double)n * (1.0 - p), sigma = sqrt((double)n * p * (1.0 - p));
    TEST_CHECK(fabs((double)kept - mean) < 4.0 * sigma, "dropout rate", "kept %lld of %lld, expected %.0f +- %.0f",
               (long long)kept, (long long)n, mean, 4.0 * sigma);

    // The next call draws fresh values: a different mask.
    gvm_tensor *y2 = gvm_dropout(ctx, x, p);
    int64_t diff = 0;
    for (int64_t i = 0; i < n; i++) diff += (yv[i] != 0.0f) != (((float *)y2->data)[i] != 0.0f);
    TEST_CHECK(diff > n / 10, "dropout next call", "only %lld mask bits changed", (long long)diff);

    // Same seed, same mask, whatever the thread count; another seed, another mask.
    int saved_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    gvm_ctx *same = gvm_ctx_new(42), *other = gvm_ctx_new(43);
    gvm_tensor *ys = gvm_dropout(same, x, p);
    omp_set_num_threads(saved_threads);
    gvm_tensor *yo = gvm_dropout(other, x, p);
    TEST_CHECK(memcmp(ys->data, yv, (size_t)n * sizeof(float)) == 0, "dropout same seed", "outputs differ");
    diff = 0;
    for (int64_t i = 0; i < n; i++) diff += (yv[i] != 0.0f) != (((float *)yo->data)[i] != 0.0f);
    TEST_CHECK(diff > n / 10, "dropout other seed", "only %lld mask bits differ", (long long)diff);

    // Eval mode and p = 0: the identity, and the stream does not move.
    uint64_t off = other->rng.offset;
    other->training = false;
    gvm_tensor *ye = gvm_dropout(other, x, 0.5f);
    TEST_CHECK(ye->numel == n && memcmp(ye->data, xv, (size_t)n * sizeof(float)) == 0 && other->rng.offset == off,
               "dropout eval", "not the identity, or the stream advanced");
    other->training = true;
    gvm_tensor *y0 = gvm_dropout(other, x, 0.0f);
    TEST_CHECK(memcmp(y0->data, xv, (size_t)n * sizeof(float)) == 0 && other->rng.offset == off, "dropout p=0",
               "not the identity, or the stream advanced");

    // p = 1: all zeros, and so is the gradient.
    gvm_zero_grad(x);
    gvm_tensor *y1 = gvm_dropout(other, x, 1.0f);
    gvm_backward(other, y1);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < n; i++) nonzero += ((float *)y1->data)[i] != 0.0f || gx[i] != 0.0f;
    TEST_CHECK(nonzero == 0, "dropout p=1", "%lld nonzero outputs or gradients", (long long)nonzero);

    free(gy);
    gvm_ctx_free(ctx);
    gvm_ctx_free(same);
    gvm_ctx_free(other);
    gvm_tensor_free(x);
}

// ---- goldens ------------------------------------------------------------------------------------------------

static void goldens(void) {
    const char *const shapes[] = {"same", "bias", "lead", "rowscale", "both", "mid", "zerodim", "rank6"};
    const char *const unary[] = {"add_scalar", "mul_scalar", "pow_2", "pow_3", "pow_half", "pow_1p7", "pow_m1p5",
                                 "pow_0", "neg", "exp", "log", "sqrt", "abs", "gelu", "gelu_tanh", "relu", "elu",
                                 "elu_0p3", "silu", "tanh", "sigmoid"};
    const char *const masked[] = {"same", "bcast_mid", "bcast_lead", "bcast_last", "neg_inf"};
    char path[160];
    for (int o = 0; o < 4; o++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            snprintf(path, sizeof path, "elementwise/%s_%s.safetensors", k_binary_ops[o], shapes[s]);
            test_golden_op(path, fwd_elem, 1e-5, 1e-5);
        }
    for (size_t u = 0; u < sizeof unary / sizeof unary[0]; u++) {
        snprintf(path, sizeof path, "elementwise/%s.safetensors", unary[u]);
        test_golden_op(path, fwd_elem, 1e-5, 1e-5);
    }
    for (size_t m = 0; m < sizeof masked / sizeof masked[0]; m++) {
        snprintf(path, sizeof path, "elementwise/masked_fill_%s.safetensors", masked[m]);
        test_golden_op(path, fwd_elem, 1e-5, 1e-5);
    }
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    test_broadcast_plan();
    gradcheck_binary();
    gradcheck_unary();
    gradcheck_masked_fill_dropout();
    reference_binary();
    reference_unary();
    accuracy_activations();
    test_masked_fill_props();
    test_dropout_props();
    goldens();
    return test_finish();
}
