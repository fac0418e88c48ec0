// cuda/elementwise.h: CUDA kernels of the elementwise ops, the twins of core/cpu/elementwise.h (same
// signatures with gvm_cuda_ for gvm_cpu_; tensor pointers are device memory, the broadcast plans are host
// memory), plus the dtype conversion that tensor copies and the cast op use. Only in builds with
// GVM_HAVE_CUDA; called through core/ops/binary.c, unary.c, activation.c and core/tensor.c.
//
// Backward kernels ACCUMULATE (+=) into the gradients they are given, as on the CPU, and are deterministic:
// every reduction over broadcast dims runs in a fixed order (double accumulators, fixed trees), no float
// atomics. Dropout draws the CPU's mask exactly (core/cuda/philox.cuh).
#ifndef GVM_CUDA_ELEMENTWISE_H
#define GVM_CUDA_ELEMENTWISE_H

#include <stdint.h>

#include "core/broadcast.h"
#include "core/cpu/elementwise.h"  // gvm_binary_op, gvm_unary_op
#include "core/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

// y = a (op) b with the broadcast `bc` planned for inputs (a, b); y [bc->shape] contiguous.
void gvm_cuda_binary_fwd(gvm_binary_op op, const float *a, const float *b, float *y, const gvm_broadcast *bc);
// ga [a's shape] += reduce(gy * d(a op b)/da), gb likewise; either may be NULL (not wanted), and they may be
// the same buffer (a == b). Reductions over broadcast dims accumulate in double.
void gvm_cuda_binary_bwd(gvm_binary_op op, const float *a, const float *b, const float *gy, float *ga, float *gb,
                         const gvm_broadcast *bc);

// x [n] -> y [n].
void gvm_cuda_unary_fwd(gvm_unary_op op, const float *x, float *y, int64_t n, float param);
// gx [n] += gy * f'(x); y = f(x) as the forward returned it.
void gvm_cuda_unary_bwd(gvm_unary_op op, const float *x, const float *y, const float *gy, float *gx, int64_t n,
                        float param);

// Dropout with the mask regenerated from Philox: element i is kept iff gvm_rng_uniform_at(seed, base, i) >= p,
// kept values are scaled by 1 / (1 - p). x, y, gy, gx [n].
void gvm_cuda_dropout_fwd(const float *x, float *y, int64_t n, uint64_t seed, uint64_t base, float p);
void gvm_cuda_dropout_bwd(const float *gy, float *gx, int64_t n, uint64_t seed, uint64_t base, float p);

// y = mask ? value : a, with `bc` planned for inputs (a, mask) and a covering the output. mask is bool/u8.
void gvm_cuda_masked_fill_fwd(const float *a, const uint8_t *mask, float *y, float value, const gvm_broadcast *bc);
// ga += mask ? 0 : gy.
void gvm_cuda_masked_fill_bwd(const uint8_t *mask, const float *gy, float *ga, const gvm_broadcast *bc);

// dst [n] = src [n] converted element by element with gvm_tensor_copy's rules (core/tensor.c): float to
// f16/bf16 rounds to nearest even (NaN stays NaN, with the CPU's bits), float to integer truncates after
// saturating (NaN -> 0), anything to bool is != 0. Same dtype: a plain copy.
void gvm_cuda_cast(const void *src, gvm_dtype src_dtype, void *dst, gvm_dtype dst_dtype, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
