// transformer.h: the pre-norm decoder layer of MusicGen (Hugging Face's MusicgenDecoderLayer):
//   x = x + dropout(SelfAttn(LN1(x)))                 causal, optional key padding mask
//   x = x + dropout(CrossAttn(LN2(x), cond, cond_mask)) when the layer has cross-attention
//   x = x + dropout(FC2(act_dropout(GELU(FC1(LN3(x))))))
// Parameters under the layer's prefix (e.g. "model.decoder.layers.3"), the twin's names:
//   self_attn.{q,k,v,out}_proj, self_attn_layer_norm, encoder_attn.{q,k,v,out}_proj,
//   encoder_attn_layer_norm, fc1, fc2, final_layer_norm.
#ifndef GVM_NN_TRANSFORMER_H
#define GVM_NN_TRANSFORMER_H

#include <stdbool.h>

#include "nn/attention.h"
#include "nn/layer_norm.h"
#include "nn/mlp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_nn_decoder_layer_cfg {
    int64_t d_model, num_heads;
    int64_t ffn_dim;             // 0 = 4 * d_model
    bool cross_attention;        // has encoder_attn (GVMGen: yes, over the per-frame visual vectors)
    int64_t cross_dim;           // width of the condition; 0 = d_model (MusicGen projects it beforehand)
    bool bias;                   // biases in attention and FFN (MusicGen: none; LayerNorms always have them)
    gvm_nn_activation act;       // default GELU
    float dropout;               // on each residual branch (default 0)
    float activation_dropout;    // after the activation (default 0)
    float ln_eps;                // 0 = 1e-5
    float init_std;              // 0 = GVM_NN_DEFAULT_INIT_STD
} gvm_nn_decoder_layer_cfg;

typedef struct gvm_nn_decoder_layer {
    gvm_nn_layer_norm self_attn_layer_norm, encoder_attn_layer_norm, final_layer_norm;
    gvm_nn_attention self_attn, encoder_attn;
    gvm_nn_mlp mlp;  // fc1, fc2
    bool cross_attention;
    float dropout;
} gvm_nn_decoder_layer;

// Generation state of one layer.
typedef struct gvm_nn_decoder_layer_cache {
    gvm_nn_kv_cache self_attn, encoder_attn;
} gvm_nn_decoder_layer_cache;

void gvm_nn_decoder_layer_init(gvm_nn_decoder_layer *m, gvm_param_store *ps, const char *prefix,
                               const gvm_nn_decoder_layer_cfg *cfg);
void gvm_nn_decoder_layer_reset_parameters(gvm_nn_decoder_layer *m, gvm_rng *rng);
// x [B, T, d_model]; self_mask [B, Tk_total] or NULL (keys of self-attention, past steps included);
// cond [B, Tc, cross_dim] (NULL when the layer has no cross-attention, or with a cache already holding it);
// cond_mask [B, Tc] or NULL; cache or NULL.  -> [B, T, d_model]
gvm_tensor *gvm_nn_decoder_layer_forward(gvm_ctx *ctx, const gvm_nn_decoder_layer *m, gvm_tensor *x,
                                         gvm_tensor *self_mask, gvm_tensor *cond, gvm_tensor *cond_mask,
                                         gvm_nn_decoder_layer_cache *cache);

void gvm_nn_decoder_layer_cache_init(gvm_nn_decoder_layer_cache *c);
void gvm_nn_decoder_layer_cache_reset(gvm_nn_decoder_layer_cache *c);
void gvm_nn_decoder_layer_cache_free(gvm_nn_decoder_layer_cache *c);

#ifdef __cplusplus
}
#endif

#endif
