// cpu/softmax.h: CPU kernels for softmax, log-softmax and the losses (cross-entropy, MSE, L1).
//
// Softmax kernels see their input as [outer, n, inner] with the reduction over n (inner == 1 is the
// last axis, the fast path). Backward kernels ACCUMULATE (+=) into the input gradient.
#ifndef GVM_CPU_SOFTMAX_H
#define GVM_CPU_SOFTMAX_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// x [outer, n, inner] -> y [outer, n, inner]
void gvm_cpu_softmax_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner);
// y, dy [outer, n, inner]: dx += y * (dy - sum_n(dy * y))
void gvm_cpu_softmax_bwd(const float *y, const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner);
void gvm_cpu_log_softmax_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner);
// y (log-probabilities), dy [outer, n, inner]: dx += dy - exp(y) * sum_n(dy)
void gvm_cpu_log_softmax_bwd(const float *y, const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner);

// logits [N, C], targets [N] (already checked to be in 0..C-1 or ignore_index) -> loss [1] (mean over
// rows whose target is not ignore_index; 0 when there are none). Also writes, per row, the max logit
// rowmax [N] and logsum [N] = log(sum_c exp(logit - rowmax)), so backward can recompute the softmax
// without a stored [N, C] probability tensor. They are kept apart, not summed into one log-sum-exp,
// because with logits near 1e3 one f32 ulp of the sum would already be a 3e-5 relative error in exp().
void gvm_cpu_cross_entropy_fwd(const float *logits, const int64_t *targets, float *rowmax, float *logsum, float *loss,
                               int64_t N, int64_t C, int64_t ignore_index);
// dloss [1] (upstream gradient of the scalar) -> dlogits [N, C] +=
void gvm_cpu_cross_entropy_bwd(const float *logits, const int64_t *targets, const float *rowmax, const float *logsum,
                               const float *dloss, float *dlogits, int64_t N, int64_t C, int64_t ignore_index);

// a, b [n] -> loss [1] = mean((a - b)^2)
void gvm_cpu_mse_loss_fwd(const float *a, const float *b, float *loss, int64_t n);
// da, db [n] += d/da, d/db of dloss[0] * loss; either may be NULL
void gvm_cpu_mse_loss_bwd(const float *a, const float *b, const float *dloss, float *da, float *db, int64_t n);
// a, b [n] -> loss [1] = mean(|a - b|)
void gvm_cpu_l1_loss_fwd(const float *a, const float *b, float *loss, int64_t n);
// sign(a - b) with sign(0) = 0, as PyTorch; da, db may be NULL
void gvm_cpu_l1_loss_bwd(const float *a, const float *b, const float *dloss, float *da, float *db, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
