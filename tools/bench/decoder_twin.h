// decoder_twin.h: the gvmgen-small music decoder built from core ops, for the training-step benchmark
// (bench_lm_step.c, twin of bench_lm_step.py) and the GPU train-step test (tests/test_cuda_train_step.c).
// nn/ will hold the model proper; this is the same computation with the fewest moving parts:
//
//   codes [K][B*T] i32 -> sum of K embeddings [B, T, D] + sinusoidal positions [T, D]
//   -> L pre-norm layers: x += SelfAttn(LN(x)) (causal); x += CrossAttn(LN(x), vis W) ; x += FFN(LN(x))
//   -> LN -> K heads [B*T, card] -> mean over k of cross_entropy(head_k, targets_k) -> scalar
// LayerNorm with weight and bias, no biases elsewhere, GELU (erf) FFN, visual vectors [B, F, vis_dim].
#ifndef GVM_BENCH_DECODER_TWIN_H
#define GVM_BENCH_DECODER_TWIN_H

#include "core/gvm.h"

#define TWIN_MAX_K 8

typedef struct twin_cfg {
    int layers, dim, heads, ffn, T, B, frames, K, card, vis_dim;
} twin_cfg;

typedef struct twin_layer {
    gvm_tensor *ln1_w, *ln1_b, *q, *k, *v, *o;      // self-attention, [D, D] each
    gvm_tensor *ln2_w, *ln2_b, *cq, *ck, *cv, *co;  // cross-attention
    gvm_tensor *ln3_w, *ln3_b, *fc1, *fc2;          // FFN [ffn, D], [D, ffn]
} twin_layer;

typedef struct twin_model {
    twin_cfg cfg;
    gvm_param_store ps;
    gvm_tensor *emb[TWIN_MAX_K];    // [card + 1, D]: the extra row is the special token
    gvm_tensor *vis_proj;           // [D, vis_dim]
    twin_layer *layers;
    gvm_tensor *lnf_w, *lnf_b;
    gvm_tensor *heads[TWIN_MAX_K];  // [card, D]
} twin_model;

typedef struct twin_batch {
    gvm_tensor *codes[TWIN_MAX_K];    // [B*T] i32 in 0..card (card = special token)
    gvm_tensor *targets[TWIN_MAX_K];  // [B*T] i32 in 0..card-1
    gvm_tensor *vis;                  // [B, F, vis_dim]
    gvm_tensor *pos;                  // [T, D] sinusoidal (max period 10000, [cos | sin])
} twin_batch;

// Parameters on `device`: weights N(0, 0.02) from `seed`, LayerNorm weight 1 and bias 0.
void twin_model_init(twin_model *m, const twin_cfg *cfg, gvm_device device, uint64_t seed);
void twin_model_free(twin_model *m);
// A random batch on `device` from `seed` (the same values on every device).
void twin_batch_init(twin_batch *b, const twin_cfg *cfg, gvm_device device, uint64_t seed);
void twin_batch_free(twin_batch *b, const twin_cfg *cfg);
// The loss (scalar) of one batch; records on ctx's tape.
gvm_tensor *twin_forward(gvm_ctx *ctx, twin_model *m, const twin_batch *b);
// Model FLOPs of one training step (forward x 3): GEMMs and attention (causal: half the scores).
double twin_step_flops(const twin_cfg *cfg);

#endif
