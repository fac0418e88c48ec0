// transformer.c: MusicGen's pre-norm decoder layer (see transformer.h).
#include "nn/transformer.h"

#include "nn/backward_scope.h"

void gvm_nn_decoder_layer_init(gvm_nn_decoder_layer *m, gvm_param_store *ps, const char *prefix,
                               const gvm_nn_decoder_layer_cfg *cfg) {
    char name[GVM_NN_NAME_MAX];
    const int64_t d = cfg->d_model;
    const gvm_nn_layer_norm_cfg ln = {.dim = d, .eps = cfg->ln_eps};
    const gvm_nn_attention_cfg sa = {d, cfg->num_heads, 0, cfg->bias, cfg->init_std};
    const gvm_nn_attention_cfg ca = {d, cfg->num_heads, cfg->cross_dim, cfg->bias, cfg->init_std};
    const gvm_nn_mlp_cfg ff = {.dim = d, .hidden = cfg->ffn_dim > 0 ? cfg->ffn_dim : 4 * d, .act = cfg->act,
                               .bias = cfg->bias, .activation_dropout = cfg->activation_dropout,
                               .init_std = cfg->init_std};
    // Registration order follows the twin's state_dict, so a checkpoint lists the same order.
    gvm_nn_attention_init(&m->self_attn, ps, gvm_nn_name(name, prefix, "self_attn"), &sa);
    gvm_nn_layer_norm_init(&m->self_attn_layer_norm, ps, gvm_nn_name(name, prefix, "self_attn_layer_norm"), &ln);
    m->cross_attention = cfg->cross_attention;
    if (cfg->cross_attention) {
        gvm_nn_attention_init(&m->encoder_attn, ps, gvm_nn_name(name, prefix, "encoder_attn"), &ca);
        gvm_nn_layer_norm_init(&m->encoder_attn_layer_norm, ps, gvm_nn_name(name, prefix, "encoder_attn_layer_norm"),
                               &ln);
    }
    gvm_nn_mlp_init(&m->mlp, ps, prefix, &ff);
    gvm_nn_layer_norm_init(&m->final_layer_norm, ps, gvm_nn_name(name, prefix, "final_layer_norm"), &ln);
    m->dropout = cfg->dropout;
}

void gvm_nn_decoder_layer_reset_parameters(gvm_nn_decoder_layer *m, gvm_rng *rng) {
    gvm_nn_attention_reset_parameters(&m->self_attn, rng);
    gvm_nn_layer_norm_reset_parameters(&m->self_attn_layer_norm);
    if (m->cross_attention) {
        gvm_nn_attention_reset_parameters(&m->encoder_attn, rng);
        gvm_nn_layer_norm_reset_parameters(&m->encoder_attn_layer_norm);
    }
    gvm_nn_mlp_reset_parameters(&m->mlp, rng);
    gvm_nn_layer_norm_reset_parameters(&m->final_layer_norm);
}

gvm_tensor *gvm_nn_decoder_layer_forward(gvm_ctx *ctx, const gvm_nn_decoder_layer *m, gvm_tensor *x,
                                         gvm_tensor *self_mask, gvm_tensor *cond, gvm_tensor *cond_mask,
                                         gvm_nn_decoder_layer_cache *cache) {
    gvm_nn_backward_scope *sc;  // the layer's intermediate gradients are released when backward leaves it
    x = gvm_nn_backward_scope_begin(ctx, x, m->cross_attention ? cond : NULL, &sc);
    gvm_tensor *h = gvm_nn_layer_norm_forward(ctx, &m->self_attn_layer_norm, x);              // [B, T, d]
    h = gvm_nn_attention_forward(ctx, &m->self_attn, h, NULL, self_mask, true, cache ? &cache->self_attn : NULL);
    x = gvm_add(ctx, x, gvm_dropout(ctx, h, m->dropout));
    if (m->cross_attention) {
        gvm_nn_kv_cache *cc = cache ? &cache->encoder_attn : NULL;
        GVM_CHECK(cond || (cc && cc->fixed), "decoder layer: cross-attention needs cond (or a filled cache)");
        h = gvm_nn_layer_norm_forward(ctx, &m->encoder_attn_layer_norm, x);
        h = gvm_nn_attention_forward(ctx, &m->encoder_attn, h, cond, cond_mask, false, cc);
        x = gvm_add(ctx, x, gvm_dropout(ctx, h, m->dropout));
    }
    h = gvm_nn_layer_norm_forward(ctx, &m->final_layer_norm, x);
    h = gvm_nn_mlp_forward(ctx, &m->mlp, h);
    return gvm_nn_backward_scope_end(ctx, gvm_add(ctx, x, gvm_dropout(ctx, h, m->dropout)), sc);  // [B, T, d]
}

void gvm_nn_decoder_layer_cache_init(gvm_nn_decoder_layer_cache *c) {
    gvm_nn_kv_cache_init(&c->self_attn);
    gvm_nn_kv_cache_init(&c->encoder_attn);
}

void gvm_nn_decoder_layer_cache_reset(gvm_nn_decoder_layer_cache *c) {
    gvm_nn_kv_cache_reset(&c->self_attn);
    gvm_nn_kv_cache_reset(&c->encoder_attn);
}

void gvm_nn_decoder_layer_cache_free(gvm_nn_decoder_layer_cache *c) {
    gvm_nn_kv_cache_free(&c->self_attn);
    gvm_nn_kv_cache_free(&c->encoder_attn);
}
