// mlp.h: the two-layer feed-forward block of a transformer: fc2(dropout(act(fc1(x)))).
// Parameters "<prefix>.<fc1_name>.weight" [hidden, dim] and "<prefix>.<fc2_name>.weight" [dim, hidden]
// (+ ".bias" when cfg.bias). Names default to "fc1"/"fc2" (MusicGen's decoder layer, CLIP's mlp); the
// Q-Former's twin splits them across "intermediate.dense" and "output.dense".
#ifndef GVM_NN_MLP_H
#define GVM_NN_MLP_H

#include <stdbool.h>

#include "nn/linear.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gvm_nn_activation {
    GVM_NN_ACT_GELU = 0,   // exact erf form (MusicGen, BLIP-2 Q-Former)
    GVM_NN_ACT_GELU_TANH,
    GVM_NN_ACT_QUICK_GELU, // x * sigmoid(1.702 x) (OpenAI CLIP)
    GVM_NN_ACT_RELU,
} gvm_nn_activation;

// a [...] -> [...]
gvm_tensor *gvm_nn_activation_forward(gvm_ctx *ctx, gvm_nn_activation act, gvm_tensor *a);

typedef struct gvm_nn_mlp_cfg {
    int64_t dim, hidden;
    gvm_nn_activation act;
    bool bias;
    float activation_dropout;       // after the activation (MusicGen's activation_dropout)
    const char *fc1_name, *fc2_name;  // NULL = "fc1", "fc2"
    float init_std;                 // 0 = GVM_NN_DEFAULT_INIT_STD
} gvm_nn_mlp_cfg;

typedef struct gvm_nn_mlp {
    gvm_nn_linear fc1, fc2;
    gvm_nn_activation act;
    float activation_dropout;
} gvm_nn_mlp;

void gvm_nn_mlp_init(gvm_nn_mlp *m, gvm_param_store *ps, const char *prefix, const gvm_nn_mlp_cfg *cfg);
void gvm_nn_mlp_reset_parameters(gvm_nn_mlp *m, gvm_rng *rng);
// x [..., dim] -> [..., dim]
gvm_tensor *gvm_nn_mlp_forward(gvm_ctx *ctx, const gvm_nn_mlp *m, gvm_tensor *x);

#ifdef __cplusplus
}
#endif

#endif
