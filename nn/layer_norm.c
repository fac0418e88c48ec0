// layer_norm.c: layer normalisation over the last dim (see layer_norm.h).
#include "nn/layer_norm.h"

void gvm_nn_layer_norm_init(gvm_nn_layer_norm *m, gvm_param_store *ps, const char *prefix,
                            const gvm_nn_layer_norm_cfg *cfg) {
    GVM_CHECK(cfg->dim > 0, "layer_norm %s: dim %lld", prefix, (long long)cfg->dim);
    m->dim = cfg->dim;
    m->eps = cfg->eps > 0 ? cfg->eps : GVM_NN_LN_EPS;
    m->weight = cfg->no_weight ? NULL : gvm_nn_param(ps, prefix, "weight", 1, (int64_t[]){cfg->dim});
    m->bias = cfg->no_bias ? NULL : gvm_nn_param(ps, prefix, "bias", 1, (int64_t[]){cfg->dim});
}

void gvm_nn_layer_norm_reset_parameters(gvm_nn_layer_norm *m) {
    gvm_nn_init_const(m->weight, 1.0f);
    gvm_nn_init_const(m->bias, 0.0f);
}

gvm_tensor *gvm_nn_layer_norm_forward(gvm_ctx *ctx, const gvm_nn_layer_norm *m, gvm_tensor *x) {
    GVM_CHECK(x->ndim >= 1 && x->shape[x->ndim - 1] == m->dim, "layer_norm: input width %lld, expected %lld",
              (long long)(x->ndim ? x->shape[x->ndim - 1] : 0), (long long)m->dim);
    return gvm_layer_norm(ctx, x, m->weight, m->bias, m->eps);
}
