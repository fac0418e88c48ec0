// embedding.c: a lookup table (see embedding.h).
#include "nn/embedding.h"

void gvm_nn_embedding_init(gvm_nn_embedding *m, gvm_param_store *ps, const char *prefix,
                           const gvm_nn_embedding_cfg *cfg) {
    GVM_CHECK(cfg->num > 0 && cfg->dim > 0, "embedding %s: size %lld x %lld", prefix, (long long)cfg->num,
              (long long)cfg->dim);
    m->num = cfg->num;
    m->dim = cfg->dim;
    m->init_std = gvm_nn_std(cfg->init_std);
    m->weight = gvm_nn_param(ps, prefix, "weight", 2, (int64_t[]){cfg->num, cfg->dim});
}

void gvm_nn_embedding_reset_parameters(gvm_nn_embedding *m, gvm_rng *rng) {
    gvm_nn_init_normal(m->weight, rng, m->init_std);
}

gvm_tensor *gvm_nn_embedding_forward(gvm_ctx *ctx, const gvm_nn_embedding *m, gvm_tensor *idx) {
    return gvm_embedding(ctx, m->weight, idx);
}
