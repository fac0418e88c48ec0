// cuda/reduce.h: CUDA kernels of the reductions (sum, mean, max, masked mean pooling), the twins of
// core/cpu/reduce.h: same signatures with gvm_cuda_ for gvm_cpu_, same semantics (x [outer, n, inner]
// reduced over n to y [outer, inner]; backward kernels ACCUMULATE into dx). Pointers are device memory.
// Only in builds with GVM_HAVE_CUDA; called through core/ops/reduce.c.
#ifndef GVM_CUDA_REDUCE_H
#define GVM_CUDA_REDUCE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// y[o, i] = scale * sum_k x[o, k, i], summed in double (deterministic: fixed reduction trees).
void gvm_cuda_sum_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, double scale);
// dx[o, k, i] += scale * dy[o, i]
void gvm_cuda_sum_bwd(const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner, float scale);

// y[o, i] = max_k x[o, k, i]; arg[o, i] (when arg != NULL) = the FIRST k reaching it; the first NaN wins.
// Requires n >= 1.
void gvm_cuda_max_fwd(const float *x, float *y, int64_t *arg, int64_t outer, int64_t n, int64_t inner);
// dx[o, arg[o, i], i] += dy[o, i]
void gvm_cuda_max_bwd(const float *dy, const int64_t *arg, float *dx, int64_t outer, int64_t n, int64_t inner);

// y[o, i] = sum_k m[o, k] x[o, k, i] / count_k(m[o, k] != 0), 0 when the count is 0. mask [outer, n] or NULL.
void gvm_cuda_mean_pool_fwd(const float *x, const uint8_t *mask, float *y, int64_t outer, int64_t n, int64_t inner);
// dx[o, k, i] += m[o, k] dy[o, i] / count
void gvm_cuda_mean_pool_bwd(const float *dy, const uint8_t *mask, float *dx, int64_t outer, int64_t n,
                            int64_t inner);

#ifdef __cplusplus
}
#endif

#endif
