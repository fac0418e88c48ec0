// attention.c: multi-head attention with separate projections and a KV cache (see attention.h).
#include "nn/attention.h"

#include <string.h>

void gvm_nn_attention_init(gvm_nn_attention *m, gvm_param_store *ps, const char *prefix,
                           const gvm_nn_attention_cfg *cfg) {
    GVM_CHECK(cfg->num_heads > 0 && cfg->embed_dim % cfg->num_heads == 0,
              "attention %s: embed_dim %lld not divisible by %lld heads", prefix, (long long)cfg->embed_dim,
              (long long)cfg->num_heads);
    m->embed_dim = cfg->embed_dim;
    m->num_heads = cfg->num_heads;
    m->head_dim = cfg->embed_dim / cfg->num_heads;
    m->kv_dim = cfg->kv_dim > 0 ? cfg->kv_dim : cfg->embed_dim;
    char name[GVM_NN_NAME_MAX];
    const gvm_nn_linear_cfg q = {m->embed_dim, m->embed_dim, cfg->bias, cfg->init_std};
    const gvm_nn_linear_cfg kv = {m->kv_dim, m->embed_dim, cfg->bias, cfg->init_std};
    gvm_nn_linear_init(&m->q_proj, ps, gvm_nn_name(name, prefix, "q_proj"), &q);
    gvm_nn_linear_init(&m->k_proj, ps, gvm_nn_name(name, prefix, "k_proj"), &kv);
    gvm_nn_linear_init(&m->v_proj, ps, gvm_nn_name(name, prefix, "v_proj"), &kv);
    gvm_nn_linear_init(&m->out_proj, ps, gvm_nn_name(name, prefix, "out_proj"), &q);
}

void gvm_nn_attention_reset_parameters(gvm_nn_attention *m, gvm_rng *rng) {
    gvm_nn_linear_reset_parameters(&m->q_proj, rng);
    gvm_nn_linear_reset_parameters(&m->k_proj, rng);
    gvm_nn_linear_reset_parameters(&m->v_proj, rng);
    gvm_nn_linear_reset_parameters(&m->out_proj, rng);
}

// ---- KV cache ---------------------------------------------------------------------------------------------

void gvm_nn_kv_cache_init(gvm_nn_kv_cache *c) { memset(c, 0, sizeof *c); }

void gvm_nn_kv_cache_reset(gvm_nn_kv_cache *c) {
    c->len = 0;
    c->fixed = false;
}

void gvm_nn_kv_cache_free(gvm_nn_kv_cache *c) {
    if (c->k) gvm_device_free(c->device, c->k);
    if (c->v) gvm_device_free(c->device, c->v);
    gvm_nn_kv_cache_init(c);
}

// Room for `need` steps per batch row. Rows are [cap, H, D] blocks, so growing moves each row's prefix.
static void cache_reserve(gvm_nn_kv_cache *c, int64_t need) {
    if (need <= c->cap) return;
    int64_t cap = c->cap ? c->cap : 16;
    while (cap < need) cap *= 2;
    const size_t row = (size_t)(c->heads * c->head_dim) * sizeof(float);  // one step, one batch entry
    float *buf[2] = {c->k, c->v};
    for (int i = 0; i < 2; i++) {
        float *nb = gvm_device_alloc(c->device, (size_t)(c->batch * cap) * row);
        for (int64_t b = 0; b < c->batch && c->len > 0; b++)
            gvm_device_copy((char *)nb + (size_t)(b * cap) * row, c->device,
                            (char *)buf[i] + (size_t)(b * c->cap) * row, c->device, (size_t)c->len * row);
        if (buf[i]) gvm_device_free(c->device, buf[i]);
        buf[i] = nb;
    }
    c->k = buf[0];
    c->v = buf[1];
    c->cap = cap;
}

// Append k, v [B, Tn, H, D] (contiguous, on the cache's device) after the cached steps.
static void cache_append(gvm_nn_kv_cache *c, const gvm_tensor *k, const gvm_tensor *v) {
    if (c->cap == 0 || c->batch != k->shape[0] || c->heads != k->shape[2] || c->head_dim != k->shape[3] ||
        c->device != k->device) {
        GVM_CHECK(c->len == 0, "KV cache: shape or device changed in the middle of a sequence");
        gvm_nn_kv_cache_free(c);
        c->batch = k->shape[0];
        c->heads = k->shape[2];
        c->head_dim = k->shape[3];
        c->device = k->device;
    }
    const int64_t tn = k->shape[1];
    cache_reserve(c, c->len + tn);
    const size_t row = (size_t)(c->heads * c->head_dim) * sizeof(float);
    for (int64_t b = 0; b < c->batch; b++) {
        const size_t dst = (size_t)(b * c->cap + c->len) * row, src = (size_t)(b * tn) * row;
        gvm_device_copy((char *)c->k + dst, c->device, (const char *)k->data + src, k->device, (size_t)tn * row);
        gvm_device_copy((char *)c->v + dst, c->device, (const char *)v->data + src, v->device, (size_t)tn * row);
    }
    c->len += tn;
}

// The cached keys or values for gvm_attention, without copying the cache where possible (decoding would
// otherwise copy the whole cache of every layer at every step):
//  * one batch row: the cache's prefix is a dense [1, len, H, D] tensor: a view of it;
//  * several rows, on the CPU without a tape: a view of the whole buffer [B, cap, H, D], and *kv_len = len
//    tells gvm_attention to use the first len steps of each row (gvm_attention_opts.kv_len);
//  * otherwise (a GPU, or gradients): each row's prefix copied into a dense arena tensor [B, len, H, D].
// A view is an arena struct that owns nothing.
static gvm_tensor *cache_view(gvm_ctx *ctx, const gvm_nn_kv_cache *c, const float *buf, int64_t *kv_len) {
    const bool whole = c->batch > 1 && c->device == GVM_DEVICE_CPU && !gvm_grad_enabled(ctx);
    *kv_len = whole ? c->len : 0;
    if (c->batch == 1 || whole) {
        gvm_tensor *t = gvm_arena_calloc(&ctx->arena, sizeof *t);
        t->dtype = GVM_F32;
        t->device = c->device;
        t->ndim = 4;
        t->shape[0] = c->batch;
        t->shape[1] = whole ? c->cap : c->len;
        t->shape[2] = c->heads;
        t->shape[3] = c->head_dim;
        t->numel = t->shape[0] * t->shape[1] * c->heads * c->head_dim;
        t->data = (float *)buf;
        return t;
    }
    gvm_tensor *t = gvm_tensor_empty(ctx, GVM_F32, 4, (int64_t[]){c->batch, c->len, c->heads, c->head_dim});
    const size_t row = (size_t)(c->heads * c->head_dim) * sizeof(float);
    for (int64_t b = 0; b < c->batch; b++)
        gvm_device_copy((char *)t->data + (size_t)(b * c->len) * row, t->device,
                        (const char *)buf + (size_t)(b * c->cap) * row, c->device, (size_t)c->len * row);
    return t;
}

// ---- forward -------------------------------------------------------------------------------------------------

// x [B, T, Ein] through `proj` -> [B, T, H, D] (a view: the heads are already interleaved).
static gvm_tensor *project_heads(gvm_ctx *ctx, const gvm_nn_attention *m, const gvm_nn_linear *proj,
                                 gvm_tensor *x) {
    gvm_tensor *y = gvm_nn_linear_forward(ctx, proj, x);  // [B, T, E]
    return gvm_reshape(ctx, y, 4, (int64_t[]){x->shape[0], x->shape[1], m->num_heads, m->head_dim});
}

gvm_tensor *gvm_nn_attention_forward(gvm_ctx *ctx, const gvm_nn_attention *m, gvm_tensor *x, gvm_tensor *kv,
                                     gvm_tensor *key_mask, bool causal, gvm_nn_kv_cache *cache) {
    GVM_CHECK(x->ndim == 3 && x->shape[2] == m->embed_dim, "attention: x must be [B, T, %lld]",
              (long long)m->embed_dim);
    const int64_t B = x->shape[0], Tq = x->shape[1];
    gvm_tensor *q = project_heads(ctx, m, &m->q_proj, x);  // [B, Tq, H, D]
    gvm_tensor *k, *v;                                     // [B, Tk, H, D] (or [B, cap, H, D]: the first kv_len)
    int64_t kv_len = 0;
    if (cache && cache->fixed) {  // cross-attention after its first step: the condition's K/V as cached
        GVM_CHECK(cache->batch == B, "attention: cached condition has batch %lld, x has %lld",
                  (long long)cache->batch, (long long)B);
        k = cache_view(ctx, cache, cache->k, &kv_len);
        v = cache_view(ctx, cache, cache->v, &kv_len);
    } else {
        gvm_tensor *src = kv ? kv : x;  // [B, Tk, Ekv]
        GVM_CHECK(src->ndim == 3 && src->shape[0] == B && src->shape[2] == m->kv_dim,
                  "attention: keys/values input must be [%lld, Tk, %lld]", (long long)B, (long long)m->kv_dim);
        k = project_heads(ctx, m, &m->k_proj, src);
        v = project_heads(ctx, m, &m->v_proj, src);
        if (cache) {
            cache_append(cache, k, v);
            if (kv) {
                cache->fixed = true;  // a condition: project once, keep using k, v as computed now
            } else if (cache->len > k->shape[1]) {
                k = cache_view(ctx, cache, cache->k, &kv_len);
                v = cache_view(ctx, cache, cache->v, &kv_len);
            }
        }
    }
    const int64_t Tk = kv_len ? kv_len : k->shape[1];
    if (key_mask)
        GVM_CHECK(key_mask->ndim == 2 && key_mask->shape[0] == B && key_mask->shape[1] == Tk,
                  "attention: key_mask must be [%lld, %lld]", (long long)B, (long long)Tk);
    const gvm_attention_opts opts = {.causal = causal, .key_mask = key_mask, .scale = 0.0f, .kv_len = kv_len};
    gvm_tensor *o = gvm_attention(ctx, q, k, v, &opts);                        // [B, Tq, H, D]
    o = gvm_reshape(ctx, o, 3, (int64_t[]){B, Tq, m->embed_dim});              // [B, Tq, E]
    return gvm_nn_linear_forward(ctx, &m->out_proj, o);                        // [B, Tq, E]
}
