// vit.h: the CLIP vision transformer (GVMGen stage 1, "spatial self-attention"), laid out and named as
// Hugging Face's CLIPVisionModel, so openai/clip-vit-large-patch14-336 loads by name.
//
//   patches = patchify(images) @ patch_embedding^T            conv k=p, stride p, no bias, as a GEMM
//   x = concat(class_embedding, patches) + position_embedding  [B, N+1, W]   (N = (S/p)^2, CLS first)
//   x = pre_layrnorm(x)
//   per layer (pre-norm): x = x + self_attn(layer_norm1(x)); x = x + mlp(layer_norm2(x))  (quick_gelu)
//   -> last hidden state [B, N+1, W]: the sequence GVMGen hands to the Q-Former, BEFORE post_layernorm
//   pooled output (CLIP's image embedding before its projection) = post_layernorm(x[:, 0])
//
// Parameters under the prefix (the twin's prefix is "vision_model"):
//   embeddings.class_embedding [W], embeddings.patch_embedding.weight [W, 3, p, p],
//   embeddings.position_embedding.weight [N+1, W], pre_layrnorm.{weight,bias} (sic, HF's spelling),
//   encoder.layers.{i}.self_attn.{q,k,v,out}_proj.{weight,bias}, .layer_norm1, .mlp.fc1, .mlp.fc2,
//   .layer_norm2, post_layernorm.{weight,bias}
// reset_parameters uses the nn/module.h convention (weights and embeddings N(0, init_std)), not CLIP's
// depth-scaled init: the ViT is always loaded pretrained in GVMGen; random values serve tests only.
#ifndef GVM_NN_VIT_H
#define GVM_NN_VIT_H

#include <stdbool.h>

#include "nn/attention.h"
#include "nn/layer_norm.h"
#include "nn/mlp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_nn_vit_cfg {
    int64_t image_size;     // S (square input; HF: image_size)
    int64_t patch_size;     // p (an S not divisible by p drops the remainder, as the strided conv does)
    int64_t channels;       // 0 = 3
    int64_t width;          // W (hidden_size)
    int64_t layers;         // num_hidden_layers
    int64_t heads;          // num_attention_heads
    int64_t mlp_dim;        // intermediate_size; 0 = 4 W
    gvm_nn_activation act;  // CLIP: GVM_NN_ACT_QUICK_GELU (set it; 0 is exact GELU)
    float ln_eps;           // 0 = 1e-5 (CLIP's layer_norm_eps)
    float init_std;         // 0 = GVM_NN_DEFAULT_INIT_STD
} gvm_nn_vit_cfg;

// openai/clip-vit-large-patch14-336: S 336, p 14, W 1024, 24 layers, 16 heads, mlp 4096, quick_gelu.
gvm_nn_vit_cfg gvm_nn_vit_cfg_clip_l14_336(void);

typedef struct gvm_nn_vit_layer {
    gvm_nn_attention self_attn;   // q/k/v/out_proj with biases
    gvm_nn_layer_norm layer_norm1, layer_norm2;
    gvm_nn_mlp mlp;               // fc1, fc2
} gvm_nn_vit_layer;

typedef struct gvm_nn_vit {
    gvm_tensor *class_embedding;     // [W]
    gvm_tensor *patch_weight;        // [W, C, p, p]  embeddings.patch_embedding.weight
    gvm_tensor *position_embedding;  // [N+1, W]
    gvm_nn_layer_norm pre_layrnorm, post_layernorm;
    gvm_nn_vit_layer *layers;        // [n_layers], heap (freed by gvm_nn_vit_free)
    int64_t image_size, patch_size, channels, grid, n_tokens, width, n_layers;
    float init_std;
} gvm_nn_vit;

void gvm_nn_vit_init(gvm_nn_vit *m, gvm_param_store *ps, const char *prefix, const gvm_nn_vit_cfg *cfg);
void gvm_nn_vit_reset_parameters(gvm_nn_vit *m, gvm_rng *rng);
// Freeze (or unfreeze) every ViT parameter: no gradient is kept for them and, with image inputs that need
// none, the forward records nothing on the tape (GVMGen trains no part of the ViT).
void gvm_nn_vit_set_trainable(gvm_nn_vit *m, bool trainable);
void gvm_nn_vit_free(gvm_nn_vit *m);  // the layer array only; parameters belong to the store

// images [B, C, S, S] (CLIP-normalised f32) -> last hidden state [B, N+1, W], before post_layernorm.
// hidden_states: NULL, or room for n_layers + 1 tensors, filled as HF's output_hidden_states: [0] the
// embeddings after pre_layrnorm, [i] the output of layer i-1 (so [n_layers] is the return value).
gvm_tensor *gvm_nn_vit_forward(gvm_ctx *ctx, const gvm_nn_vit *m, gvm_tensor *images, gvm_tensor **hidden_states);
// last hidden state [B, N+1, W] -> post_layernorm of the CLS token [B, W] (HF's pooler_output).
gvm_tensor *gvm_nn_vit_pool(gvm_ctx *ctx, const gvm_nn_vit *m, gvm_tensor *hidden);

// The patch embedding alone (a conv2d with kernel = stride = p, no bias, no padding):
// images [B, C, S, S], weight [W, C, p, p] -> [B, G*G, W], G = S / p (floor), patches in row-major grid
// order, i.e. conv2d(images, weight, stride=p).flatten(2).transpose(1, 2).
gvm_tensor *gvm_nn_patch_embed(gvm_ctx *ctx, gvm_tensor *images, gvm_tensor *weight);
// images [B, C, S, S] -> [B, G*G, C*p*p], each patch flattened in (c, ky, kx) order: the order of a
// conv weight [W, C, p, p] viewed as [W, C*p*p].
gvm_tensor *gvm_nn_patchify(gvm_ctx *ctx, gvm_tensor *images, int64_t patch);

#ifdef __cplusplus
}
#endif

#endif
