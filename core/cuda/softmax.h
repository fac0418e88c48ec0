// cuda/softmax.h: CUDA kernels for softmax, log-softmax and the losses (cross-entropy, MSE, L1), the twins
// of core/cpu/softmax.h: same signatures with gvm_cuda_ for gvm_cpu_, same semantics (inputs seen as
// [outer, n, inner] reduced over n; backward kernels ACCUMULATE). Pointers are device memory. Only in builds
// with GVM_HAVE_CUDA; called through core/ops/softmax.c and core/ops/loss.c.
#ifndef GVM_CUDA_SOFTMAX_H
#define GVM_CUDA_SOFTMAX_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// x [outer, n, inner] -> y [outer, n, inner]
void gvm_cuda_softmax_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner);
// y, dy [outer, n, inner]: dx += y * (dy - sum_n(dy * y))
void gvm_cuda_softmax_bwd(const float *y, const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner);
void gvm_cuda_log_softmax_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner);
// y (log-probabilities), dy [outer, n, inner]: dx += dy - exp(y) * sum_n(dy)
void gvm_cuda_log_softmax_bwd(const float *y, const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner);

// logits [N, C], targets [N] -> loss [1], rowmax [N], logsum [N] (as on the CPU). Each target is checked in
// the kernel: one that is neither ignore_index nor in 0..C-1 prints a message and traps (the caller's data
// pipeline is broken; the context is lost).
void gvm_cuda_cross_entropy_fwd(const float *logits, const int64_t *targets, float *rowmax, float *logsum,
                                float *loss, int64_t N, int64_t C, int64_t ignore_index);
// dloss [1] -> dlogits [N, C] +=
void gvm_cuda_cross_entropy_bwd(const float *logits, const int64_t *targets, const float *rowmax,
                                const float *logsum, const float *dloss, float *dlogits, int64_t N, int64_t C,
                                int64_t ignore_index);
// dst [n] = src [n]: i32 class targets widened to the i64 the cross-entropy kernels read.
void gvm_cuda_widen_i32_i64(const int32_t *src, int64_t *dst, int64_t n);

// a, b [n] -> loss [1] = mean((a - b)^2) (NaN when n == 0)
void gvm_cuda_mse_loss_fwd(const float *a, const float *b, float *loss, int64_t n);
// da, db [n] += d/da, d/db of dloss[0] * loss; either may be NULL
void gvm_cuda_mse_loss_bwd(const float *a, const float *b, const float *dloss, float *da, float *db, int64_t n);
// a, b [n] -> loss [1] = mean(|a - b|)
void gvm_cuda_l1_loss_fwd(const float *a, const float *b, float *loss, int64_t n);
// sign(a - b) with sign(0) = 0; da, db may be NULL
void gvm_cuda_l1_loss_bwd(const float *a, const float *b, const float *dloss, float *da, float *db, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
