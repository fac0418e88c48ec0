// cuda/optim.h: CUDA kernels of the optimiser, the twins of core/cpu/optim.h (same signatures with
// gvm_cuda_ for gvm_cpu_; pointers are device memory, the coefficient struct is host memory). Only in
// builds with GVM_HAVE_CUDA; called through core/optim.c.
#ifndef GVM_CUDA_OPTIM_H
#define GVM_CUDA_OPTIM_H

#include <stdint.h>

#include "core/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

// One fused AdamW step (formula in core/optim.h). param, m, v [n] in place; grad [n]. One kernel.
void gvm_cuda_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n, const gvm_adamw_coefs *c);
// sum_i grad[i]^2 in double, deterministic (two-pass block reduction with a fixed tree); grad [n]. Returns
// to the host (synchronises the compute stream).
double gvm_cuda_grad_sumsq(const float *grad, int64_t n);
// ema = decay * ema + (1 - decay) * param. ema, param [n].
void gvm_cuda_ema_update(float *ema, const float *param, int64_t n, float decay);

#ifdef __cplusplus
}
#endif

#endif
