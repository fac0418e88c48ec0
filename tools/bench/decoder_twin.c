// decoder_twin.c: the gvmgen-small music decoder from core ops (see decoder_twin.h).
#include "tools/bench/decoder_twin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gvm_tensor *add_param(twin_model *m, const char *name, int ndim, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    return gvm_param_store_add(&m->ps, name, ndim, shape);
}

void twin_model_init(twin_model *m, const twin_cfg *c, gvm_device device, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    GVM_CHECK(c->K <= TWIN_MAX_K && c->dim % c->heads == 0, "twin: bad config");
    gvm_param_store_init(&m->ps);
    char name[64];
    int64_t D = c->dim;
    for (int k = 0; k < c->K; k++) {
        snprintf(name, sizeof name, "emb.%d", k);
        m->emb[k] = add_param(m, name, 2, c->card + 1, D);
    }
    m->vis_proj = add_param(m, "vis_proj", 2, D, c->vis_dim);
    m->layers = GVM_CALLOC((size_t)c->layers, sizeof *m->layers);
    for (int l = 0; l < c->layers; l++) {
        twin_layer *p = &m->layers[l];
        gvm_tensor **mats[] = {&p->q, &p->k, &p->v, &p->o, &p->cq, &p->ck, &p->cv, &p->co};
        const char *mat_names[] = {"q", "k", "v", "o", "cq", "ck", "cv", "co"};
        for (int i = 0; i < 8; i++) {
            snprintf(name, sizeof name, "l%d.%s", l, mat_names[i]);
            *mats[i] = add_param(m, name, 2, D, D);
        }
        gvm_tensor **norms[] = {&p->ln1_w, &p->ln1_b, &p->ln2_w, &p->ln2_b, &p->ln3_w, &p->ln3_b};
        for (int i = 0; i < 6; i++) {
            snprintf(name, sizeof name, "l%d.ln%d.%s", l, i / 2 + 1, i % 2 ? "b" : "w");
            *norms[i] = add_param(m, name, 1, D, 0);
        }
        snprintf(name, sizeof name, "l%d.fc1", l);
        p->fc1 = add_param(m, name, 2, c->ffn, D);
        snprintf(name, sizeof name, "l%d.fc2", l);
        p->fc2 = add_param(m, name, 2, D, c->ffn);
    }
    m->lnf_w = add_param(m, "lnf.w", 1, D, 0);
    m->lnf_b = add_param(m, "lnf.b", 1, D, 0);
    for (int k = 0; k < c->K; k++) {
        snprintf(name, sizeof name, "head.%d", k);
        m->heads[k] = add_param(m, name, 2, c->card, D);
    }
    gvm_param_store_finalize_on(&m->ps, device);
    // Initialised on the host (the same values for every device), copied once.
    float *host = GVM_MALLOC(m->ps.total * sizeof(float));
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    gvm_rng_normal(&rng, host, m->ps.total, 0.0f, 0.02f);
    for (int i = 0; i < m->ps.n_params; i++) {
        const gvm_tensor *t = m->ps.params[i];
        if (t->ndim == 1) {  // LayerNorm: weight (name ends in w) 1, bias 0
            float v = t->name[strlen(t->name) - 1] == 'w' ? 1.0f : 0.0f;
            for (int64_t j = 0; j < t->numel; j++) host[m->ps.offsets[i] + (size_t)j] = v;
        }
    }
    gvm_device_copy(m->ps.data, device, host, GVM_DEVICE_CPU, m->ps.total * sizeof(float));
    free(host);
}

void twin_model_free(twin_model *m) {
    gvm_param_store_free(&m->ps);
    free(m->layers);
}

void twin_batch_init(twin_batch *b, const twin_cfg *c, gvm_device device, uint64_t seed) {
    memset(b, 0, sizeof *b);
    int64_t BT = (int64_t)c->B * c->T;
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    gvm_tensor *host = gvm_tensor_new(GVM_I32, 1, (int64_t[]){BT});
    int32_t *v = host->data;
    for (int k = 0; k < c->K; k++) {
        for (int64_t i = 0; i < BT; i++) v[i] = (int32_t)gvm_rng_below(&rng, (uint64_t)c->card + 1);
        b->codes[k] = gvm_tensor_to(host, device);
        for (int64_t i = 0; i < BT; i++) v[i] = (int32_t)gvm_rng_below(&rng, (uint64_t)c->card);
        b->targets[k] = gvm_tensor_to(host, device);
    }
    gvm_tensor_free(host);
    gvm_tensor *vis = gvm_tensor_new(GVM_F32, 3, (int64_t[]){c->B, c->frames, c->vis_dim});
    gvm_rng_normal(&rng, vis->data, (size_t)vis->numel, 0.0f, 1.0f);
    b->vis = gvm_tensor_to(vis, device);
    gvm_tensor_free(vis);
    gvm_tensor *pos = gvm_tensor_new(GVM_F32, 2, (int64_t[]){c->T, c->dim});
    float *p = pos->data;
    int half = c->dim / 2;
    for (int t = 0; t < c->T; t++)  // MusicGen's sinusoidal embedding: [cos | sin], max period 10000
        for (int i = 0; i < half; i++) {
            double ang = t / pow(10000.0, (double)i / (half > 1 ? half - 1 : 1));
            p[(size_t)t * c->dim + i] = (float)cos(ang);
            p[(size_t)t * c->dim + half + i] = (float)sin(ang);
        }
    b->pos = gvm_tensor_to(pos, device);
    gvm_tensor_free(pos);
}

void twin_batch_free(twin_batch *b, const twin_cfg *c) {
    for (int k = 0; k < c->K; k++) {
        gvm_tensor_free(b->codes[k]);
        gvm_tensor_free(b->targets[k]);
    }
    gvm_tensor_free(b->vis);
    gvm_tensor_free(b->pos);
}

// x [B, Tq, D] attending over kv [B, Tk, D] -> [B, Tq, D].
static gvm_tensor *attention_block(gvm_ctx *ctx, const twin_cfg *c, gvm_tensor *x, gvm_tensor *kv, gvm_tensor *wq,
                                   gvm_tensor *wk, gvm_tensor *wv, gvm_tensor *wo, bool causal) {
    int64_t B = x->shape[0], Tq = x->shape[1], Tk = kv->shape[1], H = c->heads, Dh = c->dim / c->heads;
    gvm_tensor *q = gvm_reshape(ctx, gvm_linear(ctx, x, wq, NULL), 4, (int64_t[]){B, Tq, H, Dh});
    gvm_tensor *k = gvm_reshape(ctx, gvm_linear(ctx, kv, wk, NULL), 4, (int64_t[]){B, Tk, H, Dh});
    gvm_tensor *v = gvm_reshape(ctx, gvm_linear(ctx, kv, wv, NULL), 4, (int64_t[]){B, Tk, H, Dh});
    gvm_attention_opts o = {.causal = causal};
    gvm_tensor *a = gvm_attention(ctx, q, k, v, &o);  // [B, Tq, H, Dh]
    return gvm_linear(ctx, gvm_reshape(ctx, a, 3, (int64_t[]){B, Tq, c->dim}), wo, NULL);
}

gvm_tensor *twin_forward(gvm_ctx *ctx, twin_model *m, const twin_batch *b) {
    const twin_cfg *c = &m->cfg;
    int64_t B = c->B, T = c->T, D = c->dim;
    gvm_tensor *x = NULL;
    for (int k = 0; k < c->K; k++) {
        gvm_tensor *e = gvm_embedding(ctx, m->emb[k], b->codes[k]);  // [B*T, D]
        x = x ? gvm_add(ctx, x, e) : e;
    }
    x = gvm_add(ctx, gvm_reshape(ctx, x, 3, (int64_t[]){B, T, D}), b->pos);  // [B, T, D] + [T, D]
    gvm_tensor *cond = gvm_linear(ctx, b->vis, m->vis_proj, NULL);          // [B, F, D]
    for (int l = 0; l < c->layers; l++) {
        twin_layer *p = &m->layers[l];
        gvm_tensor *h = gvm_layer_norm(ctx, x, p->ln1_w, p->ln1_b, 1e-5f);
        x = gvm_add(ctx, x, attention_block(ctx, c, h, h, p->q, p->k, p->v, p->o, true));
        h = gvm_layer_norm(ctx, x, p->ln2_w, p->ln2_b, 1e-5f);
        x = gvm_add(ctx, x, attention_block(ctx, c, h, cond, p->cq, p->ck, p->cv, p->co, false));
        h = gvm_layer_norm(ctx, x, p->ln3_w, p->ln3_b, 1e-5f);
        x = gvm_add(ctx, x, gvm_linear(ctx, gvm_gelu(ctx, gvm_linear(ctx, h, p->fc1, NULL)), p->fc2, NULL));
    }
    x = gvm_reshape(ctx, gvm_layer_norm(ctx, x, m->lnf_w, m->lnf_b, 1e-5f), 2, (int64_t[]){B * T, D});
    gvm_tensor *loss = NULL;
    for (int k = 0; k < c->K; k++) {
        gvm_tensor *l = gvm_cross_entropy(ctx, gvm_linear(ctx, x, m->heads[k], NULL), b->targets[k], -100);
        loss = loss ? gvm_add(ctx, loss, l) : l;
    }
    return gvm_mul_scalar(ctx, loss, 1.0f / (float)c->K);
}

double twin_step_flops(const twin_cfg *c) {
    double D = c->dim, T = c->T, B = c->B, F = c->frames, L = c->layers, tokens = B * T;
    double per_token_gemm = L * (4 * D * D + 2 * D * D + 2 * c->ffn * D) + c->K * D * c->card;
    double fwd = 2 * tokens * per_token_gemm;
    fwd += 2 * B * F * (c->vis_dim * D + L * 2 * D * D);  // visual projection and cross-attention K/V
    fwd += L * B * (2 * T * T * D + 4 * T * F * D);        // causal self-attention (half of 4T^2D) + cross
    return 3 * fwd;
}
