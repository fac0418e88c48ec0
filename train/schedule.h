// schedule.h: the learning rate at each optimiser step: linear warm-up, then cosine decay or constant.
//
// Steps count from 1 like gvm_adamw_step's `step` (step s is the s-th update applied). With W =
// warmup_steps, T = total_steps, L = lr and L_min = min_lr_ratio * L:
//   s <= W (warm-up, W > 0):   lr(s) = L * s / W                   (step 1 gets L/W, step W gets L)
//   after warm-up, CONSTANT:   lr(s) = L
//   after warm-up, COSINE:     p = min(1, (s - W) / (T - W))        (p = 1 when T == W)
//                              lr(s) = L_min + (L - L_min) * 0.5 * (1 + cos(pi * p))   (= L_min for s >= T)
// computed in double. This is transformers' get_cosine_with_min_lr_schedule_with_warmup (num_cycles 0.5,
// min_lr_rate = min_lr_ratio) evaluated at current_step = s; under torch.optim.lr_scheduler.LambdaLR the
// k-th update uses lambda(k - 1), so HF's loop gives update k what this gives update k - 1 (HF wastes its
// first update at lr 0; here step 0 is 0 too but no update uses it).
#ifndef GVM_TRAIN_SCHEDULE_H
#define GVM_TRAIN_SCHEDULE_H

#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gvm_lr_decay {
    GVM_LR_CONSTANT = 0,  // hold lr after warm-up
    GVM_LR_COSINE,        // cosine from lr to min_lr_ratio * lr between warm-up's end and total_steps
} gvm_lr_decay;

typedef struct gvm_lr_schedule {
    double lr;             // peak learning rate L (>= 0)
    int64_t warmup_steps;  // W >= 0 (0: no warm-up)
    int64_t total_steps;   // T (COSINE: T >= W; ignored by CONSTANT)
    double min_lr_ratio;   // L_min / L in [0, 1] (COSINE)
    gvm_lr_decay decay;
} gvm_lr_schedule;

// GVM_OK, or GVM_ERR_INVALID with a message naming the field (a config error, not an abort).
gvm_status gvm_lr_schedule_validate(const gvm_lr_schedule *s);
// lr(step) as above; step <= 0 gives 0 when W > 0 (and L otherwise). The schedule must be valid.
double gvm_lr_at(const gvm_lr_schedule *s, int64_t step);

#ifdef __cplusplus
}
#endif

#endif
