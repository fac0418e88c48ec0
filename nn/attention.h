// attention.h: multi-head attention with separate q/k/v/out projections (Hugging Face's MusicgenAttention,
// BartAttention layout), self or cross, with a KV cache for generation.
//
// Parameters (each "<prefix>.<name>.weight", plus ".bias" when cfg.bias):
//   q_proj [E, E], k_proj [E, Ekv], v_proj [E, Ekv], out_proj [E, E]      (Ekv = cfg.kv_dim or E)
// Scores are scaled by 1/sqrt(E/H). Heads stay interleaved ([B, T, H, D]) as the projections make them,
// so the fused core op gvm_attention takes them without permutes. There is no dropout on attention
// probabilities (the fused op has none; MusicGen's attention_dropout is 0).
#ifndef GVM_NN_ATTENTION_H
#define GVM_NN_ATTENTION_H

#include <stdbool.h>

#include "nn/linear.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_nn_attention_cfg {
    int64_t embed_dim;  // E: query input and output width
    int64_t num_heads;  // H (divides E)
    int64_t kv_dim;     // width of the key/value input of cross-attention; 0 = E
    bool bias;          // biases on all four projections (MusicGen: none)
    float init_std;     // 0 = GVM_NN_DEFAULT_INIT_STD
} gvm_nn_attention_cfg;

typedef struct gvm_nn_attention {
    gvm_nn_linear q_proj, k_proj, v_proj, out_proj;
    int64_t embed_dim, num_heads, head_dim, kv_dim;
} gvm_nn_attention;

// Past keys and values of one attention module during generation (inference only: nothing in the cache
// carries a gradient). Heap memory on the parameters' device, grown by doubling.
//  * self-attention: every forward appends the new steps' K/V and attends over all of them;
//  * cross-attention: the first forward (kv != NULL) projects the condition once and marks the cache
//    fixed; later forwards reuse it whatever kv they pass (NULL is fine).
typedef struct gvm_nn_kv_cache {
    float *k, *v;       // [B, cap, H, D] each (row b holds its first `len` steps)
    int64_t batch, heads, head_dim;
    int64_t len, cap;   // steps held, steps allocated
    bool fixed;         // filled once from a cross-attention condition: reuse, never append
    gvm_device device;
} gvm_nn_kv_cache;

void gvm_nn_attention_init(gvm_nn_attention *m, gvm_param_store *ps, const char *prefix,
                           const gvm_nn_attention_cfg *cfg);
void gvm_nn_attention_reset_parameters(gvm_nn_attention *m, gvm_rng *rng);

// x [B, Tq, E]; kv [B, Tk, Ekv] for cross-attention or NULL for self-attention (keys from x);
// key_mask [B, Tk_total] bool/u8 (1 = attend) or NULL, covering every key attended (with a cache: the
// past steps and the new ones); causal: query i sees keys j <= i + (Tk_total - Tq) (end-aligned, so a
// cached decode step sees all its past); cache or NULL.  -> [B, Tq, E]
gvm_tensor *gvm_nn_attention_forward(gvm_ctx *ctx, const gvm_nn_attention *m, gvm_tensor *x, gvm_tensor *kv,
                                     gvm_tensor *key_mask, bool causal, gvm_nn_kv_cache *cache);

// An empty cache (no memory until the first forward). Reset keeps the memory for the next sequence.
void gvm_nn_kv_cache_init(gvm_nn_kv_cache *c);
void gvm_nn_kv_cache_reset(gvm_nn_kv_cache *c);
void gvm_nn_kv_cache_free(gvm_nn_kv_cache *c);

#ifdef __cplusplus
}
#endif

#endif
