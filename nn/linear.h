// linear.h: the fully connected layer (PyTorch's nn.Linear: weight [out, in], optional bias [out]).
// Parameters: "<prefix>.weight", "<prefix>.bias" (when cfg.bias).
#ifndef GVM_NN_LINEAR_H
#define GVM_NN_LINEAR_H

#include <stdbool.h>

#include "nn/module.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_nn_linear_cfg {
    int64_t in, out;
    bool bias;
    float init_std;  // weight ~ N(0, init_std); 0 = GVM_NN_DEFAULT_INIT_STD
} gvm_nn_linear_cfg;

typedef struct gvm_nn_linear {
    gvm_tensor *weight;  // [out, in]
    gvm_tensor *bias;    // [out] or NULL
    int64_t in, out;
    float init_std;
} gvm_nn_linear;

void gvm_nn_linear_init(gvm_nn_linear *m, gvm_param_store *ps, const char *prefix, const gvm_nn_linear_cfg *cfg);
void gvm_nn_linear_reset_parameters(gvm_nn_linear *m, gvm_rng *rng);
// x [..., in] -> [..., out]
gvm_tensor *gvm_nn_linear_forward(gvm_ctx *ctx, const gvm_nn_linear *m, gvm_tensor *x);

#ifdef __cplusplus
}
#endif

#endif
