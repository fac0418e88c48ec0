// qformer.c: the BLIP-2 style Q-Former of GVMGen stage 2 (see qformer.h).
#include "nn/qformer.h"

#include <stdio.h>
#include <stdlib.h>

#include "nn/backward_scope.h"

gvm_nn_qformer_cfg gvm_nn_qformer_cfg_gvmgen(void) {
    return (gvm_nn_qformer_cfg){.width = 1024, .layers = 6, .heads = 16, .num_queries = 16, .encoder_width = 1024,
                                .intermediate = 2048, .cross_attention_frequency = 2, .out_dim = 768,
                                .dropout = 0.1f, .ln_eps = 1e-12f, .ln_post_eps = 1e-5f};
}

static void attention_init(gvm_nn_qformer_attention *a, gvm_param_store *ps, const char *prefix, int64_t W,
                           int64_t kv_dim, int64_t heads, float eps, float std) {
    char name[GVM_NN_NAME_MAX];
    const gvm_nn_linear_cfg q = {W, W, true, std}, kv = {kv_dim, W, true, std};
    const gvm_nn_layer_norm_cfg ln = {.dim = W, .eps = eps};
    gvm_nn_linear_init(&a->query, ps, gvm_nn_name(name, prefix, "attention.query"), &q);
    gvm_nn_linear_init(&a->key, ps, gvm_nn_name(name, prefix, "attention.key"), &kv);
    gvm_nn_linear_init(&a->value, ps, gvm_nn_name(name, prefix, "attention.value"), &kv);
    gvm_nn_linear_init(&a->dense, ps, gvm_nn_name(name, prefix, "output.dense"), &q);
    gvm_nn_layer_norm_init(&a->layer_norm, ps, gvm_nn_name(name, prefix, "output.LayerNorm"), &ln);
    a->heads = heads;
    a->head_dim = W / heads;
}

static void attention_reset(gvm_nn_qformer_attention *a, gvm_rng *rng) {
    gvm_nn_linear_reset_parameters(&a->query, rng);
    gvm_nn_linear_reset_parameters(&a->key, rng);
    gvm_nn_linear_reset_parameters(&a->value, rng);
    gvm_nn_linear_reset_parameters(&a->dense, rng);
    gvm_nn_layer_norm_reset_parameters(&a->layer_norm);
}

void gvm_nn_qformer_init(gvm_nn_qformer *m, gvm_param_store *ps, const char *prefix, const gvm_nn_qformer_cfg *cfg) {
    const int64_t W = cfg->width;
    GVM_CHECK(W > 0 && cfg->heads > 0 && W % cfg->heads == 0 && cfg->layers > 0 && cfg->num_queries > 0,
              "qformer %s: width %lld, heads %lld, layers %lld, queries %lld", prefix, (long long)W,
              (long long)cfg->heads, (long long)cfg->layers, (long long)cfg->num_queries);
    const int64_t freq = cfg->cross_attention_frequency > 0 ? cfg->cross_attention_frequency : 2;
    const int64_t I = cfg->intermediate > 0 ? cfg->intermediate : 4 * W;
    const float eps = cfg->ln_eps > 0 ? cfg->ln_eps : 1e-12f, std = cfg->init_std;
    m->width = W;
    m->n_layers = cfg->layers;
    m->num_queries = cfg->num_queries;
    m->encoder_width = cfg->encoder_width > 0 ? cfg->encoder_width : W;
    m->out_dim = cfg->out_dim > 0 ? cfg->out_dim : 768;
    m->dropout = cfg->dropout;
    m->init_std = gvm_nn_std(std);

    char name[GVM_NN_NAME_MAX], sub[64], lp[GVM_NN_NAME_MAX];
    const gvm_nn_layer_norm_cfg ln = {.dim = W, .eps = eps};
    m->query_tokens = gvm_nn_param(ps, prefix, "query_tokens", 3, (int64_t[]){1, cfg->num_queries, W});
    gvm_nn_layer_norm_init(&m->layernorm, ps, gvm_nn_name(name, prefix, "layernorm"), &ln);
    m->layers = calloc((size_t)cfg->layers, sizeof *m->layers);
    GVM_CHECK(m->layers, "out of memory");
    const gvm_nn_linear_cfg up = {W, I, true, std}, down = {I, W, true, std};
    for (int64_t i = 0; i < cfg->layers; i++) {
        gvm_nn_qformer_layer *l = &m->layers[i];
        snprintf(sub, sizeof sub, "encoder.layer.%lld", (long long)i);
        gvm_nn_name(lp, prefix, sub);
        attention_init(&l->attention, ps, gvm_nn_name(name, lp, "attention"), W, W, cfg->heads, eps, std);
        l->has_cross_attention = i % freq == 0;
        if (l->has_cross_attention)
            attention_init(&l->crossattention, ps, gvm_nn_name(name, lp, "crossattention"), W, m->encoder_width,
                           cfg->heads, eps, std);
        gvm_nn_linear_init(&l->intermediate, ps, gvm_nn_name(name, lp, "intermediate_query.dense"), &up);
        gvm_nn_linear_init(&l->output, ps, gvm_nn_name(name, lp, "output_query.dense"), &down);
        gvm_nn_layer_norm_init(&l->output_layer_norm, ps, gvm_nn_name(name, lp, "output_query.LayerNorm"), &ln);
    }
    const gvm_nn_layer_norm_cfg lnp = {.dim = W, .eps = cfg->ln_post_eps > 0 ? cfg->ln_post_eps : 1e-5f};
    gvm_nn_layer_norm_init(&m->ln_post, ps, gvm_nn_name(name, prefix, "ln_post"), &lnp);
    const gvm_nn_linear_cfg pc = {W, m->out_dim, false, std};
    gvm_nn_linear_init(&m->proj, ps, gvm_nn_name(name, prefix, "proj"), &pc);
}

void gvm_nn_qformer_reset_parameters(gvm_nn_qformer *m, gvm_rng *rng) {
    gvm_nn_init_normal(m->query_tokens, rng, m->init_std);
    gvm_nn_layer_norm_reset_parameters(&m->layernorm);
    for (int64_t i = 0; i < m->n_layers; i++) {
        gvm_nn_qformer_layer *l = &m->layers[i];
        attention_reset(&l->attention, rng);
        if (l->has_cross_attention) attention_reset(&l->crossattention, rng);
        gvm_nn_linear_reset_parameters(&l->intermediate, rng);
        gvm_nn_linear_reset_parameters(&l->output, rng);
        gvm_nn_layer_norm_reset_parameters(&l->output_layer_norm);
    }
    gvm_nn_layer_norm_reset_parameters(&m->ln_post);
    gvm_nn_linear_reset_parameters(&m->proj, rng);
}

void gvm_nn_qformer_free(gvm_nn_qformer *m) {
    free(m->layers);
    m->layers = NULL;
}

// x [B, Tq, W] with keys/values from kv [B, Tk, Ekv] (x itself for self-attention), key mask [B, Tk] or NULL
// -> LN(x + dropout(dense(attn))) [B, Tq, W]
static gvm_tensor *attention_forward(gvm_ctx *ctx, const gvm_nn_qformer_attention *a, gvm_tensor *x,
                                     gvm_tensor *kv, gvm_tensor *mask, float dropout) {
    const int64_t B = x->shape[0], Tq = x->shape[1], Tk = kv->shape[1], H = a->heads, D = a->head_dim;
    gvm_tensor *q = gvm_reshape(ctx, gvm_nn_linear_forward(ctx, &a->query, x), 4, (int64_t[]){B, Tq, H, D});
    gvm_tensor *k = gvm_reshape(ctx, gvm_nn_linear_forward(ctx, &a->key, kv), 4, (int64_t[]){B, Tk, H, D});
    gvm_tensor *v = gvm_reshape(ctx, gvm_nn_linear_forward(ctx, &a->value, kv), 4, (int64_t[]){B, Tk, H, D});
    const gvm_attention_opts opts = {.causal = false, .key_mask = mask, .scale = 0.0f};  // 1/sqrt(D), as HF
    gvm_tensor *o = gvm_attention(ctx, q, k, v, &opts);                                   // [B, Tq, H, D]
    o = gvm_reshape(ctx, o, 3, (int64_t[]){B, Tq, H * D});
    o = gvm_dropout(ctx, gvm_nn_linear_forward(ctx, &a->dense, o), dropout);
    return gvm_nn_layer_norm_forward(ctx, &a->layer_norm, gvm_add(ctx, o, x));
}

gvm_tensor *gvm_nn_qformer_forward(gvm_ctx *ctx, const gvm_nn_qformer *m, gvm_tensor *encoder,
                                   gvm_tensor *encoder_mask, gvm_tensor **queries_out) {
    GVM_CHECK(encoder->ndim == 3 && encoder->shape[2] == m->encoder_width,
              "qformer: encoder states must be [B, T, %lld]", (long long)m->encoder_width);
    const int64_t B = encoder->shape[0], T = encoder->shape[1];
    if (encoder_mask)
        GVM_CHECK(encoder_mask->ndim == 2 && encoder_mask->shape[0] == B && encoder_mask->shape[1] == T,
                  "qformer: encoder_mask must be [%lld, %lld]", (long long)B, (long long)T);
    // The queries for every batch row: a broadcast add onto zeros is the expand (backward sums over B).
    gvm_tensor *q = gvm_add(ctx, gvm_tensor_zeros(ctx, GVM_F32, 3, (int64_t[]){B, m->num_queries, m->width}),
                            m->query_tokens);                                        // [B, Q, W]
    q = gvm_dropout(ctx, gvm_nn_layer_norm_forward(ctx, &m->layernorm, q), m->dropout);
    for (int64_t i = 0; i < m->n_layers; i++) {
        const gvm_nn_qformer_layer *l = &m->layers[i];
        gvm_nn_backward_scope *sc;  // the layer's intermediate gradients are released when backward leaves it
        q = gvm_nn_backward_scope_begin(ctx, q, l->has_cross_attention ? encoder : NULL, &sc);
        q = attention_forward(ctx, &l->attention, q, q, NULL, m->dropout);
        if (l->has_cross_attention)
            q = attention_forward(ctx, &l->crossattention, q, encoder, encoder_mask, m->dropout);
        gvm_tensor *h = gvm_gelu(ctx, gvm_nn_linear_forward(ctx, &l->intermediate, q));  // [B, Q, I]
        h = gvm_dropout(ctx, gvm_nn_linear_forward(ctx, &l->output, h), m->dropout);      // [B, Q, W]
        q = gvm_nn_layer_norm_forward(ctx, &l->output_layer_norm, gvm_add(ctx, h, q));
        q = gvm_nn_backward_scope_end(ctx, q, sc);
    }
    if (queries_out) *queries_out = q;
    gvm_tensor *v = gvm_mean(ctx, q, 1, false);                                        // [B, W]
    v = gvm_nn_layer_norm_forward(ctx, &m->ln_post, v);
    return gvm_nn_linear_forward(ctx, &m->proj, v);                                    // [B, out_dim]
}
