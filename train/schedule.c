// schedule.c: learning-rate schedules (see schedule.h for the formula).
#include "train/schedule.h"

#include <math.h>

gvm_status gvm_lr_schedule_validate(const gvm_lr_schedule *s) {
    if (!isfinite(s->lr) || s->lr < 0)
        return gvm_error_set(GVM_ERR_INVALID, "learning rate %g: must be finite and >= 0", s->lr);
    if (s->warmup_steps < 0)
        return gvm_error_set(GVM_ERR_INVALID, "warmup_steps %lld: must be >= 0", (long long)s->warmup_steps);
    if (s->decay != GVM_LR_CONSTANT && s->decay != GVM_LR_COSINE)
        return gvm_error_set(GVM_ERR_INVALID, "lr decay %d: must be constant or cosine", (int)s->decay);
    if (s->decay == GVM_LR_COSINE) {
        if (!(s->min_lr_ratio >= 0 && s->min_lr_ratio <= 1))
            return gvm_error_set(GVM_ERR_INVALID, "min_lr_ratio %g: must be in [0, 1]", s->min_lr_ratio);
        if (s->total_steps < s->warmup_steps)
            return gvm_error_set(GVM_ERR_INVALID,
                                 "total_steps %lld is less than warmup_steps %lld: the cosine decay needs "
                                 "total_steps >= warmup_steps",
                                 (long long)s->total_steps, (long long)s->warmup_steps);
    }
    return GVM_OK;
}

double gvm_lr_at(const gvm_lr_schedule *s, int64_t step) {
    const double L = s->lr;
    const int64_t W = s->warmup_steps;
    if (W > 0 && step <= W) return step <= 0 ? 0.0 : L * (double)step / (double)W;
    if (s->decay == GVM_LR_CONSTANT) return L;
    const int64_t T = s->total_steps;
    double p = T > W ? (double)(step - W) / (double)(T - W) : 1.0;
    if (p > 1) p = 1;
    if (p < 0) p = 0;  // step <= 0 with W == 0
    const double lmin = s->min_lr_ratio * L;
    if (p == 1) return lmin;  // exactly, rather than through cos(pi) = -1 + rounding
    return lmin + (L - lmin) * 0.5 * (1.0 + cos(M_PI * p));
}
