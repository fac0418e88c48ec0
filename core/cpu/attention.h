// cpu/attention.h: fused scaled dot-product attention kernels (flash-attention style) on the CPU.
//
// Layout, as linear layers produce it (heads interleaved, no permutes):
//   q [B, Tq, H, D], k [B, Tk, H, D], v [B, Tk, H, Dv], out [B, Tq, H, Dv], lse [B, H, Tq]
// Head h of batch b is a strided matrix (row stride H*D), handed to BLAS through its leading dimension.
// The B x H x Tq x Tk scores are never stored: the forward pass keeps one block of query rows' scores per
// thread and saves the per-row log-sum-exp; the backward pass recomputes the probabilities from it.
#ifndef GVM_CPU_ATTENTION_H
#define GVM_CPU_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_attention_dims {
    int64_t B, Tq, Tk, H, D, Dv;
    bool causal;  // query i sees key j iff j <= i + (Tk - Tq)
    float scale;  // multiplies q.k (already resolved: never 0 here)
    int64_t kv_stride;  // steps between the batch entries of k and v (>= Tk; 0 = Tk); the forward kernel only
} gvm_attention_dims;

// Scratch bytes the kernels need (for the calling thread's OpenMP team); the caller allocates them (arena).
size_t gvm_cpu_attention_fwd_scratch(const gvm_attention_dims *d);
size_t gvm_cpu_attention_bwd_scratch(const gvm_attention_dims *d);

// out [B, Tq, H, Dv] and lse [B, H, Tq] are written. key_mask [B, Tk] (nonzero = attend) may be NULL.
// A row that sees no key gets out = 0 and lse = +inf (so the backward pass gives it zero probability).
void gvm_cpu_attention_fwd(const gvm_attention_dims *d, const float *q, const float *k, const float *v,
                           const uint8_t *key_mask, float *out, float *lse, void *scratch);

// Accumulates (+=) dq [B, Tq, H, D], dk [B, Tk, H, D], dv [B, Tk, H, Dv]; any of them may be NULL (not
// wanted). out and lse are the forward pass's results; dout [B, Tq, H, Dv] is the upstream gradient.
void gvm_cpu_attention_bwd(const gvm_attention_dims *d, const float *q, const float *k, const float *v,
                           const uint8_t *key_mask, const float *out, const float *lse, const float *dout, float *dq,
                           float *dk, float *dv, void *scratch);

#ifdef __cplusplus
}
#endif

#endif
