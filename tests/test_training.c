// test_training.c: end-to-end learning on fixed synthetic tasks, using only core ops.
//
//  * a two-layer MLP learns a 3-class spiral (loss must fall below 0.15);
//  * a one-block causal transformer (embeddings, pre-norm attention + GELU MLP, LM head) learns to
//    continue sequences that repeat with period P: predicting token t from token t-P needs attention,
//    so the loss on positions t >= P must fall below 0.1;
//  * running either task twice with the same seed gives bit-identical losses.
// A small Adam lives here (the real optimisers are in train/): one loop over the parameter block.
#include <math.h>
#include <string.h>

#include "tests/test_util.h"

// ---- Adam over a whole parameter store ----------------------------------------------------------------------

static void adam_step(gvm_param_store *ps, int step, float lr) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float *m = gvm_param_store_state(ps, 0), *v = gvm_param_store_state(ps, 1);
    float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
    for (size_t i = 0; i < ps->total; i++) {
        float g = ps->grad[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        ps->data[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
}

static void init_normal(gvm_tensor *t, gvm_rng *rng, float std) { gvm_rng_normal(rng, t->data, (size_t)t->numel, 0, std); }

// ---- MLP on a spiral ------------------------------------------------------------------------------------------

#define SPIRAL_N 300
#define SPIRAL_CLASSES 3

static void spiral(float *x, int64_t *y) {
    for (int c = 0; c < SPIRAL_CLASSES; c++) {
        for (int i = 0; i < SPIRAL_N / SPIRAL_CLASSES; i++) {
            int k = c * (SPIRAL_N / SPIRAL_CLASSES) + i;
            float r = (float)i / (SPIRAL_N / SPIRAL_CLASSES);
            float t = (float)c * 4.0f + r * 4.0f + 0.2f * sinf((float)k * 12.9898f);  // fixed jitter
            x[2 * k] = r * sinf(t);
            x[2 * k + 1] = r * cosf(t);
            y[k] = c;
        }
    }
}

static void train_mlp(uint64_t seed, int steps, float *losses) {
    const int64_t hidden = 64;
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_tensor *w1 = gvm_param_store_add(&ps, "w1", 2, (int64_t[]){hidden, 2});
    gvm_tensor *b1 = gvm_param_store_add(&ps, "b1", 1, (int64_t[]){hidden});
    gvm_tensor *w2 = gvm_param_store_add(&ps, "w2", 2, (int64_t[]){SPIRAL_CLASSES, hidden});
    gvm_tensor *b2 = gvm_param_store_add(&ps, "b2", 1, (int64_t[]){SPIRAL_CLASSES});
    gvm_param_store_finalize(&ps);
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    init_normal(w1, &rng, 1.0f);
    init_normal(w2, &rng, 0.1f);
    (void)b1;
    (void)b2;

    gvm_tensor *x = gvm_tensor_new(GVM_F32, 2, (int64_t[]){SPIRAL_N, 2});
    gvm_tensor *y = gvm_tensor_new(GVM_I64, 1, (int64_t[]){SPIRAL_N});
    spiral(x->data, y->data);
    gvm_ctx *ctx = gvm_ctx_new(seed);
    for (int s = 0; s < steps; s++) {
        gvm_param_store_zero_grad(&ps);
        gvm_tensor *h = gvm_gelu(ctx, gvm_linear(ctx, x, w1, b1));        // [N, hidden]
        gvm_tensor *logits = gvm_linear(ctx, h, w2, b2);                   // [N, classes]
        gvm_tensor *loss = gvm_cross_entropy(ctx, logits, y, -100);        // scalar
        losses[s] = *(float *)loss->data;
        gvm_backward(ctx, loss);
        adam_step(&ps, s + 1, 0.02f);
        gvm_ctx_reset(ctx);
    }
    gvm_ctx_free(ctx);
    gvm_tensor_free(x);
    gvm_tensor_free(y);
    gvm_param_store_free(&ps);
}

// ---- one-block transformer on periodic sequences -------------------------------------------------------------

enum { TF_V = 8, TF_T = 16, TF_P = 5, TF_D = 32, TF_H = 4, TF_B = 16 };

typedef struct {
    gvm_param_store ps;
    gvm_tensor *tok, *pos, *ln1_w, *ln1_b, *qkv_w, *proj_w, *ln2_w, *ln2_b, *fc_w, *fc_b, *out_w, *out_b, *lnf_w,
        *lnf_b, *head_w;
} tiny_transformer;

static gvm_tensor *param(tiny_transformer *m, const char *name, int ndim, const int64_t *shape) {
    return gvm_param_store_add(&m->ps, name, ndim, shape);
}

static void tf_init(tiny_transformer *m, uint64_t seed) {
    gvm_param_store_init(&m->ps);
    m->tok = param(m, "tok", 2, (int64_t[]){TF_V, TF_D});
    m->pos = param(m, "pos", 2, (int64_t[]){TF_T, TF_D});
    m->ln1_w = param(m, "ln1.w", 1, (int64_t[]){TF_D});
    m->ln1_b = param(m, "ln1.b", 1, (int64_t[]){TF_D});
    m->qkv_w = param(m, "qkv.w", 2, (int64_t[]){3 * TF_D, TF_D});
    m->proj_w = param(m, "proj.w", 2, (int64_t[]){TF_D, TF_D});
    m->ln2_w = param(m, "ln2.w", 1, (int64_t[]){TF_D});
    m->ln2_b = param(m, "ln2.b", 1, (int64_t[]){TF_D});
    m->fc_w = param(m, "fc.w", 2, (int64_t[]){4 * TF_D, TF_D});
    m->fc_b = param(m, "fc.b", 1, (int64_t[]){4 * TF_D});
    m->out_w = param(m, "out.w", 2, (int64_t[]){TF_D, 4 * TF_D});
    m->out_b = param(m, "out.b", 1, (int64_t[]){TF_D});
    m->lnf_w = param(m, "lnf.w", 1, (int64_t[]){TF_D});
    m->lnf_b = param(m, "lnf.b", 1, (int64_t[]){TF_D});
    m->head_w = param(m, "head.w", 2, (int64_t[]){TF_V, TF_D});
    gvm_param_store_finalize(&m->ps);
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    gvm_tensor *normal[] = {m->tok, m->pos, m->qkv_w, m->proj_w, m->fc_w, m->out_w, m->head_w};
    for (size_t i = 0; i < sizeof normal / sizeof normal[0]; i++) init_normal(normal[i], &rng, 0.1f);
    gvm_tensor_fill(m->ln1_w, 1.0f);
    gvm_tensor_fill(m->ln2_w, 1.0f);
    gvm_tensor_fill(m->lnf_w, 1.0f);
}

// tokens [B, T] i64 -> logits [B, T, V]
static gvm_tensor *tf_forward(gvm_ctx *ctx, tiny_transformer *m, gvm_tensor *tokens) {
    gvm_tensor *x = gvm_add(ctx, gvm_embedding(ctx, m->tok, tokens), m->pos);                 // [B, T, D]
    gvm_tensor *h = gvm_layer_norm(ctx, x, m->ln1_w, m->ln1_b, 1e-5f);
    gvm_tensor *qkv = gvm_linear(ctx, h, m->qkv_w, NULL);                                    // [B, T, 3D]
    gvm_tensor *parts[3];
    gvm_split(ctx, qkv, 2, 3, (int64_t[]){TF_D, TF_D, TF_D}, parts);
    int64_t heads[4] = {TF_B, TF_T, TF_H, TF_D / TF_H};
    gvm_tensor *q = gvm_reshape(ctx, parts[0], 4, heads);                                    // [B, T, H, Dh]
    gvm_tensor *k = gvm_reshape(ctx, parts[1], 4, heads);
    gvm_tensor *v = gvm_reshape(ctx, parts[2], 4, heads);
    gvm_attention_opts opts = {.causal = true};
    gvm_tensor *a = gvm_attention(ctx, q, k, v, &opts);                                       // [B, T, H, Dh]
    a = gvm_reshape(ctx, a, 3, (int64_t[]){TF_B, TF_T, TF_D});
    x = gvm_add(ctx, x, gvm_linear(ctx, a, m->proj_w, NULL));
    h = gvm_layer_norm(ctx, x, m->ln2_w, m->ln2_b, 1e-5f);
    h = gvm_linear(ctx, gvm_gelu(ctx, gvm_linear(ctx, h, m->fc_w, m->fc_b)), m->out_w, m->out_b);
    x = gvm_add(ctx, x, h);
    x = gvm_layer_norm(ctx, x, m->lnf_w, m->lnf_b, 1e-5f);
    return gvm_linear(ctx, x, m->head_w, NULL);                                               // [B, T, V]
}

// A fresh batch: each row is a random prefix of P tokens repeated. Targets: the next token, with the
// first P-1 targets ignored (they are not predictable).
static void periodic_batch(gvm_rng *rng, gvm_tensor *tokens, gvm_tensor *targets) {
    int64_t *tk = tokens->data, *tg = targets->data;
    for (int b = 0; b < TF_B; b++) {
        int64_t prefix[TF_P];
        for (int i = 0; i < TF_P; i++) prefix[i] = (int64_t)gvm_rng_below(rng, TF_V);
        for (int t = 0; t < TF_T; t++) tk[b * TF_T + t] = prefix[t % TF_P];
        for (int t = 0; t < TF_T; t++) tg[b * TF_T + t] = t + 1 >= TF_P ? prefix[(t + 1) % TF_P] : -100;
    }
}

static void train_transformer(uint64_t seed, int steps, float *losses) {
    tiny_transformer m;
    tf_init(&m, seed);
    gvm_tensor *tokens = gvm_tensor_new(GVM_I64, 2, (int64_t[]){TF_B, TF_T});
    gvm_tensor *targets = gvm_tensor_new(GVM_I64, 1, (int64_t[]){TF_B * TF_T});
    gvm_rng data_rng;
    gvm_rng_init(&data_rng, seed + 1);
    gvm_ctx *ctx = gvm_ctx_new(seed);
    for (int s = 0; s < steps; s++) {
        periodic_batch(&data_rng, tokens, targets);
        gvm_param_store_zero_grad(&m.ps);
        gvm_tensor *logits = tf_forward(ctx, &m, tokens);
        logits = gvm_reshape(ctx, logits, 2, (int64_t[]){TF_B * TF_T, TF_V});
        gvm_tensor *loss = gvm_cross_entropy(ctx, logits, targets, -100);
        losses[s] = *(float *)loss->data;
        gvm_backward(ctx, loss);
        adam_step(&m.ps, s + 1, 3e-3f);
        gvm_ctx_reset(ctx);
    }
    gvm_ctx_free(ctx);
    gvm_tensor_free(tokens);
    gvm_tensor_free(targets);
    gvm_param_store_free(&m.ps);
}

static float tail_mean(const float *losses, int steps, int last) {
    double acc = 0;
    for (int i = steps - last; i < steps; i++) acc += losses[i];
    return (float)(acc / last);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    enum { MLP_STEPS = 400, TF_STEPS = 600 };
    static float a[TF_STEPS], b[TF_STEPS];

    train_mlp(7, MLP_STEPS, a);
    train_mlp(7, MLP_STEPS, b);
    float mlp_final = tail_mean(a, MLP_STEPS, 20);
    printf("mlp: first loss %.4f, mean of last 20 %.4f\n", a[0], mlp_final);
    TEST_CHECK(mlp_final < 0.15f, "mlp learns the spiral", "final loss %.4f >= 0.15", mlp_final);
    TEST_CHECK(memcmp(a, b, sizeof(float) * MLP_STEPS) == 0, "mlp deterministic", "two seeded runs differ");

    train_transformer(11, TF_STEPS, a);
    train_transformer(11, TF_STEPS, b);
    float tf_final = tail_mean(a, TF_STEPS, 20);
    printf("transformer: first loss %.4f, mean of last 20 %.4f\n", a[0], tf_final);
    TEST_CHECK(tf_final < 0.1f, "transformer learns the periodic copy", "final loss %.4f >= 0.1", tf_final);
    TEST_CHECK(memcmp(a, b, sizeof(float) * TF_STEPS) == 0, "transformer deterministic", "two seeded runs differ");
    return test_finish();
}
