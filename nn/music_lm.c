// music_lm.c: the MusicGen-style music decoder (see music_lm.h).
#include "nn/music_lm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void gvm_nn_music_lm_init(gvm_nn_music_lm *m, gvm_param_store *ps, const gvm_nn_music_lm_cfg *cfg) {
    GVM_CHECK(cfg->num_codebooks > 0 && cfg->num_codebooks <= GVM_NN_MUSIC_LM_MAX_CODEBOOKS,
              "music lm: %lld codebooks (1..%d)", (long long)cfg->num_codebooks, GVM_NN_MUSIC_LM_MAX_CODEBOOKS);
    GVM_CHECK(cfg->card > 0 && cfg->d_model > 0 && cfg->num_layers >= 0, "music lm: bad sizes");
    memset(m, 0, sizeof *m);
    m->num_codebooks = cfg->num_codebooks;
    m->card = cfg->card;
    m->d_model = cfg->d_model;
    m->num_layers = cfg->num_layers;
    m->dropout = cfg->dropout;
    char name[GVM_NN_NAME_MAX];
    // Registration follows the twin's state_dict order: embeddings, layers, final norm, heads.
    for (int64_t k = 0; k < m->num_codebooks; k++) {
        const gvm_nn_embedding_cfg ec = {cfg->card + 1, cfg->d_model, cfg->init_std};
        snprintf(name, sizeof name, "model.decoder.embed_tokens.%lld", (long long)k);
        gvm_nn_embedding_init(&m->embed_tokens[k], ps, name, &ec);
    }
    m->layers = calloc((size_t)(m->num_layers > 0 ? m->num_layers : 1), sizeof *m->layers);
    GVM_CHECK(m->layers != NULL, "music lm: out of memory");
    const gvm_nn_decoder_layer_cfg lc = {.d_model = cfg->d_model, .num_heads = cfg->num_heads,
                                         .ffn_dim = cfg->ffn_dim, .cross_attention = true,
                                         .cross_dim = cfg->cross_dim, .bias = false, .act = GVM_NN_ACT_GELU,
                                         .dropout = cfg->dropout, .activation_dropout = cfg->activation_dropout,
                                         .ln_eps = cfg->ln_eps, .init_std = cfg->init_std};
    for (int64_t i = 0; i < m->num_layers; i++) {
        snprintf(name, sizeof name, "model.decoder.layers.%lld", (long long)i);
        gvm_nn_decoder_layer_init(&m->layers[i], ps, name, &lc);
    }
    const gvm_nn_layer_norm_cfg ln = {.dim = cfg->d_model, .eps = cfg->ln_eps};
    gvm_nn_layer_norm_init(&m->layer_norm, ps, "model.decoder.layer_norm", &ln);
    for (int64_t k = 0; k < m->num_codebooks; k++) {
        const gvm_nn_linear_cfg hc = {cfg->d_model, cfg->card, false, cfg->init_std};
        snprintf(name, sizeof name, "lm_heads.%lld", (long long)k);
        gvm_nn_linear_init(&m->lm_heads[k], ps, name, &hc);
    }
}

void gvm_nn_music_lm_reset_parameters(gvm_nn_music_lm *m, gvm_rng *rng) {
    for (int64_t k = 0; k < m->num_codebooks; k++) gvm_nn_embedding_reset_parameters(&m->embed_tokens[k], rng);
    for (int64_t i = 0; i < m->num_layers; i++) gvm_nn_decoder_layer_reset_parameters(&m->layers[i], rng);
    gvm_nn_layer_norm_reset_parameters(&m->layer_norm);
    for (int64_t k = 0; k < m->num_codebooks; k++) gvm_nn_linear_reset_parameters(&m->lm_heads[k], rng);
}

void gvm_nn_music_lm_free(gvm_nn_music_lm *m) {
    free(m->layers);
    m->layers = NULL;
}

gvm_tensor *gvm_nn_music_lm_positions(gvm_ctx *ctx, int64_t offset, int64_t steps, int64_t dim) {
    const int64_t half = dim / 2;
    float *pe = calloc((size_t)(steps * dim > 0 ? steps * dim : 1), sizeof *pe);  // [S, D]
    GVM_CHECK(pe != NULL, "music lm: out of memory");
    // half == 1 would divide by zero in the twin's formula too; it is not a real width
    const double step = half > 1 ? log(10000.0) / (double)(half - 1) : 0.0;
    for (int64_t s = 0; s < steps; s++) {
        const double p = (double)(offset + s);
        for (int64_t j = 0; j < half; j++) {
            const double a = p * exp(-(double)j * step);
            pe[s * dim + j] = (float)cos(a);
            pe[s * dim + half + j] = (float)sin(a);
        }
    }
    gvm_tensor *t = gvm_tensor_from_f32(ctx, pe, 2, (int64_t[]){steps, dim});
    free(pe);
    return t;
}

void gvm_nn_music_lm_forward(gvm_ctx *ctx, const gvm_nn_music_lm *m, gvm_tensor *codes, gvm_tensor *cond,
                             gvm_tensor *cond_mask, gvm_nn_music_lm_cache *cache, gvm_tensor **logits) {
    const int64_t K = m->num_codebooks;
    GVM_CHECK(codes->ndim == 3 && codes->shape[1] == K, "music lm: codes must be [B, %lld, S]", (long long)K);
    GVM_CHECK(!cache || cache->num_layers == m->num_layers, "music lm: cache made for another model");
    const int64_t B = codes->shape[0], S = codes->shape[2];
    // [K, B, S]: each codebook's indices become a view along the first axis
    gvm_tensor *ck = gvm_permute(ctx, codes, (int[]){1, 0, 2});
    gvm_tensor *x = NULL;  // [B, S, D]
    for (int64_t k = 0; k < K; k++) {
        gvm_tensor *idx = gvm_reshape(ctx, gvm_slice(ctx, ck, 0, k, k + 1), 2, (int64_t[]){B, S});  // [B, S]
        gvm_tensor *e = gvm_nn_embedding_forward(ctx, &m->embed_tokens[k], idx);                     // [B, S, D]
        x = x ? gvm_add(ctx, x, e) : e;
    }
    const int64_t past = cache ? gvm_nn_music_lm_cache_len(cache) : 0;
    x = gvm_add(ctx, x, gvm_nn_music_lm_positions(ctx, past, S, m->d_model));  // + [S, D]
    x = gvm_dropout(ctx, x, m->dropout);
    for (int64_t i = 0; i < m->num_layers; i++)
        x = gvm_nn_decoder_layer_forward(ctx, &m->layers[i], x, NULL, cond, cond_mask,
                                         cache ? &cache->layers[i] : NULL);  // [B, S, D]
    if (cache) cache->len += S;
    x = gvm_nn_layer_norm_forward(ctx, &m->layer_norm, x);
    for (int64_t k = 0; k < K; k++) logits[k] = gvm_nn_linear_forward(ctx, &m->lm_heads[k], x);  // [B, S, card]
}

gvm_tensor *gvm_nn_music_lm_stack_logits(gvm_ctx *ctx, gvm_tensor *const *logits, int64_t num_codebooks) {
    GVM_CHECK(num_codebooks > 0 && num_codebooks <= GVM_NN_MUSIC_LM_MAX_CODEBOOKS, "stack logits: bad K");
    gvm_tensor *parts[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
    for (int64_t k = 0; k < num_codebooks; k++) {
        const gvm_tensor *l = logits[k];  // [B, S, card]
        GVM_CHECK(l->ndim == 3, "stack logits: logits[%lld] must be [B, S, card]", (long long)k);
        parts[k] = gvm_reshape(ctx, logits[k], 4, (int64_t[]){l->shape[0], 1, l->shape[1], l->shape[2]});
    }
    return gvm_concat(ctx, parts, (int)num_codebooks, 1);  // [B, K, S, card]
}

gvm_tensor *gvm_nn_music_lm_loss(gvm_ctx *ctx, gvm_tensor *const *logits, int64_t num_codebooks,
                                 gvm_tensor *targets, int64_t ignore_index) {
    const int64_t K = num_codebooks;
    GVM_CHECK(targets->ndim == 3 && targets->shape[1] == K, "music lm loss: targets must be [B, %lld, S]",
              (long long)K);
    const int64_t B = targets->shape[0], S = targets->shape[2];
    gvm_tensor *tk = gvm_permute(ctx, targets, (int[]){1, 0, 2});  // [K, B, S]
    gvm_tensor *loss = NULL;
    for (int64_t k = 0; k < K; k++) {
        const gvm_tensor *l = logits[k];
        GVM_CHECK(l->ndim == 3 && l->shape[0] == B && l->shape[1] == S, "music lm loss: logits[%lld] must be "
                  "[%lld, %lld, card]", (long long)k, (long long)B, (long long)S);
        gvm_tensor *lk = gvm_reshape(ctx, logits[k], 2, (int64_t[]){B * S, l->shape[2]});          // [B*S, card]
        gvm_tensor *t = gvm_reshape(ctx, gvm_slice(ctx, tk, 0, k, k + 1), 1, (int64_t[]){B * S});  // [B*S]
        gvm_tensor *ce = gvm_cross_entropy(ctx, lk, t, ignore_index);                               // scalar
        loss = loss ? gvm_add(ctx, loss, ce) : ce;
    }
    return gvm_mul_scalar(ctx, loss, 1.0f / (float)K);
}

// ---- classifier-free guidance ------------------------------------------------------------------------------

// A u8 [B, F] arena tensor on the context's device: mask (any device, or all ones when NULL) with the rows
// of dropped samples zeroed.
static gvm_tensor *drop_mask(gvm_ctx *ctx, const gvm_tensor *mask, int64_t B, int64_t F, const bool *drop) {
    gvm_tensor *h = gvm_tensor_new(GVM_U8, 2, (int64_t[]){B, F});
    uint8_t *hv = gvm_tensor_u8(h);
    if (mask) {
        GVM_CHECK(mask->ndim == 2 && mask->shape[0] == B && mask->shape[1] == F &&
                      (mask->dtype == GVM_U8 || mask->dtype == GVM_BOOL),
                  "cond dropout: cond_mask must be bool/u8 [%lld, %lld]", (long long)B, (long long)F);
        gvm_tensor *mh = mask->device == GVM_DEVICE_CPU ? NULL : gvm_tensor_to(mask, GVM_DEVICE_CPU);
        const uint8_t *mv = gvm_tensor_u8(mh ? mh : mask);
        for (int64_t i = 0; i < B * F; i++) hv[i] = mv[i] != 0;
        gvm_tensor_free(mh);
    } else {
        memset(hv, 1, (size_t)(B * F));
    }
    for (int64_t b = 0; b < B; b++)
        if (drop[b]) memset(hv + b * F, 0, (size_t)F);
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_U8, 2, (int64_t[]){B, F});
    gvm_tensor_copy(out, h);
    gvm_tensor_free(h);
    return out;
}

void gvm_nn_music_lm_cond_dropout(gvm_ctx *ctx, gvm_tensor *cond, gvm_tensor *cond_mask, float p,
                                  gvm_tensor **cond_out, gvm_tensor **mask_out, bool *dropped) {
    GVM_CHECK(cond->ndim == 3, "cond dropout: cond must be [B, F, D]");
    GVM_CHECK(p >= 0.0f && p <= 1.0f, "cond dropout: p = %g not in [0, 1]", p);
    const int64_t B = cond->shape[0], F = cond->shape[1];
    *cond_out = cond;
    *mask_out = cond_mask;
    if (dropped) memset(dropped, 0, (size_t)B * sizeof *dropped);
    if (!ctx->training || p == 0.0f) return;
    bool *drop = malloc((size_t)B * sizeof *drop);
    float *keep = malloc((size_t)B * sizeof *keep);  // [B, 1, 1]
    GVM_CHECK(drop && keep, "cond dropout: out of memory");
    const uint64_t base = gvm_rng_reserve(&ctx->rng, (size_t)B);
    bool any = false;
    for (int64_t b = 0; b < B; b++) {
        drop[b] = gvm_rng_uniform_at(ctx->rng.seed, base, (uint64_t)b) < p;  // uniform in [0, 1): p = 1 drops all
        keep[b] = drop[b] ? 0.0f : 1.0f;
        any |= drop[b];
        if (dropped) dropped[b] = drop[b];
    }
    if (any) {
        // a multiply rather than a masked copy: the kept samples' gradient reaches the condition encoder
        *cond_out = gvm_mul(ctx, cond, gvm_tensor_from_f32(ctx, keep, 3, (int64_t[]){B, 1, 1}));  // [B, F, D]
        *mask_out = drop_mask(ctx, cond_mask, B, F, drop);                                        // [B, F]
    }
    free(drop);
    free(keep);
}

void gvm_nn_music_lm_null_cond(gvm_ctx *ctx, int64_t batch, int64_t frames, int64_t dim, gvm_tensor **cond_out,
                               gvm_tensor **mask_out) {
    *cond_out = gvm_tensor_zeros(ctx, GVM_F32, 3, (int64_t[]){batch, frames, dim});  // [B, F, D]
    *mask_out = gvm_tensor_zeros(ctx, GVM_U8, 2, (int64_t[]){batch, frames});        // [B, F]
}

// ---- generation cache ----------------------------------------------------------------------------------------

void gvm_nn_music_lm_cache_init(gvm_nn_music_lm_cache *c, const gvm_nn_music_lm *m) {
    c->num_layers = m->num_layers;
    c->len = 0;
    c->layers = calloc((size_t)(m->num_layers > 0 ? m->num_layers : 1), sizeof *c->layers);
    GVM_CHECK(c->layers != NULL, "music lm cache: out of memory");
    for (int64_t i = 0; i < c->num_layers; i++) gvm_nn_decoder_layer_cache_init(&c->layers[i]);
}

void gvm_nn_music_lm_cache_reset(gvm_nn_music_lm_cache *c) {
    c->len = 0;
    for (int64_t i = 0; i < c->num_layers; i++) gvm_nn_decoder_layer_cache_reset(&c->layers[i]);
}

void gvm_nn_music_lm_cache_free(gvm_nn_music_lm_cache *c) {
    for (int64_t i = 0; i < c->num_layers; i++) gvm_nn_decoder_layer_cache_free(&c->layers[i]);
    free(c->layers);
    c->layers = NULL;
    c->num_layers = 0;
    c->len = 0;
}

int64_t gvm_nn_music_lm_cache_len(const gvm_nn_music_lm_cache *c) {
    return c->len;
}
