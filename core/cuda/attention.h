// cuda/attention.h: fused scaled dot-product attention on the GPU, the twin of core/cpu/attention.h.
//
// Same layouts and semantics as the CPU kernels (heads interleaved, no permutes):
//   q [B, Tq, H, D], k [B, Tk, H, D], v [B, Tk, H, Dv], out [B, Tq, H, Dv], lse [B, H, Tq]
// key_mask [B, Tk] (nonzero = attend) may be NULL; a query row that sees no key gets out = 0, lse = +inf.
// Pointers are device pointers; the dims struct is host memory.
//
// Scores of a bounded number of (batch, head) pairs at a time live in the scratch the op passes in (at
// most ~256 MiB of score matrices, whatever the sequence lengths), so memory stays bounded without a
// fused kernel; the scratch-size functions report what the kernels need.
//
// The _lowp variants run the GEMMs on `dtype` (GVM_BF16 or GVM_F16) operands with f32 accumulation
// (autocast); inputs, outputs and gradients stay f32 in memory. Their scratch also holds the rounded copies.
// Where the fused kernels of flash_attention.cu support the shape (D == Dv in {32, 64, 128}) the _lowp
// functions run those instead (no score matrices; the backward scratch is one float per query row).
#ifndef GVM_CUDA_ATTENTION_H
#define GVM_CUDA_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cpu/attention.h"  // gvm_attention_dims
#include "core/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

size_t gvm_cuda_attention_fwd_scratch(const gvm_attention_dims *d);
size_t gvm_cuda_attention_bwd_scratch(const gvm_attention_dims *d);

// out [B, Tq, H, Dv] and lse [B, H, Tq] are written (exact f32).
void gvm_cuda_attention_fwd(const gvm_attention_dims *d, const float *q, const float *k, const float *v,
                            const uint8_t *key_mask, float *out, float *lse, void *scratch);

// Accumulates (+=) dq [B, Tq, H, D], dk [B, Tk, H, D], dv [B, Tk, H, Dv]; any may be NULL (not wanted).
void gvm_cuda_attention_bwd(const gvm_attention_dims *d, const float *q, const float *k, const float *v,
                            const uint8_t *key_mask, const float *out, const float *lse, const float *dout,
                            float *dq, float *dk, float *dv, void *scratch);

// Autocast: the same, with q, k, v (and dout, the probabilities, dS) rounded to `dtype` for the GEMMs.
size_t gvm_cuda_attention_fwd_lowp_scratch(gvm_dtype dtype, const gvm_attention_dims *d);
size_t gvm_cuda_attention_bwd_lowp_scratch(gvm_dtype dtype, const gvm_attention_dims *d);
void gvm_cuda_attention_fwd_lowp(gvm_dtype dtype, const gvm_attention_dims *d, const float *q, const float *k,
                                 const float *v, const uint8_t *key_mask, float *out, float *lse, void *scratch);
void gvm_cuda_attention_bwd_lowp(gvm_dtype dtype, const gvm_attention_dims *d, const float *q, const float *k,
                                 const float *v, const uint8_t *key_mask, const float *out, const float *lse,
                                 const float *dout, float *dq, float *dk, float *dv, void *scratch);

// Whether the autocast functions above may take the flash path. Default: no, unless the environment has
// GVM_ATTENTION_FLASH set to anything but "" or "0" (read once): the fused kernels were written after the
// last GPU validation run (docs/gpu-validation.md) and stay opt-in until a GPU run of test_cuda_attention,
// which switches them on, has passed. false forces the GEMM + softmax path (validated). Change it only between ops: an op's scratch-size query and its kernel
// call must see the same setting.
void gvm_cuda_attention_set_flash(bool enabled);
bool gvm_cuda_attention_flash_enabled(void);

// ---- the fused kernels (core/cuda/flash_attention.cu), autocast only -------------------------------------
// Shapes they handle: D == Dv in {32, 64, 128} (on an sm_80+ device); anything else takes the GEMM path.
bool gvm_cuda_flash_attention_supported(const gvm_attention_dims *d);
// The forward pass needs no scratch; the backward pass one float per query row (Di [B, H, Tq]).
size_t gvm_cuda_flash_attention_bwd_scratch(const gvm_attention_dims *d);
// Same contracts as gvm_cuda_attention_fwd_lowp / _bwd_lowp.
void gvm_cuda_flash_attention_fwd(gvm_dtype dtype, const gvm_attention_dims *d, const float *q, const float *k,
                                  const float *v, const uint8_t *key_mask, float *out, float *lse);
void gvm_cuda_flash_attention_bwd(gvm_dtype dtype, const gvm_attention_dims *d, const float *q, const float *k,
                                  const float *v, const uint8_t *key_mask, const float *out, const float *lse,
                                  const float *dout, float *dq, float *dk, float *dv, void *scratch);

#ifdef __cplusplus
}
#endif

#endif
