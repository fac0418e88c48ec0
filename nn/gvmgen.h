// gvmgen.h: the whole GVMGen model (GVMGEN.md): video frames -> per-frame visual vectors -> music LM loss.
//
//   frames [B, T_v, C, S, S] (CLIP-normalised, the loader's layout), frame_mask [B, T_v] (1 = real frame)
//   tokens = ViT(frames as B*T_v images)               [B*T_v, N+1, W_vit]  stage 1, spatial self-attention
//   v      = QFormer(tokens)                           [B*T_v, out]         stage 2 (query cross-attention,
//                                                                           mean-pool, ln_post, proj)
//   cond   = enc_to_dec_proj(v as [B, T_v, out])       [B, T_v, D]          "768 -> the decoder width"
//   logits = MusicLM(delayed codes, cond, frame_mask)  K x [B, S, card]     stage 3 = its cross-attention
//   loss   = per-codebook CE on valid steps, averaged over K (nn/music_lm.h)
//
// Parameter names (one store holds them all; each part is a contiguous run of the store's parameters):
//   vision_model.*     nn/vit.h under CLIPVisionModel's prefix, so openai/clip-vit-large-patch14-336 loads
//                      by name (post_layernorm is registered but unused: GVMGen takes the tokens before it)
//   qformer.*          nn/qformer.h (query_tokens, encoder.layer.{i}.*, ln_post, proj)
//   enc_to_dec_proj.{weight [D, out], bias [D]}
//                      the name and layout (nn.Linear with bias) of MusicgenForConditionalGeneration's
//                      projection from its (T5, width 768) encoder to the decoder: the same place in the
//                      model and, for musicgen-small/medium, the same shape, so a loader may start from it
//   model.decoder.*, lm_heads.*   nn/music_lm.h, bare MusicgenForCausalLM names
// The LM's cross-attention therefore takes width-D conditions (its cross_dim is set to D).
//
// Freezing: a frozen part keeps requires_grad = false on all its parameters, so no op that reads only
// frozen values records anything and their gradient blocks stay untouched (zero after a zero_grad).
// A frozen ViT also runs under a no-grad scope (nothing of it on the tape even if the frames required
// grad). enc_to_dec_proj follows freeze_qformer (it is part of the condition path, stages 2 -> 3).
// GVMGen's reference training freezes the ViT only (gvm_nn_gvmgen_cfg_gvmgen).
#ifndef GVM_NN_GVMGEN_H
#define GVM_NN_GVMGEN_H

#include <stdbool.h>
#include <stdio.h>

#include "nn/linear.h"
#include "nn/music_lm.h"
#include "nn/qformer.h"
#include "nn/vit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_nn_gvmgen_cfg {
    gvm_nn_vit_cfg vision;
    gvm_nn_qformer_cfg qformer;  // encoder_width 0 = vision.width (anything else must equal it)
    gvm_nn_music_lm_cfg lm;      // cross_dim is ignored: the condition reaches the LM at d_model
    bool freeze_vision, freeze_qformer, freeze_lm;  // freeze_qformer also freezes enc_to_dec_proj
} gvm_nn_gvmgen_cfg;

// The paper's model: CLIP ViT-L/14@336 (frozen), the GVMGen Q-Former, a MusicGen-small-shaped LM
// (width 1024, 16 heads, 24 layers, K 4, card 2048).
gvm_nn_gvmgen_cfg gvm_nn_gvmgen_cfg_gvmgen(void);

typedef enum gvm_nn_gvmgen_part {
    GVM_NN_GVMGEN_VISION,
    GVM_NN_GVMGEN_QFORMER,
    GVM_NN_GVMGEN_COND_PROJ,
    GVM_NN_GVMGEN_LM,
    GVM_NN_GVMGEN_PARTS
} gvm_nn_gvmgen_part;

typedef struct gvm_nn_gvmgen {
    gvm_nn_vit vision;
    gvm_nn_qformer qformer;
    gvm_nn_linear cond_proj;  // "enc_to_dec_proj": [D, out] + bias [D]
    gvm_nn_music_lm lm;
    gvm_param_store *ps;      // the store the parts registered in (it outlives the model)
    int first[GVM_NN_GVMGEN_PARTS], count[GVM_NN_GVMGEN_PARTS];  // each part's run of ps->params
    bool frozen[GVM_NN_GVMGEN_PARTS];
    int64_t cond_dim;         // D (the LM width)
} gvm_nn_gvmgen;

// Registers every parameter (names above) and applies the freeze flags. Then gvm_param_store_finalize,
// then reset_parameters or a load.
void gvm_nn_gvmgen_init(gvm_nn_gvmgen *m, gvm_param_store *ps, const gvm_nn_gvmgen_cfg *cfg);
// Every part's nn/module.h init (enc_to_dec_proj: weight N(0, lm.init_std), bias 0).
void gvm_nn_gvmgen_reset_parameters(gvm_nn_gvmgen *m, gvm_rng *rng);
void gvm_nn_gvmgen_free(gvm_nn_gvmgen *m);  // the parts' layer arrays; parameters belong to the store
// Freeze (true) or unfreeze one part after init (requires_grad of all its parameters).
void gvm_nn_gvmgen_set_frozen(gvm_nn_gvmgen *m, gvm_nn_gvmgen_part part, bool frozen);

// frames [B, T_v, C, S, S] f32, frame_mask [B, T_v] bool/u8 or NULL (shape-checked only: padded frames
// are encoded like any other, and the LM's cross-attention never reads them) -> cond [B, T_v, D].
gvm_tensor *gvm_nn_gvmgen_forward_condition(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *frames,
                                            gvm_tensor *frame_mask);
// The two halves of forward_condition, for a trainer that caches the frozen ViT's output (its tokens do not
// change while it is frozen). frames [B, T_v, C, S, S] -> tokens [B, T_v, N+1, W_vit] (a frozen ViT runs
// under no-grad). tokens [B, T_v, N+1, W_vit] (computed now or read from a cache) -> cond [B, T_v, D].
gvm_tensor *gvm_nn_gvmgen_vision_tokens(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *frames);
gvm_tensor *gvm_nn_gvmgen_condition_from_tokens(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *tokens);
// The training loss. codes [B, K, T] i32/i64 (EnCodec codes, not delayed), code_len: host array [B] of
// real frame counts, or NULL (all T). cond_dropout: classifier-free-guidance drop probability of a
// sample's whole condition (active only when ctx->training; gvm_nn_music_lm_cond_dropout). -> scalar.
// logits (optional, room for K): receives the LM's logits[k] [B, T + K - 1, card].
gvm_tensor *gvm_nn_gvmgen_forward_loss(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *frames,
                                       gvm_tensor *frame_mask, gvm_tensor *codes, const int64_t *code_len,
                                       float cond_dropout, gvm_tensor **logits);

// The same loss from a condition already computed: cond [B, T_v, D] (forward_condition or
// condition_from_tokens), frame_mask [B, T_v] or NULL; the other arguments as above.
gvm_tensor *gvm_nn_gvmgen_loss_from_condition(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *cond,
                                              gvm_tensor *frame_mask, gvm_tensor *codes, const int64_t *code_len,
                                              float cond_dropout, gvm_tensor **logits);

// Parameter counts (elements), per part and in total: all of them and the trainable ones.
typedef struct gvm_nn_gvmgen_summary {
    int64_t total[GVM_NN_GVMGEN_PARTS], trainable[GVM_NN_GVMGEN_PARTS];
    int64_t all_total, all_trainable;
} gvm_nn_gvmgen_summary;

gvm_nn_gvmgen_summary gvm_nn_gvmgen_count(const gvm_nn_gvmgen *m);
const char *gvm_nn_gvmgen_part_name(gvm_nn_gvmgen_part part);  // "vision_model", "qformer", ...
// One line per part (name, parameters, trainable or frozen) and a total line.
void gvm_nn_gvmgen_print_summary(const gvm_nn_gvmgen *m, FILE *f);

#ifdef __cplusplus
}
#endif

#endif
