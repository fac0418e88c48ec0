// optim.c: the optimiser entry points (see optim.h): argument checks, the step's scalars, dispatch to the
// device's kernel (core/cpu/optim.c, core/cuda/optim.cu), and the dynamic loss scaler's state machine.
#include "core/optim.h"

#include <math.h>
#include <stddef.h>

#include "core/cpu/optim.h"
#include "core/dispatch.h"
#include "core/error.h"
#ifdef GVM_HAVE_CUDA
#include "core/cuda/optim.h"
#endif

typedef void (*adamw_step_fn)(float *param, const float *grad, float *m, float *v, int64_t n,
                              const gvm_adamw_coefs *c);
typedef double (*grad_sumsq_fn)(const float *grad, int64_t n);
typedef void (*ema_update_fn)(float *ema, const float *param, int64_t n, float decay);

static const adamw_step_fn k_adamw_step[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_adamw_step,
                                                             GVM_CUDA_KERNEL(gvm_cuda_adamw_step)};
static const grad_sumsq_fn k_grad_sumsq[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_grad_sumsq,
                                                             GVM_CUDA_KERNEL(gvm_cuda_grad_sumsq)};
static const ema_update_fn k_ema_update[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_ema_update,
                                                             GVM_CUDA_KERNEL(gvm_cuda_ema_update)};

static void check_device(gvm_device dev, const char *op) {
    GVM_CHECK((int)dev >= 0 && dev < GVM_DEVICE_COUNT, "%s: device %d out of range", op, (int)dev);
}

gvm_adamw_coefs gvm_adamw_coefs_make(const gvm_adamw_hparams *h, int64_t step) {
    GVM_CHECK(h, "adamw: hparams is NULL");
    GVM_CHECK(step >= 1, "adamw: step counts from 1 (got %lld)", (long long)step);
    // Configs are validated where they are read (train/); here a bad value is a bug in the caller.
    GVM_CHECK(h->lr >= 0.0f && isfinite(h->lr), "adamw: lr %g must be finite and >= 0", (double)h->lr);
    GVM_CHECK(h->beta1 >= 0.0f && h->beta1 < 1.0f, "adamw: beta1 %g must be in [0, 1)", (double)h->beta1);
    GVM_CHECK(h->beta2 >= 0.0f && h->beta2 < 1.0f, "adamw: beta2 %g must be in [0, 1)", (double)h->beta2);
    GVM_CHECK(h->eps >= 0.0f && isfinite(h->eps), "adamw: eps %g must be finite and >= 0", (double)h->eps);
    GVM_CHECK(h->weight_decay >= 0.0f && isfinite(h->weight_decay), "adamw: weight_decay %g must be finite and >= 0",
              (double)h->weight_decay);
    GVM_CHECK(h->grad_scale > 0.0f && isfinite(h->grad_scale),
              "adamw: grad_scale %g must be finite and > 0 (1 for no scaling)", (double)h->grad_scale);
    gvm_adamw_coefs c;
    double lr = h->lr, b1 = h->beta1, b2 = h->beta2;
    c.decay = 1.0 - lr * (double)h->weight_decay;
    c.beta1 = b1;
    c.beta2 = b2;
    c.one_minus_beta1 = 1.0 - b1;
    c.one_minus_beta2 = 1.0 - b2;
    // beta^step in double: for beta2 = 0.999 the bias correction stays accurate for millions of steps.
    c.step_size = lr / (1.0 - pow(b1, (double)step));
    c.inv_sqrt_bc2 = 1.0 / sqrt(1.0 - pow(b2, (double)step));
    c.eps = h->eps;
    c.grad_scale = h->grad_scale;
    return c;
}

void gvm_adamw_step(gvm_device dev, float *param, const float *grad, float *m, float *v, int64_t n,
                    const gvm_adamw_hparams *h, int64_t step) {
    check_device(dev, "adamw");
    GVM_CHECK(n >= 0, "adamw: n = %lld", (long long)n);
    gvm_adamw_coefs c = gvm_adamw_coefs_make(h, step);
    if (n == 0) return;
    GVM_CHECK(param && grad && m && v, "adamw: NULL block");
    GVM_DISPATCH(k_adamw_step, dev, "adamw_step")(param, grad, m, v, n, &c);
}

double gvm_grad_sumsq(gvm_device dev, const float *grad, int64_t n) {
    check_device(dev, "grad_sumsq");
    GVM_CHECK(n >= 0, "grad_sumsq: n = %lld", (long long)n);
    if (n == 0) return 0.0;
    GVM_CHECK(grad, "grad_sumsq: NULL block");
    return GVM_DISPATCH(k_grad_sumsq, dev, "grad_sumsq")(grad, n);
}

bool gvm_grads_finite(gvm_device dev, const float *grad, int64_t n) {
    return isfinite(gvm_grad_sumsq(dev, grad, n));
}

void gvm_ema_update(gvm_device dev, float *ema, const float *param, int64_t n, float decay) {
    check_device(dev, "ema_update");
    GVM_CHECK(n >= 0, "ema_update: n = %lld", (long long)n);
    GVM_CHECK(decay >= 0.0f && decay <= 1.0f, "ema_update: decay %g must be in [0, 1]", (double)decay);
    if (n == 0) return;
    GVM_CHECK(ema && param, "ema_update: NULL block");
    GVM_DISPATCH(k_ema_update, dev, "ema_update")(ema, param, n, decay);
}

// ---- dynamic loss scaling (torch.cuda.amp.GradScaler / torch._amp_update_scale_) -------------------------------

void gvm_loss_scaler_init(gvm_loss_scaler *s) {
    GVM_CHECK(s, "loss scaler is NULL");
    s->scale = 65536.0f;
    s->growth_factor = 2.0f;
    s->backoff_factor = 0.5f;
    s->growth_interval = 2000;
    s->growth_tracker = 0;
}

float gvm_loss_scaler_scale(const gvm_loss_scaler *s) { return s->scale; }

bool gvm_loss_scaler_update(gvm_loss_scaler *s, bool grads_finite) {
    GVM_CHECK(s->growth_interval >= 1, "loss scaler: growth_interval %d must be >= 1", s->growth_interval);
    if (!grads_finite) {
        s->scale *= s->backoff_factor;
        s->growth_tracker = 0;
        return false;
    }
    if (s->growth_tracker + 1 >= s->growth_interval) {
        float grown = s->scale * s->growth_factor;
        if (isfinite(grown)) s->scale = grown;  // PyTorch keeps the old scale rather than reach inf
        s->growth_tracker = 0;
    } else {
        s->growth_tracker++;
    }
    return true;
}
