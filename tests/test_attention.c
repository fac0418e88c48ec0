// test_attention.c: the fused attention op: gradient checks over shapes and options (self, cross, causal
// aligned at the end, key masks with a fully masked batch row, custom scale, Dv != D, one tensor used as
// q, k and v), a float64 reference in C for larger shapes that take both threaded backward paths and
// gradient accumulation, the no-visible-key property (zeros, no NaN), and PyTorch goldens.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"

// in: q [B, Tq, H, D], k [B, Tk, H, D], v [B, Tk, H, Dv], mask [B, Tk] or NULL.
static gvm_tensor *fwd_attention(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    gvm_attention_opts o = {.causal = test_param_i(p, "causal", 0) != 0, .key_mask = in[3],
                            .scale = (float)test_param_f(p, "scale", 0.0)};
    return gvm_attention(ctx, in[0], in[1], in[2], &o);
}

// Key mask [B, Tk]: batch row b attends to keys j < len[b], except the listed holes (batch row 0 only).
static gvm_tensor *make_mask(int64_t B, int64_t Tk, const int *len, int hole) {
    gvm_tensor *m = gvm_tensor_new(GVM_BOOL, 2, (int64_t[]){B, Tk});
    uint8_t *d = gvm_tensor_u8(m);
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < Tk; j++) d[b * Tk + j] = j < len[b] && !(b == 0 && j == hole);
    return m;
}

typedef struct {
    const char *name;
    int64_t B, Tq, Tk, H, D, Dv;
    int causal;
    const int *len;  // NULL: no mask
    int hole;        // masked key of batch row 0 (-1: none)
    float scale;
    int grads;  // bit i: input i requires grad (0 = all three)
} attn_case;

static void gradcheck_case(const attn_case *c, const test_gradcheck_opts *opts) {
    gvm_tensor *in[4] = {test_randn(11, 4, (int64_t[]){c->B, c->Tq, c->H, c->D}, 1.0f, true),
                         test_randn(12, 4, (int64_t[]){c->B, c->Tk, c->H, c->D}, 1.0f, true),
                         test_randn(13, 4, (int64_t[]){c->B, c->Tk, c->H, c->Dv}, 1.0f, true),
                         c->len ? make_mask(c->B, c->Tk, c->len, c->hole) : NULL};
    for (int i = 0; i < 3; i++) in[i]->requires_grad = c->grads == 0 || (c->grads >> i & 1);
    char spec[96];
    snprintf(spec, sizeof spec, "causal=%d,scale=%g", c->causal, (double)c->scale);
    test_params p = test_params_parse(spec);
    test_gradcheck(c->name, fwd_attention, in, 4, &p, opts);
    for (int i = 0; i < 4; i++) gvm_tensor_free(in[i]);
}

static void gradchecks(void) {
    static const int len_a[] = {5, 2, 0}, len_b[] = {3, 5}, len_c[] = {4, 1}, len_d[] = {150, 97};
    const attn_case cases[] = {
        {"grad T=1", 2, 1, 1, 1, 2, 2, 0, NULL, -1, 0, 0},
        {"grad self", 2, 5, 5, 2, 3, 3, 0, NULL, -1, 0, 0},
        {"grad causal", 2, 7, 7, 3, 4, 4, 1, NULL, -1, 0, 0},
        {"grad cross Dv!=D", 2, 3, 6, 2, 5, 3, 0, NULL, -1, 0, 0},
        {"grad cross causal Tq<Tk", 1, 3, 7, 2, 3, 2, 1, NULL, -1, 0, 0},
        {"grad cross causal Tq>Tk (rows see no key)", 1, 6, 4, 2, 2, 3, 1, NULL, -1, 0, 0},
        {"grad masked (row 2 fully masked)", 3, 4, 5, 2, 3, 2, 0, len_a, 1, 0, 0},
        {"grad masked causal", 2, 5, 5, 1, 4, 4, 1, len_b, -1, 0, 0},
        {"grad masked cross causal", 2, 5, 4, 2, 3, 5, 1, len_c, 0, 0, 0},
        {"grad scale", 2, 4, 4, 2, 2, 2, 0, NULL, -1, 0.3f, 0},
        {"grad scale causal", 1, 4, 6, 3, 5, 2, 1, len_b, -1, 2.0f, 0},
        {"grad only q", 2, 4, 5, 2, 3, 2, 1, NULL, -1, 0, 1},
        {"grad only k", 2, 4, 5, 2, 3, 2, 0, len_c, -1, 0, 2},
        {"grad only v", 2, 4, 5, 2, 3, 2, 1, len_b, -1, 0, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) gradcheck_case(&cases[i], NULL);

    // Large enough to run on the thread team, in several query blocks: B*H = 1 shares one head's blocks
    // between threads (private dK/dV partials), B*H = 2 gives each thread a head. A bigger step keeps the
    // f32 rounding of the summed loss small against the difference.
    const test_gradcheck_opts big = {1e-2, 1e-3, 1e-2, 48};
    const attn_case large[] = {
        {"grad blocked, one head split", 1, 150, 150, 1, 6, 6, 1, NULL, -1, 0, 0},
        {"grad blocked, head per thread", 2, 150, 150, 1, 6, 5, 0, len_d, 7, 0, 0},
    };
    for (size_t i = 0; i < 2; i++) gradcheck_case(&large[i], &big);

    // One tensor as q, k and v: the three gradient contributions must add up.
    gvm_tensor *x = test_randn(21, 4, (int64_t[]){2, 5, 2, 3}, 1.0f, true);
    gvm_tensor *in[4] = {x, x, x, NULL};
    test_params p = test_params_parse("causal=1");
    test_gradcheck("grad shared q=k=v", fwd_attention, in, 4, &p, NULL);
    gvm_tensor_free(x);
}

// ---- float64 reference --------------------------------------------------------------------------------------

// Naive attention and its gradients in double for upstream gradient g (same layout as the op).
static void reference(const attn_case *c, const float *q, const float *k, const float *v, const uint8_t *mask,
                      const float *g, double *out, double *dq, double *dk, double *dv) {
    int64_t B = c->B, Tq = c->Tq, Tk = c->Tk, H = c->H, D = c->D, Dv = c->Dv;
    double scale = c->scale != 0 ? c->scale : 1.0 / sqrt((double)D);
    double *p = malloc((size_t)Tk * sizeof(double)), *dp = malloc((size_t)Tk * sizeof(double));
    memset(dq, 0, (size_t)(B * Tq * H * D) * sizeof(double));
    memset(dk, 0, (size_t)(B * Tk * H * D) * sizeof(double));
    memset(dv, 0, (size_t)(B * Tk * H * Dv) * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Tq; i++) {
                const float *qi = q + ((b * Tq + i) * H + h) * D;
                const float *gi = g + ((b * Tq + i) * H + h) * Dv;
                double *oi = out + ((b * Tq + i) * H + h) * Dv;
                double m = -INFINITY, sum = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    bool ok = (!mask || mask[b * Tk + j]) && (!c->causal || j <= i + Tk - Tq);
                    double s = 0;
                    for (int64_t e = 0; e < D; e++) s += (double)qi[e] * k[((b * Tk + j) * H + h) * D + e];
                    p[j] = ok ? s * scale : -INFINITY;
                    if (p[j] > m) m = p[j];
                }
                for (int64_t e = 0; e < Dv; e++) oi[e] = 0;
                if (m == -INFINITY) continue;  // no visible key: zero output, zero gradients
                for (int64_t j = 0; j < Tk; j++) sum += p[j] = exp(p[j] - m);
                double delta = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    p[j] /= sum;
                    const float *vj = v + ((b * Tk + j) * H + h) * Dv;
                    dp[j] = 0;
                    for (int64_t e = 0; e < Dv; e++) {
                        oi[e] += p[j] * vj[e];
                        dp[j] += (double)gi[e] * vj[e];
                        dv[((b * Tk + j) * H + h) * Dv + e] += p[j] * gi[e];
                    }
                    delta += p[j] * dp[j];
                }
                for (int64_t j = 0; j < Tk; j++) {
                    double ds = p[j] * (dp[j] - delta) * scale;
                    for (int64_t e = 0; e < D; e++) {
                        dq[((b * Tq + i) * H + h) * D + e] += ds * k[((b * Tk + j) * H + h) * D + e];
                        dk[((b * Tk + j) * H + h) * D + e] += ds * qi[e];
                    }
                }
            }
    free(p);
    free(dp);
}

static void compare(const char *name, const char *what, const float *got, const double *want, int64_t n,
                    double factor, double tol) {
    float *w = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) w[i] = (float)(want[i] * factor);
    char label[160];
    snprintf(label, sizeof label, "%s: %s", name, what);
    test_allclose(label, got, w, n, tol, tol);
    free(w);
}

// Forward and two backward passes (the gradients must accumulate to twice the reference).
static void reference_case(const attn_case *c) {
    gvm_tensor *q = test_randn(31, 4, (int64_t[]){c->B, c->Tq, c->H, c->D}, 1.0f, true);
    gvm_tensor *k = test_randn(32, 4, (int64_t[]){c->B, c->Tk, c->H, c->D}, 1.0f, true);
    gvm_tensor *v = test_randn(33, 4, (int64_t[]){c->B, c->Tk, c->H, c->Dv}, 1.0f, true);
    gvm_tensor *mask = c->len ? make_mask(c->B, c->Tk, c->len, c->hole) : NULL;
    gvm_tensor *g = test_randn(34, 4, (int64_t[]){c->B, c->Tq, c->H, c->Dv}, 1.0f, false);
    int64_t nq = q->numel, nk = k->numel, nv = v->numel, no = g->numel;
    double *ro = malloc((size_t)no * sizeof(double)), *rq = malloc((size_t)nq * sizeof(double));
    double *rk = malloc((size_t)nk * sizeof(double)), *rv = malloc((size_t)nv * sizeof(double));
    reference(c, q->data, k->data, v->data, mask ? gvm_tensor_u8(mask) : NULL, g->data, ro, rq, rk, rv);
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_attention_opts o = {.causal = c->causal != 0, .key_mask = mask, .scale = c->scale};
    const char *name = c->name;
    for (int pass = 0; pass < 2; pass++) {
        gvm_tensor *out = gvm_attention(ctx, q, k, v, &o);
        if (pass == 0) compare(name, "output", out->data, ro, no, 1.0, 2e-5);
        gvm_backward_with_grad(ctx, out, g->data);
        gvm_ctx_reset(ctx);
    }
    // Sums over up to Tk terms of O(1) products in f32 (BLAS order): 2e-5 absolute and relative.
    compare(name, "2x grad q", q->grad->data, rq, nq, 2.0, 2e-5);
    compare(name, "2x grad k", k->grad->data, rk, nk, 2.0, 2e-5);
    compare(name, "2x grad v", v->grad->data, rv, nv, 2.0, 2e-5);
    gvm_ctx_free(ctx);
    free(ro), free(rq), free(rk), free(rv);
    gvm_tensor_free(q), gvm_tensor_free(k), gvm_tensor_free(v), gvm_tensor_free(mask), gvm_tensor_free(g);
}

static void reference_cases(void) {
    static const int len_a[] = {200, 131, 7}, len_b[] = {0, 90};
    const attn_case cases[] = {
        // B*H = 3 on two threads: blocks of each head split between threads.
        {"ref causal masked B*H=3", 3, 200, 200, 1, 16, 16, 1, len_a, 50, 0, 0},
        // B*H = 4: a head per thread; Tq > Tk causal (the first 70 rows see no key), batch row 0 masked.
        {"ref cross causal B*H=4", 2, 160, 90, 2, 8, 12, 1, len_b, -1, 0, 0},
        // Long keys (a small block of rows), Tq < Tk, custom scale.
        {"ref long keys", 1, 40, 3000, 2, 8, 4, 0, NULL, -1, 0.2f, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) reference_case(&cases[i]);
}

// ---- rows that see no key ---------------------------------------------------------------------------------------

// torch returns NaN for such rows; we define them as 0 with zero gradients everywhere they touch.
static void no_visible_key(void) {
    int64_t B = 2, Tq = 5, Tk = 3, H = 2, D = 3;
    gvm_tensor *q = test_randn(41, 4, (int64_t[]){B, Tq, H, D}, 3.0f, true);
    gvm_tensor *k = test_randn(42, 4, (int64_t[]){B, Tk, H, D}, 3.0f, true);
    gvm_tensor *v = test_randn(43, 4, (int64_t[]){B, Tk, H, D}, 1.0f, true);
    gvm_tensor *mask = make_mask(B, Tk, (const int[]){3, 0}, -1);  // batch row 1 sees nothing
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_attention_opts o = {.causal = true, .key_mask = mask};  // causal with Tq > Tk: rows 0, 1 of batch row 0 see no key
    gvm_tensor *out = gvm_attention(ctx, q, k, v, &o);
    gvm_backward(ctx, out);
    const float *y = out->data, *dq = q->grad->data, *dk = k->grad->data, *dv = v->grad->data;
    bool zeros = true, finite = true, others_nonzero = true;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < Tq; i++) {
            bool blind = b == 1 || i < Tq - Tk;
            for (int64_t e = 0; e < H * D; e++) {
                float yo = y[(b * Tq + i) * H * D + e], g = dq[(b * Tq + i) * H * D + e];
                finite &= isfinite(yo) && isfinite(g);
                if (blind) zeros &= yo == 0.0f && g == 0.0f;
            }
            if (!blind) others_nonzero &= y[(b * Tq + i) * H * D] != 0.0f;
        }
    for (int64_t e = 0; e < Tk * H * D; e++) {
        finite &= isfinite(dk[e]) && isfinite(dv[e]);
        zeros &= dk[Tk * H * D + e] == 0.0f && dv[Tk * H * D + e] == 0.0f;  // batch row 1's keys and values
    }
    TEST_CHECK(finite, "no visible key", "NaN or inf in output or gradients");
    TEST_CHECK(zeros, "no visible key", "blind rows must give exactly 0 output and 0 gradients");
    TEST_CHECK(others_nonzero, "no visible key", "rows that see keys came out 0");
    gvm_ctx_free(ctx);
    gvm_tensor_free(q), gvm_tensor_free(k), gvm_tensor_free(v), gvm_tensor_free(mask);
}

// kv_len (a KV cache's prefix inside its capacity): k, v [B, cap, H, D] with kv_len = len give exactly what the
// dense prefixes [B, len, H, D] give (the same kernel reads the same numbers), causal or not, with a key mask.
static void kv_len_prefix(void) {
    const int64_t B = 2, Tq = 3, H = 2, D = 4, cap = 9, len = 6;
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *q = test_randn(11, 4, (int64_t[]){B, Tq, H, D}, 1.0f, false);
    gvm_tensor *kc = test_randn(12, 4, (int64_t[]){B, cap, H, D}, 1.0f, false);
    gvm_tensor *vc = test_randn(13, 4, (int64_t[]){B, cap, H, D}, 1.0f, false);
    gvm_tensor *k = gvm_tensor_new(GVM_F32, 4, (int64_t[]){B, len, H, D}), *v = gvm_tensor_new(GVM_F32, 4, (int64_t[]){B, len, H, D});
    const int64_t row = H * D;
    for (int64_t b = 0; b < B; b++) {
        memcpy(gvm_tensor_f32(k) + b * len * row, gvm_tensor_f32(kc) + b * cap * row, (size_t)(len * row) * sizeof(float));
        memcpy(gvm_tensor_f32(v) + b * len * row, gvm_tensor_f32(vc) + b * cap * row, (size_t)(len * row) * sizeof(float));
    }
    gvm_tensor *mask = gvm_tensor_new(GVM_U8, 2, (int64_t[]){B, len});
    for (int64_t i = 0; i < B * len; i++) gvm_tensor_u8(mask)[i] = (uint8_t)(i % 4 != 1);
    for (int causal = 0; causal < 2; causal++) {
        const gvm_attention_opts dense = {.causal = causal, .key_mask = mask};
        const gvm_attention_opts prefix = {.causal = causal, .key_mask = mask, .kv_len = len};
        const gvm_tensor *a = gvm_attention(ctx, q, k, v, &dense), *b = gvm_attention(ctx, q, kc, vc, &prefix);
        TEST_CHECK(memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)) == 0, "attention kv_len = dense prefix",
                   "causal %d", causal);
    }
    gvm_tensor_free(q);
    gvm_tensor_free(kc);
    gvm_tensor_free(vc);
    gvm_tensor_free(k);
    gvm_tensor_free(v);
    gvm_tensor_free(mask);
    gvm_ctx_free(ctx);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    gradchecks();
    reference_cases();
    no_visible_key();
    kv_len_prefix();
    const char *cases[] = {"self",   "self_causal",   "cross", "cross_causal_short_q", "cross_causal_long_q",
                           "masked", "masked_causal", "scale", "size1",                "large_scores",
                           "long_causal_masked", "long_cross"};
    char path[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "attention/%s.safetensors", cases[i]);
        test_golden_op(path, fwd_attention, 1e-5, 1e-5);
    }
    return test_finish();
}
