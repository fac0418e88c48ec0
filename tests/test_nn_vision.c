// test_nn_vision.c: the vision modules of nn/ (GVMGen stages 1 and 2): the CLIP ViT (nn/vit.h) and the
// Q-Former (nn/qformer.h). Forward, every parameter gradient and the input gradients against float64
// PyTorch twins with the Hugging Face names (tests/golden/gen_nn_vision.py); the patch extraction against
// torch's conv2d; the full-size configurations' names and sizes; dropout; freezing the ViT.
#include <math.h>
#include <string.h>

#include "nn/qformer.h"
#include "nn/vit.h"
#include "tests/nn_golden.h"
#include "tests/test_util.h"

#define TOL 1e-5  // as the core goldens: the twin runs in float64, so this is our f32 error alone

// ---- patch extraction == conv2d(stride = kernel) ------------------------------------------------------------
static gvm_tensor *fwd_patch_embed(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    (void)p;
    return gvm_nn_patch_embed(ctx, in[0], in[1]);
}

static gvm_tensor *fwd_patchify(gvm_ctx *ctx, gvm_tensor **in, const test_params *p) {
    return gvm_nn_patchify(ctx, in[0], test_param_i(p, "patch", 1));
}

static void patch_tests(void) {
    test_golden_op("nn_vision/patch_embed.safetensors", fwd_patch_embed, TOL, TOL);
    test_golden_op("nn_vision/patch_embed_rem.safetensors", fwd_patch_embed, TOL, TOL);
    test_golden_op("nn_vision/patch_embed_c2.safetensors", fwd_patch_embed, TOL, TOL);

    // finite differences (patchify is a pure gather, so its gradient must be a scatter of the upstream one)
    const int64_t shapes[][4] = {{2, 3, 8, 8}, {1, 2, 7, 7}, {1, 1, 3, 3}};
    const int64_t patches[] = {4, 3, 3};
    for (int i = 0; i < 3; i++) {
        gvm_tensor *x = test_randn(40 + (uint64_t)i, 4, shapes[i], 1.0f, true);
        char spec[32], name[64];
        snprintf(spec, sizeof spec, "patch=%lld", (long long)patches[i]);
        snprintf(name, sizeof name, "patchify gradcheck %d", i);
        test_params p = test_params_parse(spec);
        test_gradcheck(name, fwd_patchify, &x, 1, &p, NULL);
        gvm_tensor_free(x);
    }
    gvm_tensor *x = test_randn(50, 4, (int64_t[]){2, 3, 6, 6}, 1.0f, true);
    gvm_tensor *w = test_randn(51, 4, (int64_t[]){4, 3, 3, 3}, 0.3f, true);
    test_gradcheck("patch_embed gradcheck", fwd_patch_embed, (gvm_tensor *[]){x, w}, 2, NULL, NULL);
    gvm_tensor_free(x);
    gvm_tensor_free(w);

    // the flattening order, spelled out: patch (gy, gx) of image b holds x[b, c, gy p + ky, gx p + kx] at
    // c p p + ky p + kx
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *img = test_randn(52, 4, (int64_t[]){2, 3, 7, 7}, 1.0f, false);  // 7 = 2 * 3 + 1: remainder
    gvm_tensor *pt = gvm_nn_patchify(ctx, img, 3);                               // [2, 4, 27]
    bool ok = pt->ndim == 3 && pt->shape[1] == 4 && pt->shape[2] == 27;
    const float *a = gvm_tensor_f32(img), *b = gvm_tensor_f32(pt);
    for (int n = 0; ok && n < 2; n++)
        for (int gy = 0; gy < 2; gy++)
            for (int gx = 0; gx < 2; gx++)
                for (int c = 0; c < 3; c++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++)
                            ok &= b[(n * 4 + gy * 2 + gx) * 27 + c * 9 + ky * 3 + kx] ==
                                  a[((n * 3 + c) * 7 + gy * 3 + ky) * 7 + gx * 3 + kx];
    TEST_CHECK(ok, "patchify order", "patch layout differs from (c, ky, kx) in row-major grid order");
    gvm_tensor_free(img);
    gvm_ctx_free(ctx);
}

// ---- ViT ---------------------------------------------------------------------------------------------------------
static gvm_nn_vit_cfg vit_cfg(const test_params *p) {
    return (gvm_nn_vit_cfg){.image_size = test_param_i(p, "image", 0), .patch_size = test_param_i(p, "patch", 0),
                            .width = test_param_i(p, "width", 0), .layers = test_param_i(p, "layers", 0),
                            .heads = test_param_i(p, "heads", 0), .mlp_dim = test_param_i(p, "mlp", 0),
                            .act = GVM_NN_ACT_QUICK_GELU};
}

static void golden_vit(void) {
    nn_golden_case c;
    if (!nn_golden_case_open(&c, "nn_vision", "vit")) return;
    gvm_nn_vit m;
    const gvm_nn_vit_cfg cfg = vit_cfg(&c.p);
    gvm_nn_vit_init(&m, &c.ps, c.prefix, &cfg);
    nn_golden_case_load_params(&c);
    gvm_tensor *hidden[8];
    gvm_tensor *last = gvm_nn_vit_forward(c.ctx, &m, nn_golden_case_input(&c, "images"), hidden);  // [B, N+1, W]
    TEST_CHECK(last == hidden[m.n_layers] && last->shape[1] == 10, "vit shapes", "tokens %lld",
               (long long)last->shape[1]);
    for (int64_t i = 0; i <= m.n_layers; i++) {
        char key[64];
        snprintf(key, sizeof key, "fwd.hidden.%lld", (long long)i);
        nn_golden_case_compare(&c, key, hidden[i]);
    }
    nn_golden_case_output(&c, "last", last);
    nn_golden_case_output(&c, "pooled", gvm_nn_vit_pool(c.ctx, &m, last));
    nn_golden_case_finish(&c);
    gvm_nn_vit_free(&m);
}

// ViT-L/14@336 as openai/clip-vit-large-patch14-336 has it (registered, never allocated).
static void vit_large_config(void) {
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_vit m;
    const gvm_nn_vit_cfg cfg = gvm_nn_vit_cfg_clip_l14_336();
    gvm_nn_vit_init(&m, &ps, "vision_model", &cfg);
    TEST_CHECK(m.n_tokens == 577 && m.grid == 24, "vit-L/14@336 tokens", "%lld tokens", (long long)m.n_tokens);
    // 303,507,456 = CLIPVisionModel(clip-vit-large-patch14-336).num_parameters()
    TEST_CHECK(gvm_param_store_numel(&ps) == 303507456LL, "vit-L/14@336 size", "%lld parameters",
               (long long)gvm_param_store_numel(&ps));
    TEST_CHECK(ps.n_params == 3 + 2 + 24 * 16 + 2, "vit-L/14@336 count", "%d tensors", ps.n_params);
    const char *expect[] = {"vision_model.embeddings.class_embedding",
                            "vision_model.embeddings.patch_embedding.weight",
                            "vision_model.embeddings.position_embedding.weight",
                            "vision_model.pre_layrnorm.weight",
                            "vision_model.encoder.layers.23.self_attn.q_proj.bias",
                            "vision_model.encoder.layers.23.self_attn.out_proj.weight",
                            "vision_model.encoder.layers.0.layer_norm1.bias",
                            "vision_model.encoder.layers.0.mlp.fc1.weight",
                            "vision_model.encoder.layers.7.mlp.fc2.bias",
                            "vision_model.encoder.layers.7.layer_norm2.weight",
                            "vision_model.post_layernorm.bias"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        TEST_CHECK(gvm_param_store_find(&ps, expect[i]) != NULL, "vit-L/14@336 names", "missing %s", expect[i]);
    const gvm_tensor *pw = gvm_param_store_find(&ps, "vision_model.embeddings.patch_embedding.weight");
    TEST_CHECK(pw && pw->shape[0] == 1024 && pw->shape[1] == 3 && pw->shape[2] == 14 && pw->shape[3] == 14,
               "vit-L/14@336 patch weight", "shape");
    gvm_nn_vit_free(&m);
    gvm_param_store_free(&ps);
}

// A frozen ViT on images without grad records nothing; thawed, its parameters get gradients.
static void vit_frozen(void) {
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_vit m;
    const gvm_nn_vit_cfg cfg = {.image_size = 8, .patch_size = 4, .width = 8, .layers = 1, .heads = 2,
                                .act = GVM_NN_ACT_QUICK_GELU};
    gvm_nn_vit_init(&m, &ps, "vision_model", &cfg);
    gvm_param_store_finalize(&ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 9);
    gvm_nn_vit_reset_parameters(&m, &rng);
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *img = test_randn(3, 4, (int64_t[]){2, 3, 8, 8}, 1.0f, false);
    gvm_nn_vit_set_trainable(&m, false);
    gvm_tensor *y = gvm_nn_vit_forward(ctx, &m, img, NULL);
    TEST_CHECK(!y->requires_grad && y->shape[0] == 2 && y->shape[1] == 5 && y->shape[2] == 8, "vit frozen",
               "output of a frozen ViT requires grad or has a wrong shape");
    gvm_nn_vit_set_trainable(&m, true);
    y = gvm_nn_vit_forward(ctx, &m, img, NULL);
    gvm_backward(ctx, gvm_sum(ctx, gvm_mul(ctx, y, y), GVM_AXIS_ALL, false));
    TEST_CHECK(m.patch_weight->grad != NULL && m.class_embedding->grad != NULL, "vit thawed",
               "no gradient for the embeddings");
    gvm_tensor_free(img);
    gvm_ctx_free(ctx);
    gvm_nn_vit_free(&m);
    gvm_param_store_free(&ps);
}

// ---- Q-Former ----------------------------------------------------------------------------------------------------
static gvm_nn_qformer_cfg qformer_cfg(const test_params *p) {
    return (gvm_nn_qformer_cfg){.width = test_param_i(p, "width", 0), .layers = test_param_i(p, "layers", 0),
                                .heads = test_param_i(p, "heads", 0), .num_queries = test_param_i(p, "queries", 0),
                                .encoder_width = test_param_i(p, "enc_width", 0),
                                .intermediate = test_param_i(p, "intermediate", 0),
                                .cross_attention_frequency = test_param_i(p, "freq", 0),
                                .out_dim = test_param_i(p, "out", 0)};
}

static void golden_qformer(void) {
    nn_golden_case c;
    if (!nn_golden_case_open(&c, "nn_vision", "qformer")) return;
    gvm_nn_qformer m;
    const gvm_nn_qformer_cfg cfg = qformer_cfg(&c.p);
    gvm_nn_qformer_init(&m, &c.ps, c.prefix, &cfg);
    TEST_CHECK(m.layers[0].has_cross_attention && !m.layers[1].has_cross_attention, "qformer cross layers",
               "cross-attention must be in layer 0 only");
    TEST_CHECK(m.layers[0].attention.layer_norm.eps == 1e-12f && m.ln_post.eps == 1e-5f, "qformer eps",
               "layer eps %g, ln_post eps %g", m.layers[0].attention.layer_norm.eps, m.ln_post.eps);
    nn_golden_case_load_params(&c);
    gvm_tensor *enc = nn_golden_case_input(&c, "encoder");
    gvm_tensor *mask = nn_golden_case_input(&c, "encoder_mask");
    gvm_tensor *queries = NULL;
    gvm_tensor *vec = gvm_nn_qformer_forward(c.ctx, &m, enc, mask, &queries);  // [B, out]
    nn_golden_case_output(&c, "vec", vec);
    nn_golden_case_output(&c, "queries", queries);
    nn_golden_case_finish(&c);
    gvm_nn_qformer_free(&m);
}

// GVMGen's Q-Former: names and sizes, cross-attention in layers 0, 2, 4 only, keys from the ViT width.
static void qformer_gvmgen_config(void) {
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_qformer m;
    const gvm_nn_qformer_cfg cfg = gvm_nn_qformer_cfg_gvmgen();
    gvm_nn_qformer_init(&m, &ps, "qformer", &cfg);
    bool cross_ok = true;
    for (int i = 0; i < 6; i++) cross_ok &= m.layers[i].has_cross_attention == (i % 2 == 0);
    TEST_CHECK(cross_ok, "qformer gvmgen cross layers", "cross-attention not in layers 0, 2, 4 exactly");
    const char *expect[] = {"qformer.query_tokens",
                            "qformer.layernorm.weight",
                            "qformer.encoder.layer.0.attention.attention.query.weight",
                            "qformer.encoder.layer.5.attention.attention.value.bias",
                            "qformer.encoder.layer.3.attention.output.dense.weight",
                            "qformer.encoder.layer.3.attention.output.LayerNorm.bias",
                            "qformer.encoder.layer.4.crossattention.attention.key.weight",
                            "qformer.encoder.layer.4.crossattention.output.LayerNorm.weight",
                            "qformer.encoder.layer.1.intermediate_query.dense.weight",
                            "qformer.encoder.layer.1.output_query.dense.bias",
                            "qformer.encoder.layer.1.output_query.LayerNorm.weight",
                            "qformer.ln_post.weight",
                            "qformer.proj.weight"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        TEST_CHECK(gvm_param_store_find(&ps, expect[i]) != NULL, "qformer gvmgen names", "missing %s", expect[i]);
    TEST_CHECK(!gvm_param_store_find(&ps, "qformer.encoder.layer.1.crossattention.attention.key.weight") &&
                   !gvm_param_store_find(&ps, "qformer.proj.bias"),
               "qformer gvmgen no extra", "cross-attention in layer 1, or a proj bias");
    const gvm_tensor *q = gvm_param_store_find(&ps, "qformer.query_tokens");
    const gvm_tensor *k = gvm_param_store_find(&ps, "qformer.encoder.layer.0.crossattention.attention.key.weight");
    const gvm_tensor *f = gvm_param_store_find(&ps, "qformer.encoder.layer.0.intermediate_query.dense.weight");
    const gvm_tensor *pj = gvm_param_store_find(&ps, "qformer.proj.weight");
    TEST_CHECK(q && q->shape[1] == 16 && q->shape[2] == 1024 && k && k->shape[1] == 1024 && f &&
                   f->shape[0] == 2048 && pj && pj->shape[0] == 768,
               "qformer gvmgen shapes", "queries, cross keys, FFN or proj of the wrong shape");
    gvm_nn_qformer_free(&m);
    gvm_param_store_free(&ps);
}

// Dropout: off in eval (equal to dropout 0), active in training; init: queries N(0, 0.02), LayerNorms 1/0.
static gvm_tensor *qformer_run(gvm_ctx *ctx, gvm_param_store *ps, gvm_nn_qformer *m, gvm_tensor *enc, float p,
                               bool training) {
    gvm_param_store_init(ps);
    gvm_nn_qformer_cfg cfg = {.width = 16, .layers = 3, .heads = 2, .num_queries = 5, .encoder_width = 12,
                              .out_dim = 6, .dropout = p, .init_std = 0.2f};
    gvm_nn_qformer_init(m, ps, "qformer", &cfg);
    gvm_param_store_finalize(ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 4);  // same seed, same registration order: the same parameter values
    gvm_nn_qformer_reset_parameters(m, &rng);
    ctx->training = training;
    return gvm_nn_qformer_forward(ctx, m, enc, NULL, NULL);
}

static void qformer_dropout_init(void) {
    gvm_ctx *ctx = gvm_ctx_new(2);
    gvm_tensor *enc = test_randn(6, 3, (int64_t[]){2, 7, 12}, 1.0f, false);
    gvm_param_store ps[3];
    gvm_nn_qformer m[3];
    gvm_tensor *ref = qformer_run(ctx, &ps[0], &m[0], enc, 0.0f, true);
    gvm_tensor *eval = qformer_run(ctx, &ps[1], &m[1], enc, 0.5f, false);
    gvm_tensor *train = qformer_run(ctx, &ps[2], &m[2], enc, 0.5f, true);
    float d_eval = 0, d_train = 0;
    for (int64_t i = 0; i < ref->numel; i++) {
        d_eval = fmaxf(d_eval, fabsf(gvm_tensor_f32(ref)[i] - gvm_tensor_f32(eval)[i]));
        d_train = fmaxf(d_train, fabsf(gvm_tensor_f32(ref)[i] - gvm_tensor_f32(train)[i]));
    }
    TEST_CHECK(d_eval == 0.0f, "qformer dropout eval", "eval output moved by %g", d_eval);
    TEST_CHECK(d_train > 1e-3f, "qformer dropout train", "dropout 0.5 changed the output by only %g", d_train);

    gvm_nn_qformer big;
    gvm_param_store bps;
    gvm_param_store_init(&bps);
    const gvm_nn_qformer_cfg bc = {.width = 64, .layers = 1, .heads = 4, .num_queries = 32};
    gvm_nn_qformer_init(&big, &bps, "", &bc);
    gvm_param_store_finalize(&bps);
    gvm_rng rng;
    gvm_rng_init(&rng, 8);
    gvm_nn_qformer_reset_parameters(&big, &rng);
    const float *q = gvm_tensor_f32(big.query_tokens);
    double s = 0, s2 = 0;
    const int64_t n = big.query_tokens->numel;
    for (int64_t i = 0; i < n; i++) s += q[i], s2 += (double)q[i] * q[i];
    const double sd = sqrt(s2 / (double)n - (s / (double)n) * (s / (double)n));
    TEST_CHECK(fabs(sd - 0.02) < 0.002, "qformer query init", "std %g, expected 0.02", sd);
    TEST_CHECK(gvm_tensor_f32(big.layers[0].output_layer_norm.weight)[3] == 1.0f &&
                   gvm_tensor_f32(big.layers[0].attention.query.bias)[3] == 0.0f && big.out_dim == 768,
               "qformer init", "LayerNorm weight not 1, bias not 0, or default out_dim not 768");
    gvm_nn_qformer_free(&big);
    gvm_param_store_free(&bps);
    for (int i = 0; i < 3; i++) {
        gvm_nn_qformer_free(&m[i]);
        gvm_param_store_free(&ps[i]);
    }
    gvm_tensor_free(enc);
    gvm_ctx_free(ctx);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    patch_tests();
    golden_vit();
    vit_large_config();
    vit_frozen();
    golden_qformer();
    qformer_gvmgen_config();
    qformer_dropout_init();
    return test_finish();
}
