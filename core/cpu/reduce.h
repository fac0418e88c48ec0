// cpu/reduce.h: CPU kernels of the reductions (sum, mean, max, masked mean pooling).
//
// Every kernel sees its input as x [outer, n, inner] reduced over n to y [outer, inner]: a reduction over
// one axis folds the dims before the axis into `outer` and those after it into `inner`; GVM_AXIS_ALL is
// outer = inner = 1. Backward kernels ACCUMULATE into dx.
#ifndef GVM_CPU_REDUCE_H
#define GVM_CPU_REDUCE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// y[o, i] = scale * sum_k x[o, k, i], summed in double (scale 1 for sum, 1/n for mean).
void gvm_cpu_sum_fwd(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, double scale);
// dx[o, k, i] += scale * dy[o, i]
void gvm_cpu_sum_bwd(const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner, float scale);

// y[o, i] = max_k x[o, k, i]; arg[o, i] (when arg != NULL) = the FIRST k reaching it. NaN propagates (the
// first NaN wins). Requires n >= 1.
void gvm_cpu_max_fwd(const float *x, float *y, int64_t *arg, int64_t outer, int64_t n, int64_t inner);
// dx[o, arg[o, i], i] += dy[o, i]
void gvm_cpu_max_bwd(const float *dy, const int64_t *arg, float *dx, int64_t outer, int64_t n, int64_t inner);

// y[o, i] = sum_k m[o, k] x[o, k, i] / count_k(m[o, k] != 0), 0 when the count is 0. mask [outer, n]
// (nonzero = valid) or NULL for a plain mean.
void gvm_cpu_mean_pool_fwd(const float *x, const uint8_t *mask, float *y, int64_t outer, int64_t n, int64_t inner);
// dx[o, k, i] += m[o, k] dy[o, i] / count
void gvm_cpu_mean_pool_bwd(const float *dy, const uint8_t *mask, float *dx, int64_t outer, int64_t n, int64_t inner);

#ifdef __cplusplus
}
#endif

#endif
