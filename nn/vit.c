// vit.c: the CLIP vision transformer (see vit.h).
#include "nn/vit.h"

#include <stdio.h>
#include <stdlib.h>

#include "nn/backward_scope.h"

gvm_nn_vit_cfg gvm_nn_vit_cfg_clip_l14_336(void) {
    return (gvm_nn_vit_cfg){.image_size = 336, .patch_size = 14, .channels = 3, .width = 1024, .layers = 24,
                            .heads = 16, .mlp_dim = 4096, .act = GVM_NN_ACT_QUICK_GELU, .ln_eps = 1e-5f};
}

void gvm_nn_vit_init(gvm_nn_vit *m, gvm_param_store *ps, const char *prefix, const gvm_nn_vit_cfg *cfg) {
    GVM_CHECK(cfg->patch_size > 0 && cfg->image_size >= cfg->patch_size && cfg->width > 0 && cfg->layers > 0,
              "vit %s: image %lld, patch %lld, width %lld, layers %lld", prefix, (long long)cfg->image_size,
              (long long)cfg->patch_size, (long long)cfg->width, (long long)cfg->layers);
    const int64_t W = cfg->width;
    m->image_size = cfg->image_size;
    m->patch_size = cfg->patch_size;
    m->channels = cfg->channels > 0 ? cfg->channels : 3;
    m->grid = cfg->image_size / cfg->patch_size;
    m->n_tokens = m->grid * m->grid + 1;
    m->width = W;
    m->n_layers = cfg->layers;

    char name[GVM_NN_NAME_MAX], sub[GVM_NN_NAME_MAX];
    const float std = cfg->init_std;
    const gvm_nn_layer_norm_cfg ln = {.dim = W, .eps = cfg->ln_eps};
    const gvm_nn_attention_cfg at = {W, cfg->heads, 0, true, std};
    const gvm_nn_mlp_cfg ff = {.dim = W, .hidden = cfg->mlp_dim > 0 ? cfg->mlp_dim : 4 * W, .act = cfg->act,
                               .bias = true, .init_std = std};
    // Registration order follows HF's state_dict, so a checkpoint we write lists the same order.
    m->class_embedding = gvm_nn_param(ps, prefix, "embeddings.class_embedding", 1, (int64_t[]){W});
    m->patch_weight = gvm_nn_param(ps, prefix, "embeddings.patch_embedding.weight", 4,
                                   (int64_t[]){W, m->channels, m->patch_size, m->patch_size});
    m->position_embedding = gvm_nn_param(ps, prefix, "embeddings.position_embedding.weight", 2,
                                         (int64_t[]){m->n_tokens, W});
    gvm_nn_layer_norm_init(&m->pre_layrnorm, ps, gvm_nn_name(name, prefix, "pre_layrnorm"), &ln);
    m->layers = calloc((size_t)cfg->layers, sizeof *m->layers);
    GVM_CHECK(m->layers, "out of memory");
    for (int64_t i = 0; i < cfg->layers; i++) {
        gvm_nn_vit_layer *l = &m->layers[i];
        snprintf(sub, sizeof sub, "encoder.layers.%lld", (long long)i);
        char lp[GVM_NN_NAME_MAX];
        gvm_nn_name(lp, prefix, sub);
        gvm_nn_attention_init(&l->self_attn, ps, gvm_nn_name(name, lp, "self_attn"), &at);
        gvm_nn_layer_norm_init(&l->layer_norm1, ps, gvm_nn_name(name, lp, "layer_norm1"), &ln);
        gvm_nn_mlp_init(&l->mlp, ps, gvm_nn_name(name, lp, "mlp"), &ff);
        gvm_nn_layer_norm_init(&l->layer_norm2, ps, gvm_nn_name(name, lp, "layer_norm2"), &ln);
    }
    gvm_nn_layer_norm_init(&m->post_layernorm, ps, gvm_nn_name(name, prefix, "post_layernorm"), &ln);
    m->init_std = gvm_nn_std(std);
}

void gvm_nn_vit_reset_parameters(gvm_nn_vit *m, gvm_rng *rng) {
    gvm_nn_init_normal(m->class_embedding, rng, m->init_std);
    gvm_nn_init_normal(m->patch_weight, rng, m->init_std);
    gvm_nn_init_normal(m->position_embedding, rng, m->init_std);
    gvm_nn_layer_norm_reset_parameters(&m->pre_layrnorm);
    for (int64_t i = 0; i < m->n_layers; i++) {
        gvm_nn_attention_reset_parameters(&m->layers[i].self_attn, rng);
        gvm_nn_layer_norm_reset_parameters(&m->layers[i].layer_norm1);
        gvm_nn_mlp_reset_parameters(&m->layers[i].mlp, rng);
        gvm_nn_layer_norm_reset_parameters(&m->layers[i].layer_norm2);
    }
    gvm_nn_layer_norm_reset_parameters(&m->post_layernorm);
}

static void set_trainable(gvm_tensor *t, bool on) {
    if (t) t->requires_grad = on;
}

static void linear_trainable(gvm_nn_linear *l, bool on) {
    set_trainable(l->weight, on);
    set_trainable(l->bias, on);
}

static void ln_trainable(gvm_nn_layer_norm *l, bool on) {
    set_trainable(l->weight, on);
    set_trainable(l->bias, on);
}

void gvm_nn_vit_set_trainable(gvm_nn_vit *m, bool on) {
    set_trainable(m->class_embedding, on);
    set_trainable(m->patch_weight, on);
    set_trainable(m->position_embedding, on);
    ln_trainable(&m->pre_layrnorm, on);
    ln_trainable(&m->post_layernorm, on);
    for (int64_t i = 0; i < m->n_layers; i++) {
        gvm_nn_vit_layer *l = &m->layers[i];
        linear_trainable(&l->self_attn.q_proj, on);
        linear_trainable(&l->self_attn.k_proj, on);
        linear_trainable(&l->self_attn.v_proj, on);
        linear_trainable(&l->self_attn.out_proj, on);
        linear_trainable(&l->mlp.fc1, on);
        linear_trainable(&l->mlp.fc2, on);
        ln_trainable(&l->layer_norm1, on);
        ln_trainable(&l->layer_norm2, on);
    }
}

void gvm_nn_vit_free(gvm_nn_vit *m) {
    free(m->layers);
    m->layers = NULL;
}

// ---- patch embedding ---------------------------------------------------------------------------------------

gvm_tensor *gvm_nn_patchify(gvm_ctx *ctx, gvm_tensor *images, int64_t p) {
    GVM_CHECK(images->ndim == 4 && images->shape[2] == images->shape[3] && p > 0 && images->shape[2] >= p,
              "patchify: images must be [B, C, S, S] with S >= patch %lld", (long long)p);
    const int64_t B = images->shape[0], C = images->shape[1], S = images->shape[2], G = S / p;
    gvm_tensor *x = images;
    if (G * p != S) {  // the strided conv never sees the last S - G p rows and columns
        x = gvm_slice(ctx, x, 2, 0, G * p);
        x = gvm_slice(ctx, x, 3, 0, G * p);
    }
    // [B, C, G, p, G, p] -> [B, G, G, C, p, p]: one copy, then the patch rows are contiguous
    x = gvm_reshape(ctx, x, 6, (int64_t[]){B, C, G, p, G, p});
    x = gvm_permute(ctx, x, (const int[]){0, 2, 4, 1, 3, 5});
    return gvm_reshape(ctx, x, 3, (int64_t[]){B, G * G, C * p * p});  // [B, N, C p p]
}

gvm_tensor *gvm_nn_patch_embed(gvm_ctx *ctx, gvm_tensor *images, gvm_tensor *weight) {
    GVM_CHECK(weight->ndim == 4 && weight->shape[2] == weight->shape[3] && images->ndim == 4 &&
                  images->shape[1] == weight->shape[1],
              "patch_embed: weight must be [W, C, p, p] with C = the images' channels");
    const int64_t W = weight->shape[0], K = weight->shape[1] * weight->shape[2] * weight->shape[3];
    gvm_tensor *x = gvm_nn_patchify(ctx, images, weight->shape[2]);        // [B, N, C p p]
    gvm_tensor *w = gvm_reshape(ctx, weight, 2, (int64_t[]){W, K});         // [W, C p p], a view
    return gvm_linear(ctx, x, w, NULL);                                     // [B, N, W]
}

// ---- forward --------------------------------------------------------------------------------------------------

// Copies x into keep [B, N+1, W] (allocated before the marks) and releases everything allocated after them.
static gvm_tensor *keep_release(gvm_ctx *ctx, gvm_tensor *keep, gvm_tensor *x, gvm_arena_mark host_mark,
                                gvm_arena_mark data_mark) {
    if (x != keep) gvm_device_copy(keep->data, keep->device, x->data, x->device, gvm_tensor_nbytes(x));
    gvm_arena *data = gvm_ctx_data_arena(ctx);
    gvm_arena_rewind(data, data_mark);
    if (data != &ctx->arena) gvm_arena_rewind(&ctx->arena, host_mark);
    return keep;
}

gvm_tensor *gvm_nn_vit_forward(gvm_ctx *ctx, const gvm_nn_vit *m, gvm_tensor *images, gvm_tensor **hidden_states) {
    GVM_CHECK(images->ndim == 4 && images->shape[1] == m->channels && images->shape[2] == m->image_size &&
                  images->shape[3] == m->image_size,
              "vit: images must be [B, %lld, %lld, %lld]", (long long)m->channels, (long long)m->image_size,
              (long long)m->image_size);
    const int64_t B = images->shape[0], W = m->width;
    // Without a tape (the frozen ViT under no-grad) no intermediate is needed later, so each stage's
    // output is copied into one buffer and everything the stage allocated is released: the ViT then needs
    // one layer's activations at a time instead of all of them, and the rest of the model reuses the memory.
    const bool transient = !hidden_states && !gvm_grad_enabled(ctx);
    gvm_tensor *keep = transient ? gvm_tensor_empty(ctx, GVM_F32, 3, (int64_t[]){B, m->n_tokens, W}) : NULL;
    gvm_arena *data = gvm_ctx_data_arena(ctx);
    const gvm_arena_mark host_mark = gvm_arena_save(&ctx->arena), data_mark = gvm_arena_save(data);
    gvm_tensor *patches = gvm_nn_patch_embed(ctx, images, m->patch_weight);  // [B, N, W]
    // The CLS row for every image: a broadcast add onto zeros is the expand (its backward sums over B).
    gvm_tensor *cls = gvm_reshape(ctx, m->class_embedding, 3, (int64_t[]){1, 1, W});
    cls = gvm_add(ctx, gvm_tensor_zeros(ctx, GVM_F32, 3, (int64_t[]){B, 1, W}), cls);  // [B, 1, W]
    gvm_tensor *x = gvm_concat(ctx, (gvm_tensor *const[]){cls, patches}, 2, 1);      // [B, N+1, W]
    x = gvm_add(ctx, x, m->position_embedding);                                      // + [N+1, W]
    x = gvm_nn_layer_norm_forward(ctx, &m->pre_layrnorm, x);
    if (transient) x = keep_release(ctx, keep, x, host_mark, data_mark);
    if (hidden_states) hidden_states[0] = x;
    for (int64_t i = 0; i < m->n_layers; i++) {
        const gvm_nn_vit_layer *l = &m->layers[i];
        gvm_nn_backward_scope *sc;  // a trained ViT: the layer's gradients are released when backward leaves it
        x = gvm_nn_backward_scope_begin(ctx, x, NULL, &sc);
        gvm_tensor *h = gvm_nn_layer_norm_forward(ctx, &l->layer_norm1, x);
        h = gvm_nn_attention_forward(ctx, &l->self_attn, h, NULL, NULL, false, NULL);
        x = gvm_add(ctx, x, h);
        h = gvm_nn_layer_norm_forward(ctx, &l->layer_norm2, x);
        x = gvm_add(ctx, x, gvm_nn_mlp_forward(ctx, &l->mlp, h));                   // [B, N+1, W]
        x = gvm_nn_backward_scope_end(ctx, x, sc);
        if (transient) x = keep_release(ctx, keep, x, host_mark, data_mark);
        if (hidden_states) hidden_states[i + 1] = x;
    }
    return x;
}

gvm_tensor *gvm_nn_vit_pool(gvm_ctx *ctx, const gvm_nn_vit *m, gvm_tensor *hidden) {
    GVM_CHECK(hidden->ndim == 3 && hidden->shape[2] == m->width, "vit pool: hidden must be [B, T, %lld]",
              (long long)m->width);
    gvm_tensor *cls = gvm_slice(ctx, hidden, 1, 0, 1);                                       // [B, 1, W]
    cls = gvm_reshape(ctx, cls, 2, (int64_t[]){hidden->shape[0], m->width});                 // [B, W]
    return gvm_nn_layer_norm_forward(ctx, &m->post_layernorm, cls);
}
