// cpu/optim.h: CPU kernels of the optimiser (called through core/optim.c, which checks the arguments and
// derives the step's scalars). Arithmetic per element in double, one rounding to f32 per stored value.
#ifndef GVM_CPU_OPTIM_H
#define GVM_CPU_OPTIM_H

#include <stdint.h>

#include "core/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

// One fused AdamW step (formula in core/optim.h). param, m, v [n] in place; grad [n]; c is host memory.
void gvm_cpu_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n, const gvm_adamw_coefs *c);
// sum_i grad[i]^2 in double, in an order fixed by n alone (the same result on any thread count). grad [n].
double gvm_cpu_grad_sumsq(const float *grad, int64_t n);
// ema = decay * ema + (1 - decay) * param. ema, param [n].
void gvm_cpu_ema_update(float *ema, const float *param, int64_t n, float decay);

#ifdef __cplusplus
}
#endif

#endif
