// music_lm.h: the MusicGen-style music decoder (Hugging Face's MusicgenForCausalLM): K codebook embeddings
// summed per step, sinusoidal positions, pre-norm decoder layers with cross-attention to the visual
// condition, a final LayerNorm and K output heads. Inputs are already delay-interleaved (nn/delay_pattern.h).
//
// Parameters, under the twin's names (a transformers MusicGen checkpoint loads by name):
//   model.decoder.embed_tokens.{k}.weight   [card + 1, D]   (entry `card` is the special/start token)
//   model.decoder.layers.{i}.*              nn/transformer.h (self_attn, encoder_attn, fc1, fc2, 3 LayerNorms)
//   model.decoder.layer_norm.{weight,bias}  [D]
//   lm_heads.{k}.weight                     [card, D]       (no bias)
// Positions are not parameters (the twin's embed_positions.weights is a non-persistent buffer):
// MusicgenSinusoidalPositionalEmbedding, with half = D/2 and position p (0-based, + the cached steps):
//   pe[p, j] = cos(p * w_j), pe[p, half + j] = sin(p * w_j), w_j = exp(-j * ln(10000) / (half - 1)),
//   j < half; a zero last column when D is odd. Computed in double and rounded once (the twin builds the
//   table in f32, which differs by up to ~1e-4 at position 1500 from the exact values we use).
//
// Modules own no memory (nn/module.h) except where said: the layer array and the generation cache are
// heap arrays (the depth is a config value), freed by gvm_nn_music_lm_free / gvm_nn_music_lm_cache_free.
#ifndef GVM_NN_MUSIC_LM_H
#define GVM_NN_MUSIC_LM_H

#include <stdbool.h>

#include "nn/embedding.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "nn/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_NN_MUSIC_LM_MAX_CODEBOOKS 16
#define GVM_NN_MUSIC_LM_IGNORE_INDEX (-100)  // PyTorch's and audiocraft's default ignore index

typedef struct gvm_nn_music_lm_cfg {
    int64_t num_codebooks;     // K (GVMGen: 4)
    int64_t card;              // entries per codebook (GVMGen: 2048); the special token is `card`
    int64_t d_model, num_heads, num_layers;
    int64_t ffn_dim;           // 0 = 4 * d_model
    int64_t cross_dim;         // width of the condition; 0 = d_model
    float dropout;             // after embeddings + positions and on every residual branch (default 0)
    float activation_dropout;  // inside the FFN (default 0)
    float ln_eps;              // 0 = 1e-5
    float init_std;            // 0 = GVM_NN_DEFAULT_INIT_STD
} gvm_nn_music_lm_cfg;

typedef struct gvm_nn_music_lm {
    gvm_nn_embedding embed_tokens[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
    gvm_nn_decoder_layer *layers;  // [num_layers], heap
    gvm_nn_layer_norm layer_norm;
    gvm_nn_linear lm_heads[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
    int64_t num_codebooks, card, d_model, num_layers;
    float dropout;
} gvm_nn_music_lm;

// Generation state: one KV cache per layer.
typedef struct gvm_nn_music_lm_cache {
    gvm_nn_decoder_layer_cache *layers;  // [num_layers], heap
    int64_t num_layers;
    int64_t len;                         // steps fed so far (the position offset of the next step)
} gvm_nn_music_lm_cache;

void gvm_nn_music_lm_init(gvm_nn_music_lm *m, gvm_param_store *ps, const gvm_nn_music_lm_cfg *cfg);
void gvm_nn_music_lm_reset_parameters(gvm_nn_music_lm *m, gvm_rng *rng);
void gvm_nn_music_lm_free(gvm_nn_music_lm *m);  // the layer array (parameters belong to the store)

// codes [B, K, S] (i32/i64, each in 0..card; already delayed, step 0 the start token when training);
// cond [B, F, cross_dim]; cond_mask [B, F] bool/u8 (1 = real frame) or NULL; cache or NULL (then the S
// steps follow the cache's past steps, and cond may be NULL after the first call).
// Writes logits[k] = [B, S, card] for k < K: one tensor per codebook, because that is what both users want
// (the loss takes a [N, card] row block per codebook, sampling a [B, card] row per codebook) and it saves
// the copy into one [B, K, S, card] tensor (gvm_nn_music_lm_stack_logits makes it when needed).
void gvm_nn_music_lm_forward(gvm_ctx *ctx, const gvm_nn_music_lm *m, gvm_tensor *codes, gvm_tensor *cond,
                             gvm_tensor *cond_mask, gvm_nn_music_lm_cache *cache, gvm_tensor **logits);
// logits[k] [B, S, card], k < K -> [B, K, S, card] (the twin's lm_logits layout).
gvm_tensor *gvm_nn_music_lm_stack_logits(gvm_ctx *ctx, gvm_tensor *const *logits, int64_t num_codebooks);
// Sinusoidal positions offset..offset+S-1 -> [S, D] (on the context's device, no grad).
gvm_tensor *gvm_nn_music_lm_positions(gvm_ctx *ctx, int64_t offset, int64_t steps, int64_t dim);

// Cross-entropy of each codebook over its targets != ignore_index, averaged over the K codebooks
// (audiocraft's per-codebook mean, then / K). logits[k] [B, S, card], targets [B, K, S] (i32/i64) -> scalar.
// A codebook with no valid target contributes 0 (never NaN).
gvm_tensor *gvm_nn_music_lm_loss(gvm_ctx *ctx, gvm_tensor *const *logits, int64_t num_codebooks,
                                 gvm_tensor *targets, int64_t ignore_index);

// Classifier-free-guidance condition dropout. In training (ctx->training) each sample's whole condition is
// dropped with probability p: its rows of cond are zeroed and its mask row set to 0 (what Hugging Face's
// MusicGen feeds as the unconditional half: zero states, zero mask; with the mask all 0 the cross-attention
// of that sample outputs exactly 0 before out_proj, whatever the biases). The decision for sample b is
// uniform_b < p, uniform_b drawn from the context's Philox stream (one value per sample, so it is seeded
// and the same on every device). Outside training, or with p == 0, returns the inputs unchanged and draws
// nothing. cond [B, F, Dc] -> *cond_out [B, F, Dc] (gradients flow to the kept samples);
// cond_mask [B, F] or NULL -> *mask_out [B, F] u8 (made when cond_mask is NULL and a sample was dropped).
// dropped (optional, host array of B) receives the decisions.
void gvm_nn_music_lm_cond_dropout(gvm_ctx *ctx, gvm_tensor *cond, gvm_tensor *cond_mask, float p,
                                  gvm_tensor **cond_out, gvm_tensor **mask_out, bool *dropped);
// The null condition for the unconditional pass of guidance: zeros [B, F, Dc] and a zero mask [B, F].
void gvm_nn_music_lm_null_cond(gvm_ctx *ctx, int64_t batch, int64_t frames, int64_t dim, gvm_tensor **cond_out,
                               gvm_tensor **mask_out);

void gvm_nn_music_lm_cache_init(gvm_nn_music_lm_cache *c, const gvm_nn_music_lm *m);
void gvm_nn_music_lm_cache_reset(gvm_nn_music_lm_cache *c);  // keeps the memory for the next sequence
void gvm_nn_music_lm_cache_free(gvm_nn_music_lm_cache *c);
int64_t gvm_nn_music_lm_cache_len(const gvm_nn_music_lm_cache *c);  // steps already fed

#ifdef __cplusplus
}
#endif

#endif
