// optim.h: the optimiser kernels the training loop calls once per step over the parameter blocks of a
// gvm_param_store (core/param_store.h): parameters [n], gradients [n] and each optimiser state [n] (AdamW's
// m and v, EMA weights) are single f32 blocks of one layout on one device, so each call is one pass over
// raw pointers. Also the dynamic loss scaler of mixed-precision training (host-side, pure C).
//
//   gvm_adamw_hparams h = {.lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f};
//   double ss = gvm_grad_sumsq(dev, ps.grad, ps.total);          // returns to the host
//   if (isfinite(ss)) {                                             // == gvm_grads_finite(dev, ...)
//       double norm = sqrt(ss) / loss_scale;
//       h.grad_scale = (float)(1.0 / loss_scale * (norm > max_norm ? max_norm / norm : 1.0));
//       gvm_adamw_step(dev, ps.data, ps.grad, m, v, ps.total, &h, ++step);
//   }
//
// All pointers belong to device `dev` (host memory for GVM_DEVICE_CPU); hparams structs are host memory.
// The per-element arithmetic runs in double and rounds once to f32 per stored value, on every device, so
// the CPU and CUDA backends agree bit for bit (AdamW, EMA; seen on an H100) and a step is exact to that
// one rounding against a float64 reference.
#ifndef GVM_OPTIM_H
#define GVM_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

// AdamW as torch.optim.AdamW (amsgrad off, maximize off).
typedef struct gvm_adamw_hparams {
    float lr;
    float beta1, beta2;   // in [0, 1)
    float eps;            // added to sqrt(v_hat), as PyTorch does
    float weight_decay;   // decoupled: param *= 1 - lr * weight_decay before the Adam update
    float grad_scale;     // every gradient is multiplied by this first (loss-scale unscaling and the
                          // clipping coefficient folded in); must be > 0: set 1 for no scaling (a
                          // forgotten field would otherwise silently zero every gradient)
} gvm_adamw_hparams;

// One AdamW step over n elements; `step` counts from 1 (bias corrections 1 - beta^step). In one pass:
//   g = grad * grad_scale
//   param *= 1 - lr * weight_decay
//   m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g^2
//   param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// param, m, v [n] updated in place; grad [n] read only.
void gvm_adamw_step(gvm_device dev, float *param, const float *grad, float *m, float *v, int64_t n,
                    const gvm_adamw_hparams *h, int64_t step);

// sum_i grad[i]^2 in double (for global-norm clipping: norm = sqrt of the sum over all gradient blocks).
// Deterministic: the same value on every run and thread count. Any inf or NaN in grad makes the result
// inf or NaN (a finite f32 squared cannot overflow a double sum), so isfinite() of it is a finiteness test.
double gvm_grad_sumsq(gvm_device dev, const float *grad, int64_t n);
// false when any grad[i] is inf or NaN (dynamic loss scaling). Implemented as isfinite(gvm_grad_sumsq):
// a loop that clips already has that sum and need not call this.
bool gvm_grads_finite(gvm_device dev, const float *grad, int64_t n);

// ema = decay * ema + (1 - decay) * param over n elements (ema, param [n]).
void gvm_ema_update(gvm_device dev, float *ema, const float *param, int64_t n, float decay);

// ---- dynamic loss scaling, as torch.cuda.amp.GradScaler ------------------------------------------------------
// Multiply the loss by gvm_loss_scaler_scale() before backward; unscale the gradients by 1/scale (through
// grad_scale above); after each step report whether they were finite:
//   * not finite: skip the step, scale *= backoff_factor, and the run of good steps restarts;
//   * finite: apply the step; after growth_interval finite steps in a row, scale *= growth_factor (unless
//     that overflows f32, then the scale stays) and the run restarts.
// All fields may be saved in and restored from a checkpoint.
typedef struct gvm_loss_scaler {
    float scale;            // 65536 (2^16) initially
    float growth_factor;    // 2
    float backoff_factor;   // 0.5
    int growth_interval;    // 2000
    int growth_tracker;     // finite steps since the last growth or backoff
} gvm_loss_scaler;

void gvm_loss_scaler_init(gvm_loss_scaler *s);  // PyTorch's defaults, as above
float gvm_loss_scaler_scale(const gvm_loss_scaler *s);
// Update after a step's gradients were checked; returns whether that step should be applied.
bool gvm_loss_scaler_update(gvm_loss_scaler *s, bool grads_finite);

// ---- for the kernels (core/cpu/optim.c, core/cuda/optim.cu) ------------------------------------------------
// The step's scalars, derived once on the host in double from the hparams and the step.
typedef struct gvm_adamw_coefs {
    double decay;            // 1 - lr * weight_decay
    double beta1, beta2;
    double one_minus_beta1, one_minus_beta2;
    double step_size;        // lr / (1 - beta1^step)
    double inv_sqrt_bc2;     // 1 / sqrt(1 - beta2^step)
    double eps;
    double grad_scale;
} gvm_adamw_coefs;
gvm_adamw_coefs gvm_adamw_coefs_make(const gvm_adamw_hparams *h, int64_t step);

#ifdef __cplusplus
}
#endif

#endif
