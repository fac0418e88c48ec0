// qformer.h: GVMGen stage 2, "spatial cross-attention with music queries": a BLIP-2 style Q-Former that
// reads the ViT token sequence of one frame through Q learned queries and returns one vector per frame.
//
//   q = dropout(layernorm(query_tokens))                        [B, Q, W]   (expanded over the batch)
//   per layer i (post-norm, Hugging Face's Blip2QFormerLayer for query tokens only):
//     q = LN(q + dropout(dense(SelfAttn(q))))                   attention.{attention,output}
//     if i % cross_attention_frequency == 0:
//       q = LN(q + dropout(dense(CrossAttn(q, vit_tokens))))   crossattention.{attention,output}
//     q = LN(q + dropout(output.dense(GELU(intermediate.dense(q)))))   intermediate_query, output_query
//   v = proj(ln_post(mean over the Q queries))                  [B, out_dim]   ("AvgPooling" in GVMGen)
//
// Parameter names under the prefix follow Hugging Face's Blip2QFormerModel where it has them:
//   query_tokens [1, Q, W] (Blip2ForConditionalGeneration keeps it outside the qformer; here it is inside,
//   with HF's shape), layernorm, encoder.layer.{i}.attention.attention.{query,key,value},
//   encoder.layer.{i}.attention.output.{dense,LayerNorm}, encoder.layer.{i}.crossattention.<same>
//   (key/value take encoder_width inputs), encoder.layer.{i}.intermediate_query.dense,
//   encoder.layer.{i}.output_query.{dense,LayerNorm}; then GVMGen's head: ln_post (LayerNorm, eps 1e-5)
//   and proj.weight [out_dim, W] (no bias). In the reference these two are CLIP's own post_layernorm and
//   visual_projection (1024 -> 768), so a loader may copy vision_model.post_layernorm.* -> ln_post.* and
//   visual_projection.weight -> proj.weight.
//
// Simplifications against transformers' modeling_blip_2.py, none of which changes the maths at dropout 0:
//   * query tokens only: no text input, so no "intermediate"/"output" text FFN and no query/text split;
//   * no dropout on attention probabilities (the fused attention op has none; HF applies
//     attention_probs_dropout_prob there); hidden dropout is where HF puts hidden_dropout_prob;
//   * no head_mask, no relative position embeddings (BLIP-2 uses "absolute", which for the Q-Former
//     means none: it has no position embeddings for queries);
//   * a fully masked key row gives 0 instead of HF's uniform average (the ViT tokens are never masked).
// Init (reset_parameters): query_tokens N(0, init_std) as GVMGen states, linears N(0, init_std) with bias 0,
// LayerNorms 1/0, as Blip2PreTrainedModel._init_weights.
#ifndef GVM_NN_QFORMER_H
#define GVM_NN_QFORMER_H

#include <stdbool.h>

#include "nn/layer_norm.h"
#include "nn/linear.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_nn_qformer_cfg {
    int64_t width;                      // W (hidden_size)
    int64_t layers;                     // num_hidden_layers
    int64_t heads;                      // num_attention_heads
    int64_t num_queries;                // Q
    int64_t encoder_width;              // encoder_hidden_size (the ViT width); 0 = W
    int64_t intermediate;               // intermediate_size; 0 = 4 W
    int64_t cross_attention_frequency;  // 0 = 2 (cross-attention in layers 0, 2, 4, ...)
    int64_t out_dim;                    // proj output; 0 = 768
    float dropout;                      // hidden_dropout_prob (active when ctx->training)
    float ln_eps;                       // 0 = 1e-12 (BLIP-2's layer_norm_eps)
    float ln_post_eps;                  // 0 = 1e-5 (CLIP's)
    float init_std;                     // 0 = GVM_NN_DEFAULT_INIT_STD
} gvm_nn_qformer_cfg;

// GVMGen's: W 1024, 6 layers, 16 heads, 16 queries, encoder 1024, FFN 2048, cross every 2nd layer,
// out 768, dropout 0.1, eps 1e-12.
gvm_nn_qformer_cfg gvm_nn_qformer_cfg_gvmgen(void);

// Blip2QFormerAttention: multi-head attention (query/key/value) + output dense, dropout, residual, LayerNorm.
typedef struct gvm_nn_qformer_attention {
    gvm_nn_linear query, key, value;  // [W, W], [W, Ekv], [W, Ekv], with biases
    gvm_nn_linear dense;              // output.dense [W, W]
    gvm_nn_layer_norm layer_norm;     // output.LayerNorm
    int64_t heads, head_dim;
} gvm_nn_qformer_attention;

typedef struct gvm_nn_qformer_layer {
    gvm_nn_qformer_attention attention;
    gvm_nn_qformer_attention crossattention;  // only when has_cross_attention
    bool has_cross_attention;
    gvm_nn_linear intermediate;               // intermediate_query.dense [I, W]
    gvm_nn_linear output;                     // output_query.dense [W, I]
    gvm_nn_layer_norm output_layer_norm;      // output_query.LayerNorm
} gvm_nn_qformer_layer;

typedef struct gvm_nn_qformer {
    gvm_tensor *query_tokens;      // [1, Q, W]
    gvm_nn_layer_norm layernorm;   // on the query embeddings
    gvm_nn_qformer_layer *layers;  // [n_layers], heap (freed by gvm_nn_qformer_free)
    gvm_nn_layer_norm ln_post;
    gvm_nn_linear proj;            // [out_dim, W], no bias
    int64_t width, n_layers, num_queries, encoder_width, out_dim;
    float dropout, init_std;
} gvm_nn_qformer;

void gvm_nn_qformer_init(gvm_nn_qformer *m, gvm_param_store *ps, const char *prefix, const gvm_nn_qformer_cfg *cfg);
void gvm_nn_qformer_reset_parameters(gvm_nn_qformer *m, gvm_rng *rng);
void gvm_nn_qformer_free(gvm_nn_qformer *m);  // the layer array only

// encoder [B, T, encoder_width] (the ViT's last hidden state), encoder_mask [B, T] bool/u8 (1 = attend) or
// NULL -> [B, out_dim], one vector per image. queries_out: NULL, or receives the query sequence after the
// last layer [B, Q, W] (HF's last_hidden_state).
gvm_tensor *gvm_nn_qformer_forward(gvm_ctx *ctx, const gvm_nn_qformer *m, gvm_tensor *encoder,
                                   gvm_tensor *encoder_mask, gvm_tensor **queries_out);

#ifdef __cplusplus
}
#endif

#endif
