// test_nn_modules.c: the base model modules of nn/ (linear, embedding, layer_norm, mlp, attention,
// MusicGen's decoder layer): forward, parameter and input gradients against PyTorch twins whose parameter
// names are the Hugging Face ones (tests/golden/gen_nn.py), the KV cache against the full causal forward,
// the key masks, and the initialisation conventions of nn/module.h.
#include <math.h>
#include <string.h>

#include "nn/attention.h"
#include "nn/embedding.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "nn/mlp.h"
#include "nn/transformer.h"
#include "tests/nn_golden.h"
#include "tests/test_util.h"


// ---- goldens per module --------------------------------------------------------------------------------------
static void golden_linear(const char *name) {
    nn_golden_case c;
    if (!nn_golden_case_open(&c, "nn", name)) return;
    gvm_nn_linear m;
    const gvm_nn_linear_cfg cfg = {test_param_i(&c.p, "in", 0), test_param_i(&c.p, "out", 0),
                                   test_param_i(&c.p, "bias", 0), 0};
    gvm_nn_linear_init(&m, &c.ps, c.prefix, &cfg);
    nn_golden_case_load_params(&c);
    nn_golden_case_finish_out(&c, gvm_nn_linear_forward(c.ctx, &m, nn_golden_case_input(&c, "x")));
}

static void golden_embedding(void) {
    nn_golden_case c;
    if (!nn_golden_case_open(&c, "nn", "embedding")) return;
    gvm_nn_embedding m;
    const gvm_nn_embedding_cfg cfg = {test_param_i(&c.p, "num", 0), test_param_i(&c.p, "dim", 0), 0};
    gvm_nn_embedding_init(&m, &c.ps, c.prefix, &cfg);
    nn_golden_case_load_params(&c);
    nn_golden_case_finish_out(&c, gvm_nn_embedding_forward(c.ctx, &m, nn_golden_case_input(&c, "idx")));
}

static void golden_layer_norm(const char *name) {
    nn_golden_case c;
    if (!nn_golden_case_open(&c, "nn", name)) return;
    gvm_nn_layer_norm m;
    const gvm_nn_layer_norm_cfg cfg = {.dim = test_param_i(&c.p, "dim", 0), .eps = test_param_f(&c.p, "eps", 0)};
    gvm_nn_layer_norm_init(&m, &c.ps, c.prefix, &cfg);
    TEST_CHECK(m.eps == (float)test_param_f(&c.p, "eps", 0), name, "eps %g", m.eps);
    nn_golden_case_load_params(&c);
    nn_golden_case_finish_out(&c, gvm_nn_layer_norm_forward(c.ctx, &m, nn_golden_case_input(&c, "x")));
}

static void golden_mlp(const char *name) {
    nn_golden_case c;
    if (!nn_golden_case_open(&c, "nn", name)) return;
    gvm_nn_mlp m;
    const char *act = test_param_s(&c.p, "act", "gelu");
    const gvm_nn_mlp_cfg cfg = {.dim = test_param_i(&c.p, "dim", 0), .hidden = test_param_i(&c.p, "hidden", 0),
                                .act = strcmp(act, "quick_gelu") == 0 ? GVM_NN_ACT_QUICK_GELU : GVM_NN_ACT_GELU,
                                .bias = test_param_i(&c.p, "bias", 0)};
    gvm_nn_mlp_init(&m, &c.ps, c.prefix, &cfg);
    nn_golden_case_load_params(&c);
    nn_golden_case_finish_out(&c, gvm_nn_mlp_forward(c.ctx, &m, nn_golden_case_input(&c, "x")));
}

static void golden_attention(const char *name) {
    nn_golden_case c;
    if (!nn_golden_case_open(&c, "nn", name)) return;
    gvm_nn_attention m;
    const gvm_nn_attention_cfg cfg = {test_param_i(&c.p, "embed_dim", 0), test_param_i(&c.p, "heads", 0),
                                      test_param_i(&c.p, "kv_dim", 0), test_param_i(&c.p, "bias", 0), 0};
    gvm_nn_attention_init(&m, &c.ps, c.prefix, &cfg);
    nn_golden_case_load_params(&c);
    gvm_tensor *x = nn_golden_case_input(&c, "x");
    gvm_tensor *cond = gvm_safetensors_find(c.st, "in.cond") ? nn_golden_case_input(&c, "cond") : NULL;
    gvm_tensor *mask = gvm_safetensors_find(c.st, "in.mask") ? nn_golden_case_input(&c, "mask") : NULL;
    nn_golden_case_finish_out(&c, gvm_nn_attention_forward(c.ctx, &m, x, cond, mask, test_param_i(&c.p, "causal", 0), NULL));
}

static gvm_nn_decoder_layer_cfg layer_cfg(const test_params *p) {
    return (gvm_nn_decoder_layer_cfg){.d_model = test_param_i(p, "d_model", 0),
                                      .num_heads = test_param_i(p, "heads", 0),
                                      .ffn_dim = test_param_i(p, "ffn", 0),
                                      .cross_attention = test_param_i(p, "cross", 0)};
}

static void golden_decoder_layer(const char *name) {
    nn_golden_case c;
    if (!nn_golden_case_open(&c, "nn", name)) return;
    gvm_nn_decoder_layer m;
    const gvm_nn_decoder_layer_cfg cfg = layer_cfg(&c.p);
    gvm_nn_decoder_layer_init(&m, &c.ps, c.prefix, &cfg);
    nn_golden_case_load_params(&c);
    gvm_tensor *x = nn_golden_case_input(&c, "x");
    gvm_tensor *smask = NULL, *cond = NULL, *cmask = NULL;
    if (cfg.cross_attention) {
        smask = nn_golden_case_input(&c, "self_mask");
        cond = nn_golden_case_input(&c, "cond");
        cmask = nn_golden_case_input(&c, "cond_mask");
    }
    nn_golden_case_finish_out(&c, gvm_nn_decoder_layer_forward(c.ctx, &m, x, smask, cond, cmask, NULL));
}

// ---- KV cache: decoding step by step equals the full causal forward ----------------------------------------
static float max_abs_diff(const float *a, const float *b, int64_t n) {
    float w = 0;
    for (int64_t i = 0; i < n; i++) w = fmaxf(w, fabsf(a[i] - b[i]));
    return isnan(w) ? INFINITY : w;
}

static gvm_tensor *u8_tensor(gvm_ctx *ctx, int64_t b, int64_t t, const uint8_t *v, int64_t stride) {
    gvm_tensor *m = gvm_tensor_empty(ctx, GVM_U8, 2, (int64_t[]){b, t});
    for (int64_t i = 0; i < b; i++) memcpy(gvm_tensor_u8(m) + i * t, v + i * stride, (size_t)t);
    return m;
}

// `chunks` lists how many steps each forward feeds (summing to T): {1, 1, ...} is plain decoding,
// {3, 1, ...} a prompt prefilled at once (causal with Tq > 1 over a non-empty cache).
static void cache_matches_full(const char *name, bool cross, const int *chunks, int n_chunks) {
    const int64_t B = 2, T = 7, Tc = 3, d = 12;
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_decoder_layer m;
    const gvm_nn_decoder_layer_cfg cfg = {.d_model = d, .num_heads = 3, .cross_attention = cross, .init_std = 0.3f};
    gvm_nn_decoder_layer_init(&m, &ps, "model.decoder.layers.0", &cfg);
    gvm_param_store_finalize(&ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 11);
    gvm_nn_decoder_layer_reset_parameters(&m, &rng);

    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_no_grad_begin(ctx);
    gvm_tensor *x = test_randn(3, 3, (int64_t[]){B, T, d}, 1.0f, false);     // [B, T, d]
    gvm_tensor *cond = test_randn(4, 3, (int64_t[]){B, Tc, d}, 1.0f, false); // [B, Tc, d]
    const uint8_t smask[2][7] = {{1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0, 0}};  // right padding
    const uint8_t cmask[2][3] = {{1, 1, 1}, {0, 1, 1}};
    gvm_tensor *cm = cross ? u8_tensor(ctx, B, Tc, cmask[0], Tc) : NULL;
    gvm_tensor *full = gvm_nn_decoder_layer_forward(ctx, &m, x, u8_tensor(ctx, B, T, smask[0], T), cross ? cond : NULL,
                                                    cm, NULL);  // [B, T, d]

    gvm_nn_decoder_layer_cache cache;
    gvm_nn_decoder_layer_cache_init(&cache);
    for (int pass = 0; pass < 2; pass++) {  // the second pass checks that reset really starts afresh
        gvm_nn_decoder_layer_cache_reset(&cache);
        float worst = 0;
        int64_t t0 = 0;
        for (int ci = 0; ci < n_chunks; ci++) {
            const int64_t tn = chunks[ci];
            gvm_tensor *xs = gvm_slice(ctx, x, 1, t0, t0 + tn);  // [B, tn, d]
            // cond only on the first step: later steps must get it from the cache
            gvm_tensor *y = gvm_nn_decoder_layer_forward(ctx, &m, xs, u8_tensor(ctx, B, t0 + tn, smask[0], T),
                                                         cross && t0 == 0 ? cond : NULL, cm, &cache);  // [B, tn, d]
            gvm_tensor *ref = gvm_slice(ctx, full, 1, t0, t0 + tn);
            worst = fmaxf(worst, max_abs_diff(gvm_tensor_f32(y), gvm_tensor_f32(ref), y->numel));
            t0 += tn;
        }
        TEST_CHECK(t0 == T && cache.self_attn.len == T, name, "cache holds %lld steps, expected %lld",
                   (long long)cache.self_attn.len, (long long)T);
        TEST_CHECK(worst <= 1e-5f, name, "pass %d: cached decoding differs from the full forward by %g", pass, worst);
    }
    if (cross) TEST_CHECK(cache.encoder_attn.len == Tc, name, "cross cache holds %lld", (long long)cache.encoder_attn.len);
    gvm_nn_decoder_layer_cache_free(&cache);
    gvm_no_grad_end(ctx);
    gvm_tensor_free(x);
    gvm_tensor_free(cond);
    gvm_ctx_free(ctx);
    gvm_param_store_free(&ps);
}

// ---- the key mask really hides keys: changing a masked condition frame leaves the output unchanged ----------
static void cross_mask_hides(void) {
    const int64_t B = 2, Tq = 3, Tk = 5, E = 8, Ekv = 6;
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_attention m;
    const gvm_nn_attention_cfg cfg = {E, 2, Ekv, true, 0.5f};
    gvm_nn_attention_init(&m, &ps, "encoder_attn", &cfg);
    gvm_param_store_finalize(&ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 5);
    gvm_nn_attention_reset_parameters(&m, &rng);
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *x = test_randn(1, 3, (int64_t[]){B, Tq, E}, 1.0f, false);
    gvm_tensor *kv = test_randn(2, 3, (int64_t[]){B, Tk, Ekv}, 1.0f, false);
    const uint8_t mv[2][5] = {{1, 1, 0, 1, 0}, {0, 1, 1, 1, 1}};
    gvm_tensor *mask = u8_tensor(ctx, B, Tk, mv[0], Tk);
    gvm_tensor *y0 = gvm_nn_attention_forward(ctx, &m, x, kv, mask, false, NULL);
    gvm_tensor *y_nomask = gvm_nn_attention_forward(ctx, &m, x, kv, NULL, false, NULL);
    float *k = gvm_tensor_f32(kv);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < Tk; t++)
            if (!mv[b][t])
                for (int64_t j = 0; j < Ekv; j++) k[(b * Tk + t) * Ekv + j] += 10.0f;
    gvm_tensor *y1 = gvm_nn_attention_forward(ctx, &m, x, kv, mask, false, NULL);
    float same = max_abs_diff(gvm_tensor_f32(y0), gvm_tensor_f32(y1), y0->numel);
    float differs = max_abs_diff(gvm_tensor_f32(y0), gvm_tensor_f32(y_nomask), y0->numel);
    TEST_CHECK(same == 0.0f, "cross mask hides masked frames", "output moved by %g", same);
    TEST_CHECK(differs > 1e-3f, "cross mask changes the output", "masked and unmasked differ by only %g", differs);
    gvm_tensor_free(x);
    gvm_tensor_free(kv);
    gvm_ctx_free(ctx);
    gvm_param_store_free(&ps);
}

// ---- dropout: configurable, off by default, identity outside training --------------------------------------
static gvm_tensor *layer_with_dropout(gvm_ctx *ctx, gvm_param_store *ps, gvm_tensor *x, float p, bool training) {
    gvm_param_store_init(ps);
    gvm_nn_decoder_layer m;
    const gvm_nn_decoder_layer_cfg cfg = {.d_model = 8, .num_heads = 2, .dropout = p, .activation_dropout = p};
    gvm_nn_decoder_layer_init(&m, ps, "l", &cfg);
    gvm_param_store_finalize(ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 3);  // same seed, same registration order: the same parameter values
    gvm_nn_decoder_layer_reset_parameters(&m, &rng);
    ctx->training = training;
    return gvm_nn_decoder_layer_forward(ctx, &m, x, NULL, NULL, NULL, NULL);
}

static void dropout_config(void) {
    gvm_ctx *ctx = gvm_ctx_new(2);
    gvm_tensor *x = test_randn(8, 3, (int64_t[]){2, 5, 8}, 1.0f, false);
    gvm_param_store ps[4];
    gvm_tensor *ref = layer_with_dropout(ctx, &ps[0], x, 0.0f, true);
    gvm_tensor *eval = layer_with_dropout(ctx, &ps[1], x, 0.5f, false);
    gvm_tensor *train = layer_with_dropout(ctx, &ps[2], x, 0.5f, true);
    gvm_tensor *zero_eval = layer_with_dropout(ctx, &ps[3], x, 0.0f, false);
    const int64_t n = ref->numel;
    TEST_CHECK(max_abs_diff(gvm_tensor_f32(ref), gvm_tensor_f32(eval), n) == 0.0f, "dropout off in eval",
               "eval output depends on the dropout rate");
    TEST_CHECK(max_abs_diff(gvm_tensor_f32(ref), gvm_tensor_f32(zero_eval), n) == 0.0f, "dropout 0 in training",
               "rate 0 changes the output in training mode");
    TEST_CHECK(max_abs_diff(gvm_tensor_f32(ref), gvm_tensor_f32(train), n) > 1e-3f, "dropout active in training",
               "rate 0.5 in training left the output unchanged");
    for (int i = 0; i < 4; i++) gvm_param_store_free(&ps[i]);
    gvm_tensor_free(x);
    gvm_ctx_free(ctx);
}

// ---- initialisation and names (module.h) ---------------------------------------------------------------------
static void init_conventions(void) {
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_decoder_layer m;
    const gvm_nn_decoder_layer_cfg cfg = {.d_model = 64, .num_heads = 4, .cross_attention = true};
    gvm_nn_decoder_layer_init(&m, &ps, "model.decoder.layers.3", &cfg);
    gvm_param_store_finalize(&ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 9);
    gvm_nn_decoder_layer_reset_parameters(&m, &rng);
    const char *expect[] = {"model.decoder.layers.3.self_attn.q_proj.weight",
                            "model.decoder.layers.3.self_attn.out_proj.weight",
                            "model.decoder.layers.3.self_attn_layer_norm.weight",
                            "model.decoder.layers.3.encoder_attn.k_proj.weight",
                            "model.decoder.layers.3.encoder_attn_layer_norm.bias",
                            "model.decoder.layers.3.fc1.weight", "model.decoder.layers.3.fc2.weight",
                            "model.decoder.layers.3.final_layer_norm.bias"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        TEST_CHECK(gvm_param_store_find(&ps, expect[i]) != NULL, "init names", "missing %s", expect[i]);
    TEST_CHECK(ps.n_params == 4 + 2 + 4 + 2 + 2 + 2, "init names", "%d parameters (no biases expected)", ps.n_params);
    TEST_CHECK(m.mlp.fc1.weight->shape[0] == 256, "init ffn 4x", "fc1 out %lld", (long long)m.mlp.fc1.weight->shape[0]);
    const float *w = gvm_tensor_f32(m.mlp.fc1.weight);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < m.mlp.fc1.weight->numel; i++) s += w[i], s2 += (double)w[i] * w[i];
    const double n = (double)m.mlp.fc1.weight->numel, sd = sqrt(s2 / n - (s / n) * (s / n));
    TEST_CHECK(fabs(sd - 0.02) < 0.001 && fabs(s / n) < 0.001, "init weight N(0, 0.02)", "mean %g std %g", s / n, sd);
    const float *lw = gvm_tensor_f32(m.final_layer_norm.weight), *lb = gvm_tensor_f32(m.final_layer_norm.bias);
    bool ones = true;
    for (int i = 0; i < 64; i++) ones &= lw[i] == 1.0f && lb[i] == 0.0f;
    TEST_CHECK(ones, "init layer norm 1/0", "layer norm weight/bias not 1/0");
    gvm_param_store_free(&ps);

    gvm_param_store_init(&ps);
    gvm_nn_linear l;
    const gvm_nn_linear_cfg lc = {3, 5, true, 0.5f};
    gvm_nn_linear_init(&l, &ps, "", &lc);
    gvm_param_store_finalize(&ps);
    gvm_nn_init_const(l.bias, 3.0f);
    gvm_nn_linear_reset_parameters(&l, &rng);
    bool zero = true;
    for (int i = 0; i < 5; i++) zero &= gvm_tensor_f32(l.bias)[i] == 0.0f;
    TEST_CHECK(zero && gvm_param_store_find(&ps, "weight") && gvm_param_store_find(&ps, "bias"), "init linear bias",
               "bias not zeroed or bare names not used");
    gvm_param_store_free(&ps);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    golden_linear("linear_bias");
    golden_linear("linear_nobias");
    golden_embedding();
    golden_layer_norm("layer_norm");
    golden_layer_norm("layer_norm_eps12");
    golden_mlp("mlp_gelu");
    golden_mlp("mlp_quick_gelu");
    golden_attention("attn_self_causal");
    golden_attention("attn_self_full");
    golden_attention("attn_cross");
    golden_attention("attn_cross_step");
    golden_decoder_layer("decoder_layer");
    golden_decoder_layer("decoder_layer_nocross");

    cache_matches_full("kv cache: one step at a time, cross", true, (int[]){1, 1, 1, 1, 1, 1, 1}, 7);
    cache_matches_full("kv cache: prefill 3 then steps, cross", true, (int[]){3, 1, 2, 1}, 4);
    cache_matches_full("kv cache: one step at a time, no cross", false, (int[]){1, 1, 1, 1, 1, 1, 1}, 7);
    cross_mask_hides();
    dropout_config();
    init_conventions();
    return test_finish();
}
