// mlp.c: the feed-forward block and the activations the models use (see mlp.h).
#include "nn/mlp.h"

gvm_tensor *gvm_nn_activation_forward(gvm_ctx *ctx, gvm_nn_activation act, gvm_tensor *a) {
    switch (act) {
    case GVM_NN_ACT_GELU: return gvm_gelu(ctx, a);
    case GVM_NN_ACT_GELU_TANH: return gvm_gelu_tanh(ctx, a);
    case GVM_NN_ACT_QUICK_GELU: return gvm_mul(ctx, a, gvm_sigmoid(ctx, gvm_mul_scalar(ctx, a, 1.702f)));
    case GVM_NN_ACT_RELU: return gvm_relu(ctx, a);
    }
    gvm_fatal(__FILE__, __LINE__, "unknown activation %d", (int)act);
}

void gvm_nn_mlp_init(gvm_nn_mlp *m, gvm_param_store *ps, const char *prefix, const gvm_nn_mlp_cfg *cfg) {
    char name[GVM_NN_NAME_MAX];
    const gvm_nn_linear_cfg c1 = {cfg->dim, cfg->hidden, cfg->bias, cfg->init_std};
    const gvm_nn_linear_cfg c2 = {cfg->hidden, cfg->dim, cfg->bias, cfg->init_std};
    gvm_nn_linear_init(&m->fc1, ps, gvm_nn_name(name, prefix, cfg->fc1_name ? cfg->fc1_name : "fc1"), &c1);
    gvm_nn_linear_init(&m->fc2, ps, gvm_nn_name(name, prefix, cfg->fc2_name ? cfg->fc2_name : "fc2"), &c2);
    m->act = cfg->act;
    m->activation_dropout = cfg->activation_dropout;
}

void gvm_nn_mlp_reset_parameters(gvm_nn_mlp *m, gvm_rng *rng) {
    gvm_nn_linear_reset_parameters(&m->fc1, rng);
    gvm_nn_linear_reset_parameters(&m->fc2, rng);
}

gvm_tensor *gvm_nn_mlp_forward(gvm_ctx *ctx, const gvm_nn_mlp *m, gvm_tensor *x) {
    gvm_tensor *h = gvm_nn_linear_forward(ctx, &m->fc1, x);       // [..., hidden]
    h = gvm_nn_activation_forward(ctx, m->act, h);
    h = gvm_dropout(ctx, h, m->activation_dropout);
    return gvm_nn_linear_forward(ctx, &m->fc2, h);                 // [..., dim]
}
