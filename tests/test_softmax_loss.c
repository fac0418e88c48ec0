// test_softmax_loss.c: softmax, log-softmax, cross-entropy, MSE and L1.
//  * finite-difference gradient checks over shapes, every axis position (first, middle, last, size-1,
//    wider than a 64-column tile), i32/i64 targets, ignore_index present/absent/all, L1 and MSE;
//  * PyTorch goldens (tests/golden/gen_softmax_loss.py): large logits, -1e30 (masked) logits, ties;
//  * long rows (2048-way, the LM's codebook) and large middle-axis inputs against a double-precision
//    reference, on 1 and 3 threads (the parallel paths and the vectorised exp);
//  * all targets ignored gives exactly 0 and zero gradients; an out-of-range target aborts naming it;
//  * backward accumulates into existing gradients.
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/test_util.h"

// The op under test comes from the params ("op=softmax,axis=1"), as the golden files store it.
static gvm_tensor *fwd_op(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    const char *op = test_param_s(p, "op", "");
    int axis = (int)test_param_i(p, "axis", -1);
    if (!strcmp(op, "softmax")) return gvm_softmax(ctx, in[0], axis);
    if (!strcmp(op, "log_softmax")) return gvm_log_softmax(ctx, in[0], axis);
    if (!strcmp(op, "cross_entropy"))
        return gvm_cross_entropy(ctx, in[0], in[1], test_param_i(p, "ignore_index", -100));
    if (!strcmp(op, "mse_loss")) return gvm_mse_loss(ctx, in[0], in[1]);
    if (!strcmp(op, "l1_loss")) return gvm_l1_loss(ctx, in[0], in[1]);
    gvm_fatal(__FILE__, __LINE__, "unknown op '%s'", op);
}

// ---- gradient checks -------------------------------------------------------------------------------------------

typedef struct {
    int ndim;
    int64_t shape[4];
    int axis;
} axis_case;

static void gradcheck_softmax(void) {
    static const axis_case cases[] = {
        {1, {6}, 0},       {2, {3, 7}, -1},    {2, {3, 7}, 0},       {3, {2, 3, 4}, 1},  {3, {4, 3, 2}, 0},
        {3, {2, 1, 3}, 1}, {3, {2, 3, 1}, -1}, {4, {2, 3, 2, 5}, 2}, {3, {2, 5, 70}, 1}, {2, {1, 1}, 0},
    };
    const char *ops[] = {"softmax", "log_softmax"};
    char name[128], spec[64];
    for (int o = 0; o < 2; o++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            const axis_case *k = &cases[c];
            snprintf(spec, sizeof spec, "op=%s,axis=%d", ops[o], k->axis);
            test_params p = test_params_parse(spec);
            gvm_tensor *x = test_randn(100 + c, k->ndim, k->shape, 1.5f, true);
            snprintf(name, sizeof name, "gradcheck %s case %zu", spec, c);
            test_gradcheck(name, fwd_op, &x, 1, &p, NULL);
            gvm_tensor_free(x);
        }
}

// Targets in 0..C-1 with every `every`-th one (when every > 0) set to ignore_index.
static gvm_tensor *make_targets(uint64_t seed, gvm_dtype dtype, int64_t N, int64_t C, int64_t ignore_index, int every) {
    gvm_tensor *t = test_randint(seed, dtype, 1, (int64_t[]){N}, C);
    for (int64_t i = 0; every > 0 && i < N; i += every) {
        if (dtype == GVM_I32)
            ((int32_t *)t->data)[i] = (int32_t)ignore_index;
        else
            ((int64_t *)t->data)[i] = ignore_index;
    }
    return t;
}

static void gradcheck_losses(void) {
    typedef struct {
        int64_t N, C;
        gvm_dtype dtype;
        int64_t ignore_index;
        int every;
    } ce_case;
    static const ce_case ce[] = {
        {6, 5, GVM_I64, -100, 0}, {7, 4, GVM_I32, -100, 3}, {5, 9, GVM_I64, 0, 2},
        {1, 3, GVM_I32, -1, 0},   {4, 1, GVM_I64, -100, 0}, {9, 70, GVM_I64, -100, 4},
    };
    char name[128], spec[64];
    for (size_t c = 0; c < sizeof ce / sizeof ce[0]; c++) {
        const ce_case *k = &ce[c];
        gvm_tensor *in[2] = {test_randn(200 + c, 2, (int64_t[]){k->N, k->C}, 2.0f, true),
                             make_targets(300 + c, k->dtype, k->N, k->C, k->ignore_index, k->every)};
        snprintf(spec, sizeof spec, "op=cross_entropy,ignore_index=%lld", (long long)k->ignore_index);
        test_params p = test_params_parse(spec);
        snprintf(name, sizeof name, "gradcheck cross_entropy case %zu (%s)", c, gvm_dtype_name(k->dtype));
        test_gradcheck(name, fwd_op, in, 2, &p, NULL);
        gvm_tensor_free(in[0]);
        gvm_tensor_free(in[1]);
    }
    static const axis_case pair[] = {{1, {7}, 0}, {3, {2, 3, 4}, 0}, {2, {1, 1}, 0}};
    const char *ops[] = {"mse_loss", "l1_loss"};
    for (int o = 0; o < 2; o++)
        for (size_t c = 0; c < sizeof pair / sizeof pair[0]; c++) {
            gvm_tensor *in[2] = {test_randn(400 + c, pair[c].ndim, pair[c].shape, 1.0f, true),
                                 test_randn(500 + c, pair[c].ndim, pair[c].shape, 1.0f, true)};
            snprintf(spec, sizeof spec, "op=%s", ops[o]);
            test_params p = test_params_parse(spec);
            snprintf(name, sizeof name, "gradcheck %s case %zu", ops[o], c);
            test_gradcheck(name, fwd_op, in, 2, &p, NULL);
            in[1]->requires_grad = false;  // only one side differentiated
            snprintf(name, sizeof name, "gradcheck %s case %zu, b constant", ops[o], c);
            test_gradcheck(name, fwd_op, in, 2, &p, NULL);
            gvm_tensor_free(in[0]);
            gvm_tensor_free(in[1]);
        }
}

// ---- references in double ------------------------------------------------------------------------------------

// softmax / log-softmax of x [outer, n, inner] over n, and the input gradient for upstream r.
static void ref_softmax(const float *x, const float *r, int64_t outer, int64_t n, int64_t inner, bool log_out,
                        double *y, double *dx) {
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const int64_t base = o * n * inner + i;
            double m = -INFINITY, s = 0.0, sr = 0.0, sry = 0.0;
            for (int64_t k = 0; k < n; k++) m = fmax(m, x[base + k * inner]);
            for (int64_t k = 0; k < n; k++) s += exp(x[base + k * inner] - m);
            for (int64_t k = 0; k < n; k++) {
                int64_t at = base + k * inner;
                double p = exp(x[at] - m) / s;
                y[at] = log_out ? (x[at] - m) - log(s) : p;
                sr += r[at];
                sry += r[at] * p;
            }
            for (int64_t k = 0; k < n; k++) {
                int64_t at = base + k * inner;
                double p = exp(x[at] - m) / s;
                dx[at] = log_out ? r[at] - p * sr : p * (r[at] - sry);
            }
        }
}

// Forward and backward of `op` on heap input x with upstream gradient r; returns the arena output.
static gvm_tensor *run_with_grad(gvm_ctx *ctx, gvm_tensor **in, const test_params *p, const float *r) {
    for (int i = 0; i < 2; i++) gvm_zero_grad(in[i]);
    gvm_tensor *out = fwd_op(ctx, in, p);
    gvm_backward_with_grad(ctx, out, r);
    return out;
}

static void reference_softmax(int threads) {
    typedef struct {
        int64_t outer, n, inner;
        float scale;
    } big_case;
    // 2048-way rows (parallel over rows), a middle axis with inner 100 (parallel over 64-wide tiles), and
    // a scale of 20 so exp() sees arguments down to about -150 (through its flush-to-zero range).
    static const big_case cases[] = {{40, 2048, 1, 5.0f}, {3, 300, 100, 1.0f}, {17, 513, 1, 20.0f}};
    char name[160];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const big_case *k = &cases[c];
        int64_t numel = k->outer * k->n * k->inner;
        gvm_tensor *x = test_randn(600 + c, 3, (int64_t[]){k->outer, k->n, k->inner}, k->scale, true);
        float *xv = x->data;
        for (int64_t i = 0; i < numel; i += 7) xv[i] = -1e30f;  // masked logits sprinkled in
        gvm_tensor *rt = test_randn(700 + c, 1, (int64_t[]){numel}, 1.0f, false);
        double *y = malloc((size_t)numel * sizeof(double)), *dx = malloc((size_t)numel * sizeof(double));
        for (int lo = 0; lo < 2; lo++) {
            ref_softmax(xv, rt->data, k->outer, k->n, k->inner, lo, y, dx);
            test_params p = test_params_parse(lo ? "op=log_softmax,axis=1" : "op=softmax,axis=1");
            gvm_ctx *ctx = gvm_ctx_new(1);
            gvm_tensor *in[2] = {x, NULL};
            gvm_tensor *out = run_with_grad(ctx, in, &p, rt->data);
            snprintf(name, sizeof name, "%s [%lld, %lld, %lld] x%g on %d threads: output",
                     lo ? "log_softmax" : "softmax", (long long)k->outer, (long long)k->n, (long long)k->inner,
                     k->scale, threads);
            test_close_to_ref(name, out->data, y, numel, 1e-5);
            strcat(name, " grad");
            test_close_to_ref(name, x->grad->data, dx, numel, 1e-5);
            gvm_ctx_free(ctx);
        }
        free(y);
        free(dx);
        gvm_tensor_free(x);
        gvm_tensor_free(rt);
    }
}

// Cross-entropy of the LM's shape class: 2048-way rows, some targets ignored, logits spread wide.
static void reference_cross_entropy(int threads) {
    const int64_t N = 96, C = 2048, ignore = -100;
    gvm_tensor *logits = test_randn(800, 2, (int64_t[]){N, C}, 8.0f, true);
    gvm_tensor *t = make_targets(801, GVM_I32, N, C, ignore, 5);
    const float *x = logits->data;
    const int32_t *tv = t->data;
    double total = 0.0;
    int64_t count = 0;
    for (int64_t i = 0; i < N; i++)
        if (tv[i] != ignore) count++;
    double *dx = calloc((size_t)(N * C), sizeof(double));
    const double seed = 0.75;
    for (int64_t i = 0; i < N; i++) {
        if (tv[i] == ignore) continue;
        double m = -INFINITY, s = 0.0;
        for (int64_t j = 0; j < C; j++) m = fmax(m, x[i * C + j]);
        for (int64_t j = 0; j < C; j++) s += exp(x[i * C + j] - m);
        total += m + log(s) - x[i * C + tv[i]];
        for (int64_t j = 0; j < C; j++) dx[i * C + j] = seed * (exp(x[i * C + j] - m) / s - (j == tv[i])) / count;
    }
    double loss = total / count;
    gvm_ctx *ctx = gvm_ctx_new(1);
    test_params p = test_params_parse("op=cross_entropy,ignore_index=-100");
    gvm_tensor *in[2] = {logits, t};
    float r = (float)seed;
    gvm_tensor *out = run_with_grad(ctx, in, &p, &r);
    char name[128];
    snprintf(name, sizeof name, "cross_entropy [%lld, %lld] on %d threads: loss", (long long)N, (long long)C, threads);
    float lf = *(float *)out->data, lr = (float)loss;
    test_allclose(name, &lf, &lr, 1, 1e-5, 1e-5);
    snprintf(name, sizeof name, "cross_entropy [%lld, %lld] on %d threads: grad", (long long)N, (long long)C, threads);
    test_close_to_ref(name, logits->grad->data, dx, N * C, 1e-6);  // gradients are ~1e-4: absolute 1e-6 is tight
    gvm_ctx_free(ctx);
    free(dx);
    gvm_tensor_free(logits);
    gvm_tensor_free(t);
}

// The kernels' own exp(): softmax of rows [0, x] is e^x / (1 + e^x), which for x << 0 is e^x itself, so a sweep
// of x over [-87, 0] measures exp's relative error directly (a softmax hides a uniform error in exp).
static void test_exp_accuracy(void) {
    const int64_t rows = 8701;
    gvm_tensor *x = gvm_tensor_new(GVM_F32, 2, (int64_t[]){rows, 2});
    float *xv = x->data, *want = malloc((size_t)rows * sizeof(float));
    for (int64_t i = 0; i < rows; i++) {
        xv[2 * i] = 0.0f;
        xv[2 * i + 1] = -0.01f * (float)i;
        double e = exp((double)xv[2 * i + 1]);
        want[i] = (float)(e / (1.0 + e));
    }
    gvm_ctx *ctx = gvm_ctx_new(1);
    const float *y = gvm_softmax(ctx, x, -1)->data;
    float *got = malloc((size_t)rows * sizeof(float));
    for (int64_t i = 0; i < rows; i++) got[i] = y[2 * i + 1];
    test_allclose("softmax [0, x] for x in [-87, 0]: within 5 ulp", got, want, rows, 0.0, 3e-7);
    // Below about -87.3 exp(x) is subnormal; the kernel flushes it to 0 (and -inf gives exactly 0).
    xv[1] = -88.0f;
    xv[3] = -INFINITY;
    xv[5] = -1e30f;
    y = gvm_softmax(ctx, x, -1)->data;
    TEST_CHECK(y[1] < 1e-37f && y[3] == 0.0f && y[5] == 0.0f && y[0] == 1.0f && y[2] == 1.0f,
               "softmax flushes exp below -87.3", "got %g %g %g", y[1], y[3], y[5]);
    free(want);
    free(got);
    gvm_ctx_free(ctx);
    gvm_tensor_free(x);
}

// ---- edge cases --------------------------------------------------------------------------------------------------

static void test_all_ignored(void) {
    gvm_tensor *logits = test_randn(900, 2, (int64_t[]){4, 6}, 1.0f, true);
    gvm_tensor *t = make_targets(901, GVM_I64, 4, 6, 7, 1);  // ignore_index 7, every row ignored
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *loss = gvm_cross_entropy(ctx, logits, t, 7);
    float v = *(float *)loss->data;
    TEST_CHECK(v == 0.0f && !isnan(v), "cross_entropy all ignored: loss", "got %g, want exactly 0", v);
    gvm_backward(ctx, loss);
    bool zero = logits->grad != NULL;
    for (int64_t i = 0; zero && i < logits->numel; i++) zero = ((float *)logits->grad->data)[i] == 0.0f;
    TEST_CHECK(zero, "cross_entropy all ignored: grads", "gradient missing or not all zero");
    // No rows at all is the same case.
    gvm_tensor *e = gvm_tensor_new(GVM_F32, 2, (int64_t[]){0, 6});
    gvm_tensor *et = gvm_tensor_new(GVM_I32, 1, (int64_t[]){0});
    v = *(float *)gvm_cross_entropy(ctx, e, et, -100)->data;
    TEST_CHECK(v == 0.0f, "cross_entropy of no rows", "got %g, want 0", v);
    gvm_ctx_free(ctx);
    gvm_tensor_free(logits);
    gvm_tensor_free(t);
    gvm_tensor_free(e);
    gvm_tensor_free(et);
}

// A target outside 0..C-1 that is not ignore_index must abort with a message naming it (in a child).
static void test_bad_target(void) {
    const int64_t bad[] = {5, 9, -3, -100};  // C = 5; ignore_index -1 (so -100 is bad too)
    for (int i = 0; i < 4; i++) {
        int fds[2];
        if (pipe(fds) != 0) {
            TEST_CHECK(false, "bad target aborts", "pipe failed");
            return;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            dup2(fds[1], 2);
            gvm_ctx *ctx = gvm_ctx_new(1);
            gvm_tensor *logits = test_randn(1, 2, (int64_t[]){3, 5}, 1.0f, false);
            gvm_tensor *t = gvm_tensor_new(i % 2 ? GVM_I32 : GVM_I64, 1, (int64_t[]){3});
            int64_t vals[3] = {0, bad[i], -1};
            for (int j = 0; j < 3; j++) {
                if (t->dtype == GVM_I32)
                    ((int32_t *)t->data)[j] = (int32_t)vals[j];
                else
                    ((int64_t *)t->data)[j] = vals[j];
            }
            gvm_cross_entropy(ctx, logits, t, -1);
            _exit(0);  // reached only when the check is missing
        }
        close(fds[1]);
        char msg[1024] = {0};
        size_t len = 0;
        ssize_t got;
        while (len < sizeof msg - 1 && (got = read(fds[0], msg + len, sizeof msg - 1 - len)) > 0) len += (size_t)got;
        close(fds[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        char want[64];
        snprintf(want, sizeof want, "target %lld", (long long)bad[i]);
        TEST_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(msg, want),
                   "bad target aborts naming it", "target %lld: status %d, message '%s'", (long long)bad[i], status,
                   msg);
    }
}

// Backward adds into a gradient that is already there: two passes give twice one pass.
static void test_accumulates(const char *spec, gvm_tensor **in) {
    test_params p = test_params_parse(spec);
    float *first[2] = {NULL, NULL};
    for (int pass = 0; pass < 2; pass++) {
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *out = fwd_op(ctx, in, &p);
        gvm_tensor *r = test_randn(1000, out->ndim, out->shape, 1.0f, false);
        gvm_backward_with_grad(ctx, out, r->data);
        for (int i = 0; i < 2 && pass == 0; i++)
            if (in[i] && in[i]->requires_grad) {
                first[i] = malloc((size_t)in[i]->numel * sizeof(float));
                memcpy(first[i], in[i]->grad->data, (size_t)in[i]->numel * sizeof(float));
                for (int64_t j = 0; j < in[i]->numel; j++) first[i][j] *= 2.0f;
            }
        gvm_tensor_free(r);
        gvm_ctx_free(ctx);
    }
    char name[128];
    for (int i = 0; i < 2; i++)
        if (first[i]) {
            snprintf(name, sizeof name, "%s: backward accumulates into input %d", spec, i);
            test_allclose(name, in[i]->grad->data, first[i], in[i]->numel, 1e-6, 1e-6);
            free(first[i]);
        }
}

static void accumulation_checks(void) {
    gvm_tensor *x = test_randn(1100, 3, (int64_t[]){2, 5, 3}, 1.0f, true);
    gvm_tensor *in[2] = {x, NULL};
    const char *specs[] = {"op=softmax,axis=1", "op=softmax,axis=-1", "op=log_softmax,axis=1",
                           "op=log_softmax,axis=-1"};
    for (int i = 0; i < 4; i++) {
        gvm_zero_grad(x);
        test_accumulates(specs[i], in);
    }
    gvm_tensor_free(x);
    gvm_tensor *ce[2] = {test_randn(1101, 2, (int64_t[]){5, 4}, 1.0f, true),
                         make_targets(1102, GVM_I64, 5, 4, -100, 2)};
    test_accumulates("op=cross_entropy,ignore_index=-100", ce);
    gvm_tensor_free(ce[0]);
    gvm_tensor_free(ce[1]);
    gvm_tensor *ab[2] = {test_randn(1103, 1, (int64_t[]){9}, 1.0f, true),
                         test_randn(1104, 1, (int64_t[]){9}, 1.0f, true)};
    test_accumulates("op=mse_loss", ab);
    gvm_zero_grad(ab[0]);
    gvm_zero_grad(ab[1]);
    test_accumulates("op=l1_loss", ab);
    gvm_tensor_free(ab[0]);
    gvm_tensor_free(ab[1]);
}

// ---- goldens -------------------------------------------------------------------------------------------------------

static void goldens(void) {
    const char *shapes[] = {"1d", "last",  "last3d",    "mid",    "first",     "mid_wide",
                            "n1", "large", "large_mid", "masked", "masked_mid"};
    const char *others[] = {"ce_basic",    "ce_ignore",    "ce_i32",        "ce_ignore_i32", "ce_all_ignored",
                            "ce_c1",       "ce_large",     "ce_masked",     "ce_n1",         "mse_loss_1d",
                            "mse_loss_3d", "mse_loss_one", "mse_loss_ties", "l1_loss_1d",    "l1_loss_3d",
                            "l1_loss_one", "l1_loss_ties"};
    char path[160];
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int lo = 0; lo < 2; lo++) {
            snprintf(path, sizeof path, "softmax_loss/%s_%s.safetensors", lo ? "log_softmax" : "softmax", shapes[i]);
            test_golden_op(path, fwd_op, 1e-5, 1e-5);
        }
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        snprintf(path, sizeof path, "softmax_loss/%s.safetensors", others[i]);
        test_golden_op(path, fwd_op, 1e-5, 1e-5);
    }
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    goldens();
    gradcheck_softmax();
    gradcheck_losses();
    test_exp_accuracy();
    test_all_ignored();
    test_bad_target();
    accumulation_checks();
    // Once on one thread and once on three, so both schedules run whatever the machine has.
    int threads0 = omp_get_max_threads();
    const int thread_counts[2] = {1, 3};
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(thread_counts[k]);
        reference_softmax(thread_counts[k]);
        reference_cross_entropy(thread_counts[k]);
    }
    omp_set_num_threads(threads0);
    return test_finish();
}
