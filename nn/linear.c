// linear.c: the fully connected layer (see linear.h).
#include "nn/linear.h"

void gvm_nn_linear_init(gvm_nn_linear *m, gvm_param_store *ps, const char *prefix, const gvm_nn_linear_cfg *cfg) {
    GVM_CHECK(cfg->in > 0 && cfg->out > 0, "linear %s: sizes %lld -> %lld", prefix, (long long)cfg->in,
              (long long)cfg->out);
    m->in = cfg->in;
    m->out = cfg->out;
    m->init_std = gvm_nn_std(cfg->init_std);
    m->weight = gvm_nn_param(ps, prefix, "weight", 2, (int64_t[]){cfg->out, cfg->in});
    m->bias = cfg->bias ? gvm_nn_param(ps, prefix, "bias", 1, (int64_t[]){cfg->out}) : NULL;
}

void gvm_nn_linear_reset_parameters(gvm_nn_linear *m, gvm_rng *rng) {
    gvm_nn_init_normal(m->weight, rng, m->init_std);
    gvm_nn_init_const(m->bias, 0.0f);
}

gvm_tensor *gvm_nn_linear_forward(gvm_ctx *ctx, const gvm_nn_linear *m, gvm_tensor *x) {
    GVM_CHECK(x->ndim >= 1 && x->shape[x->ndim - 1] == m->in, "linear: input width %lld, expected %lld",
              (long long)(x->ndim ? x->shape[x->ndim - 1] : 0), (long long)m->in);
    return gvm_linear(ctx, x, m->weight, m->bias);
}
