// loop.h: the training loop of GVMGen: config -> model + loader -> steps of AdamW with clipping, schedule,
// EMA, metrics and crash-safe checkpoints, resumable bit for bit on the CPU.
//
// One step (train.grad_accum micro-batches, each one loader batch of data.batch_size clips):
//   zero grads; for each micro-batch: loss_i = forward_loss, backward (f16: the loss seeded with the loss
//   scale);  loss = mean_i loss_i
//   g = sum_i grad loss_i;  norm = sqrt(gvm_grad_sumsq(g)) / (accum * loss_scale)   (the mean's gradient norm)
//   grad_scale = 1 / (accum * loss_scale) * min(1, grad_clip / norm)      (folded into the AdamW pass)
//   lr = gvm_lr_at(schedule, optim_step + 1); AdamW; EMA (slot 2) update with train.ema_decay
// then a metrics line (every train.log_every steps and the last step) and a checkpoint (every
// train.checkpoint_every steps and at the end).
//
// Run folder: <run_dir>/config.yaml (the resolved config, written by the caller: tools/gvm/cmd_train.c),
// <run_dir>/metrics.jsonl (one JSON object per logged step: step, loss, lr, grad_norm, tokens_per_s,
// elapsed_s, epoch, batch; on resume, lines past the resumed step are dropped first), <run_dir>/ckpt-*
// (train/checkpoint.h).
//
// Determinism. Everything random is derived from train.seed: the initial weights (a gvm_rng seeded with
// it), the data order (the loader's seed) and dropout (the context's stream, seeded from it and saved in
// every checkpoint with the loader position, the AdamW step and the loss scaler). So on the CPU a run of
// 2N steps and a run of N steps resumed for N more give bit-identical losses and weights.
//
// Failures. A non-finite loss (or, without loss scaling, non-finite gradients) stops the run before the
// update, with a message naming the step; the checkpoints already written are kept (the last good one
// stays "latest") and the call returns GVM_ERR_INVALID. A stop request (*opts->stop set, e.g. by a
// SIGINT/SIGTERM handler) ends the run after the current step with a checkpoint and GVM_OK.
#ifndef GVM_TRAIN_LOOP_H
#define GVM_TRAIN_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "nn/gvmgen.h"
#include "train/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_train_opts {
    const volatile sig_atomic_t *stop;  // non-NULL and set: checkpoint after the current step and return
    FILE *log;                          // progress lines and messages (NULL: stderr)
    bool quiet;                         // no progress lines (messages still go to log)
    // Called after every step (before its checkpoint) with the step's mean loss; may set *stop.
    void (*on_step)(void *user, int64_t step, double loss);
    void *user;
} gvm_train_opts;

typedef struct gvm_train_result {
    int64_t start_step;   // the step resumed from (0 for a fresh run)
    int64_t steps_done;   // global steps completed when the call returned
    double last_loss;     // mean loss of the last step run (NaN when none ran)
    bool stopped;         // ended by a stop request before train.steps
} gvm_train_result;

// Train as configured into run folder `run_dir` (created when missing). resume: continue from the latest
// good checkpoint of run_dir (a fresh start when it has none). opts and result may be NULL.
gvm_status gvm_train_run(const gvm_config *cfg, const char *run_dir, bool resume, const gvm_train_opts *opts,
                         gvm_train_result *result);

// The model configuration of a config (train/model_cfg.c). GVM_ERR_INVALID with a message for what the
// model cannot do (other delays than 0..K-1, a qformer.ffn the Q-Former does not take, ...).
gvm_status gvm_train_model_cfg(const gvm_config *cfg, gvm_nn_gvmgen_cfg *out);

#ifdef __cplusplus
}
#endif

#endif
