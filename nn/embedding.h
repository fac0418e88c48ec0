// embedding.h: a lookup table (PyTorch's nn.Embedding). Parameter: "<prefix>.weight" [num, dim].
#ifndef GVM_NN_EMBEDDING_H
#define GVM_NN_EMBEDDING_H

#include "nn/module.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_nn_embedding_cfg {
    int64_t num, dim;  // entries, width
    float init_std;    // weight ~ N(0, init_std); 0 = GVM_NN_DEFAULT_INIT_STD
} gvm_nn_embedding_cfg;

typedef struct gvm_nn_embedding {
    gvm_tensor *weight;  // [num, dim]
    int64_t num, dim;
    float init_std;
} gvm_nn_embedding;

void gvm_nn_embedding_init(gvm_nn_embedding *m, gvm_param_store *ps, const char *prefix,
                           const gvm_nn_embedding_cfg *cfg);
void gvm_nn_embedding_reset_parameters(gvm_nn_embedding *m, gvm_rng *rng);
// idx [...] (i32/i64, each in 0..num-1) -> [..., dim]
gvm_tensor *gvm_nn_embedding_forward(gvm_ctx *ctx, const gvm_nn_embedding *m, gvm_tensor *idx);

#ifdef __cplusplus
}
#endif

#endif
