// test_autograd.c: the tape (core/autograd.c, core/context.c), exercised through matmul and linear.
//
// A tensor used twice accumulates both paths; no-grad scopes record nothing; the tape is empty after
// backward; nodes whose output got no gradient are skipped; micro-batch accumulation (two half batches
// into the same heap leaves) equals the full batch; heap-leaf gradients survive gvm_ctx_reset while
// later steps reuse the arena; the seed of gvm_backward is all ones. Expected gradients are computed
// here in double from the closed forms.
#include <math.h>
#include <string.h>

#include "tests/test_util.h"

// ---- small dense helpers in double, row-major ----------------------------------------------------------------
// c[m,n] = a[m,k] b[k,n] with optional transposes of the stored matrices.
static void ref_mm(const double *a, const double *b, double *c, int m, int n, int k, bool ta, bool tb) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
            c[i * n + j] = s;
        }
}

static void to_double(const float *x, double *y, int n) {
    for (int i = 0; i < n; i++) y[i] = x[i];
}

// |got - want| <= tol * (1 + |want|) everywhere.
static bool close_to(const char *name, const float *got, const double *want, int n, double tol) {
    int bad = 0, worst = 0;
    double we = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / (1 + fabs(want[i]));
        if (e > tol || isnan(got[i])) {
            bad++;
            if (e >= we) we = e, worst = i;
        }
    }
    return TEST_CHECK(bad == 0, name, "%d of %d differ; worst at %d: got %.8g want %.8g", bad, n, worst,
                      bad ? got[worst] : 0, bad ? want[worst] : 0);
}

static gvm_tensor *fwd_linear_twice(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    gvm_tensor *y1 = gvm_linear(ctx, in[0], in[1], in[2]);
    gvm_tensor *y2 = gvm_linear(ctx, in[0], in[1], in[2]);
    return gvm_matmul(ctx, y1, y2, false, true);
}

// y = x @ x: x gets G x^T + x^T G.
static void test_used_twice_matmul(void) {
    enum { N = 5 };
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *x = test_randn(11, 2, (int64_t[]){N, N}, 1.0f, true);
    gvm_tensor *g = test_randn(12, 2, (int64_t[]){N, N}, 1.0f, false);
    gvm_tensor *y = gvm_matmul(ctx, x, x, false, false);
    TEST_CHECK(ctx->tape_len == 1 && y->requires_grad && y->grad_fn && y->grad_fn->n_in == 2 &&
                   y->grad_fn->in[0] == x && y->grad_fn->in[1] == x,
               "matmul records one node", "tape_len %d", ctx->tape_len);
    gvm_backward_with_grad(ctx, y, g->data);
    TEST_CHECK(ctx->tape_len == 0, "tape empty after backward", "tape_len %d", ctx->tape_len);
    double xd[N * N], gd[N * N], t1[N * N], t2[N * N], want[N * N];
    to_double(x->data, xd, N * N);
    to_double(g->data, gd, N * N);
    ref_mm(gd, xd, t1, N, N, N, false, true);  // G x^T
    ref_mm(xd, gd, t2, N, N, N, true, false);  // x^T G
    for (int i = 0; i < N * N; i++) want[i] = t1[i] + t2[i];
    if (TEST_CHECK(x->grad != NULL, "matmul(x, x) grad", "no gradient"))
        close_to("matmul(x, x) accumulates both uses", x->grad->data, want, N * N, 1e-5);
    TEST_CHECK(x->grad && (x->grad->flags & GVM_TENSOR_HEAP_STRUCT), "heap leaf gets a heap grad", "arena grad");
    TEST_CHECK(y->grad && !(y->grad->flags & GVM_TENSOR_HEAP_STRUCT), "non-leaf gets an arena grad", "heap grad");
    gvm_tensor_free(x);
    gvm_tensor_free(g);
    gvm_ctx_free(ctx);
}

// z = linear(x, W, b) @ linear(x, W, b)^T: x, W and b each feed two nodes. With Y = x W^T + b:
// dY = G Y + G^T Y, dW = dY^T x, dx = dY W, db = column sums of dY.
static void test_used_twice_linear(void) {
    enum { R = 4, I = 3, O = 5 };
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *in[3] = {test_randn(21, 2, (int64_t[]){R, I}, 1.0f, true),
                         test_randn(22, 2, (int64_t[]){O, I}, 1.0f, true),
                         test_randn(23, 1, (int64_t[]){O}, 1.0f, true)};
    gvm_tensor *g = test_randn(24, 2, (int64_t[]){R, R}, 1.0f, false);
    gvm_tensor *z = fwd_linear_twice(ctx, in, NULL);
    TEST_CHECK(ctx->tape_len == 3, "three nodes recorded", "tape_len %d", ctx->tape_len);
    gvm_backward_with_grad(ctx, z, g->data);

    double x[R * I], w[O * I], b[O], gd[R * R], Y[R * O], dY[R * O], t[R * O], dW[O * I], dx[R * I], db[O];
    to_double(in[0]->data, x, R * I);
    to_double(in[1]->data, w, O * I);
    to_double(in[2]->data, b, O);
    to_double(g->data, gd, R * R);
    ref_mm(x, w, Y, R, O, I, false, true);
    for (int r = 0; r < R; r++)
        for (int o = 0; o < O; o++) Y[r * O + o] += b[o];
    ref_mm(gd, Y, dY, R, O, R, false, false);
    ref_mm(gd, Y, t, R, O, R, true, false);
    for (int i = 0; i < R * O; i++) dY[i] += t[i];
    ref_mm(dY, x, dW, O, I, R, true, false);
    ref_mm(dY, w, dx, R, I, O, false, false);
    for (int o = 0; o < O; o++) {
        db[o] = 0;
        for (int r = 0; r < R; r++) db[o] += dY[r * O + o];
    }
    bool have = in[0]->grad && in[1]->grad && in[2]->grad;
    if (TEST_CHECK(have, "linear twice grads", "a gradient is missing")) {
        close_to("linear twice: dx accumulates", in[0]->grad->data, dx, R * I, 1e-5);
        close_to("linear twice: dW accumulates", in[1]->grad->data, dW, O * I, 1e-5);
        close_to("linear twice: db accumulates", in[2]->grad->data, db, O, 1e-5);
    }
    // And the numeric check agrees (an overwrite instead of += would be off by about half).
    test_gradcheck("linear twice gradcheck", fwd_linear_twice, in, 3, NULL, NULL);
    for (int i = 0; i < 3; i++) gvm_tensor_free(in[i]);
    gvm_tensor_free(g);
    gvm_ctx_free(ctx);
}

static void test_no_grad(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *x = test_randn(31, 2, (int64_t[]){3, 4}, 1.0f, true);
    gvm_tensor *w = test_randn(32, 2, (int64_t[]){2, 4}, 1.0f, true);
    gvm_tensor *c = test_randn(33, 2, (int64_t[]){3, 4}, 1.0f, false);
    TEST_CHECK(gvm_grad_enabled(ctx), "grad enabled by default", "disabled");
    gvm_no_grad_begin(ctx);
    gvm_no_grad_begin(ctx);  // scopes nest
    gvm_tensor *y = gvm_linear(ctx, x, w, NULL);
    gvm_no_grad_end(ctx);
    gvm_tensor *y2 = gvm_matmul(ctx, x, w, false, true);
    TEST_CHECK(!gvm_grad_enabled(ctx) && ctx->tape_len == 0 && !y->requires_grad && !y->grad_fn &&
                   !y2->requires_grad && !y2->grad_fn,
               "no-grad scope records nothing", "tape_len %d", ctx->tape_len);
    gvm_no_grad_end(ctx);
    TEST_CHECK(gvm_grad_enabled(ctx), "grad enabled after the scope", "still disabled");
    // Inputs that do not require grad record nothing either.
    gvm_tensor *y3 = gvm_linear(ctx, c, c, NULL);
    TEST_CHECK(ctx->tape_len == 0 && !y3->requires_grad, "no recording without requires_grad", "tape_len %d",
               ctx->tape_len);
    gvm_tensor *y4 = gvm_linear(ctx, c, w, NULL);  // only w requires grad
    TEST_CHECK(ctx->tape_len == 1 && y4->requires_grad, "recording when one input requires grad", "tape_len %d",
               ctx->tape_len);
    gvm_backward(ctx, y4);
    TEST_CHECK(c->grad == NULL && w->grad != NULL && x->grad == NULL, "grads only for inputs that require them",
               "c %p w %p x %p", (void *)c->grad, (void *)w->grad, (void *)x->grad);
    gvm_tensor_free(x);
    gvm_tensor_free(w);
    gvm_tensor_free(c);
    gvm_ctx_free(ctx);
}

// gvm_backward seeds ones: for y = c W^T (c [3,4] constant), dW[o,i] = sum_r c[r,i].
// A recorded node whose output never receives a gradient must not run (its input gets no grad).
static void test_seed_and_skip(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *c = test_randn(41, 2, (int64_t[]){3, 4}, 1.0f, false);
    gvm_tensor *w = test_randn(42, 2, (int64_t[]){2, 4}, 1.0f, true);
    gvm_tensor *v = test_randn(43, 2, (int64_t[]){2, 4}, 1.0f, true);
    gvm_tensor *unused = gvm_linear(ctx, c, v, NULL);
    gvm_tensor *y = gvm_linear(ctx, c, w, NULL);
    TEST_CHECK(ctx->tape_len == 2 && unused->requires_grad, "two nodes recorded", "tape_len %d", ctx->tape_len);
    gvm_backward(ctx, y);
    double want[8];
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 4; i++) {
            want[o * 4 + i] = 0;
            for (int r = 0; r < 3; r++) want[o * 4 + i] += gvm_tensor_f32(c)[r * 4 + i];
        }
    if (TEST_CHECK(w->grad != NULL, "backward seeds ones", "no grad"))
        close_to("backward seeds ones", w->grad->data, want, 8, 1e-6);
    TEST_CHECK(v->grad == NULL && unused->grad == NULL, "node without output grad skipped", "v got a gradient");

    // A second identical step without zeroing doubles the gradient; gvm_zero_grad clears it.
    gvm_ctx_reset(ctx);
    y = gvm_linear(ctx, c, w, NULL);
    gvm_backward(ctx, y);
    for (int i = 0; i < 8; i++) want[i] *= 2;
    close_to("grads accumulate across backward calls", w->grad->data, want, 8, 1e-6);
    gvm_zero_grad(w);
    gvm_zero_grad(c);  // no grad yet: a no-op
    int nz = 0;
    for (int i = 0; i < 8; i++) nz += gvm_tensor_f32(w->grad)[i] != 0;
    TEST_CHECK(nz == 0 && c->grad == NULL, "zero_grad", "%d non-zero", nz);
    gvm_tensor_free(c);
    gvm_tensor_free(w);
    gvm_tensor_free(v);
    gvm_ctx_free(ctx);
}

// Two-layer MLP without activation: out = linear(linear(x, W1, b1), W2), so the hidden layer's gradient
// is an arena non-leaf. The batch [B, I] is split in halves by rows.
enum { B = 8, I = 6, H = 5, O = 3 };

static void mlp_step(gvm_ctx *ctx, gvm_tensor **p, const float *x, const float *g, int rows) {
    gvm_tensor *xt = gvm_tensor_from_f32(ctx, x, 2, (int64_t[]){rows, I});
    gvm_tensor *h = gvm_linear(ctx, xt, p[0], p[1]);
    gvm_tensor *out = gvm_linear(ctx, h, p[2], NULL);
    gvm_backward_with_grad(ctx, out, g);
    GVM_CHECK(h->grad && !(h->grad->flags & GVM_TENSOR_HEAP_STRUCT), "hidden grad should be arena memory");
}

static void test_micro_batches(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *p[3] = {test_randn(51, 2, (int64_t[]){H, I}, 1.0f, true), test_randn(52, 1, (int64_t[]){H}, 1.0f, true),
                        test_randn(53, 2, (int64_t[]){O, H}, 1.0f, true)};
    gvm_tensor *x = test_randn(54, 2, (int64_t[]){B, I}, 1.0f, false);
    gvm_tensor *g = test_randn(55, 2, (int64_t[]){B, O}, 1.0f, false);
    const float *xv = x->data, *gv = g->data;

    mlp_step(ctx, p, xv, gv, B);
    double full[3][H * I];
    for (int k = 0; k < 3; k++) to_double(p[k]->grad->data, full[k], (int)p[k]->numel);
    gvm_ctx_reset(ctx);
    for (int k = 0; k < 3; k++) gvm_zero_grad(p[k]);

    mlp_step(ctx, p, xv, gv, B / 2);
    float after_first[3][H * I];
    for (int k = 0; k < 3; k++) memcpy(after_first[k], p[k]->grad->data, (size_t)p[k]->numel * sizeof(float));
    float *grad_ptr[3] = {p[0]->grad->data, p[1]->grad->data, p[2]->grad->data};
    gvm_ctx_reset(ctx);
    // Heap-leaf grads outlive the reset; scribble over the arena first so a grad living there would show.
    memset(gvm_arena_alloc(&ctx->arena, 1 << 16), 0x7f, 1 << 16);
    bool kept = true;
    for (int k = 0; k < 3; k++)
        kept &= p[k]->grad->data == grad_ptr[k] &&
                memcmp(after_first[k], p[k]->grad->data, (size_t)p[k]->numel * sizeof(float)) == 0;
    TEST_CHECK(kept, "heap-leaf grads survive gvm_ctx_reset", "a gradient moved or changed");
    gvm_ctx_reset(ctx);

    mlp_step(ctx, p, xv + (B / 2) * I, gv + (B / 2) * O, B / 2);
    gvm_ctx_reset(ctx);
    const char *names[3] = {"micro-batches sum = full batch: W1", "micro-batches sum = full batch: b1",
                            "micro-batches sum = full batch: W2"};
    for (int k = 0; k < 3; k++) close_to(names[k], p[k]->grad->data, full[k], (int)p[k]->numel, 1e-6);

    for (int k = 0; k < 3; k++) gvm_tensor_free(p[k]);
    gvm_tensor_free(x);
    gvm_tensor_free(g);
    gvm_ctx_free(ctx);
}

// Parameters from a param store are heap leaves whose grads are views into the gradient block.
static void test_param_store_leaves(void) {
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_tensor *w = gvm_param_store_add(&ps, "w", 2, (int64_t[]){2, 3});
    gvm_param_store_finalize(&ps);
    for (int i = 0; i < 6; i++) gvm_tensor_f32(w)[i] = (float)i;
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *c = test_randn(61, 2, (int64_t[]){4, 3}, 1.0f, false);
    gvm_backward(ctx, gvm_linear(ctx, c, w, NULL));
    double want[6];
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 3; i++) {
            want[o * 3 + i] = 0;
            for (int r = 0; r < 4; r++) want[o * 3 + i] += gvm_tensor_f32(c)[r * 3 + i];
        }
    TEST_CHECK(w->grad->data == ps.grad + ps.offsets[0], "param grad lands in the block", "grad moved");
    close_to("param grad value", ps.grad + ps.offsets[0], want, 6, 1e-6);
    gvm_tensor_free(c);
    gvm_ctx_free(ctx);
    gvm_param_store_free(&ps);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    test_used_twice_matmul();
    test_used_twice_linear();
    test_no_grad();
    test_seed_and_skip();
    test_micro_batches();
    test_param_store_leaves();
    return test_finish();
}
