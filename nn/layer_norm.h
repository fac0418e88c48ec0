// layer_norm.h: layer normalisation over the last dim (PyTorch's nn.LayerNorm).
// Parameters: "<prefix>.weight" [dim] (init 1), "<prefix>.bias" [dim] (init 0), each optional.
#ifndef GVM_NN_LAYER_NORM_H
#define GVM_NN_LAYER_NORM_H

#include <stdbool.h>

#include "nn/module.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_NN_LN_EPS 1e-5f  // PyTorch's and MusicGen's default; the Q-Former uses 1e-12, CLIP 1e-5

typedef struct gvm_nn_layer_norm_cfg {
    int64_t dim;
    float eps;     // 0 = GVM_NN_LN_EPS
    bool no_weight;  // no elementwise scale (PyTorch's elementwise_affine=False drops both)
    bool no_bias;
} gvm_nn_layer_norm_cfg;

typedef struct gvm_nn_layer_norm {
    gvm_tensor *weight;  // [dim] or NULL
    gvm_tensor *bias;    // [dim] or NULL
    int64_t dim;
    float eps;
} gvm_nn_layer_norm;

void gvm_nn_layer_norm_init(gvm_nn_layer_norm *m, gvm_param_store *ps, const char *prefix,
                            const gvm_nn_layer_norm_cfg *cfg);
void gvm_nn_layer_norm_reset_parameters(gvm_nn_layer_norm *m);
// x [..., dim] -> [..., dim]
gvm_tensor *gvm_nn_layer_norm_forward(gvm_ctx *ctx, const gvm_nn_layer_norm *m, gvm_tensor *x);

#ifdef __cplusplus
}
#endif

#endif
