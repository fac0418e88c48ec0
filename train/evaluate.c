// evaluate.c: the evaluation loss on a split (train/evaluate.h).
#define _POSIX_C_SOURCE 200809L
#include "train/evaluate.h"

#include <glob.h>
#include <math.h>
#include <stdio.h>

#include "core/context.h"
#include "core/device.h"
#include "data/loader.h"
#include "train/batch.h"

static bool split_has_shards(const gvm_config *cfg) {
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/%s-*.h5", cfg->data.dir, cfg->data.eval_split);
    glob_t g;
    const bool any = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    globfree(&g);
    return any;
}

gvm_status gvm_train_evaluate(gvm_ctx *ctx, const gvm_nn_gvmgen *m, const gvm_config *cfg,
                              const char *feature_source, int max_batches, gvm_eval_result *out) {
    *out = (gvm_eval_result){.loss = NAN};
    if (!split_has_shards(cfg))
        return gvm_error_set(GVM_ERR_NOT_FOUND, "%s has no %s-*.h5 shards to evaluate on (data.eval_split)",
                             cfg->data.dir, cfg->data.eval_split);
    gvm_loader_config lc = gvm_train_loader_config(cfg, m, cfg->data.eval_split, false, feature_source);
    gvm_loader *loader = NULL;
    gvm_status st = gvm_loader_open(&lc, &loader);
    if (st != GVM_OK) return st;
    int64_t n = gvm_loader_batches_per_epoch(loader);
    if (max_batches > 0 && max_batches < n) n = max_batches;

    const bool was_training = ctx->training;
    const gvm_rng rng = ctx->rng;  // evaluation draws nothing, but the run's stream must not move
    ctx->training = false;
    gvm_no_grad_begin(ctx);
    gvm_train_device_batch dev = {0};
    double weighted = 0;
    for (int64_t i = 0; i < n && st == GVM_OK; i++) {
        gvm_loader_batch b;
        if ((st = gvm_loader_next(loader, &b)) != GVM_OK) break;
        int64_t steps = 0;
        for (int64_t r = 0; r < b.size; r++) steps += b.code_len[r];
        if (steps > 0) {
            gvm_tensor *loss = gvm_train_batch_loss(ctx, m, &dev, &b, 0.0f);
            float v;
            gvm_device_copy(&v, GVM_DEVICE_CPU, loss->data, loss->device, sizeof v);
            weighted += (double)v * (double)steps;
            out->steps += steps;
        }
        out->clips += b.count;
        out->batches++;
        gvm_ctx_reset(ctx);
    }
    gvm_no_grad_end(ctx);
    ctx->training = was_training;
    ctx->rng = rng;
    gvm_train_device_batch_free(&dev);
    gvm_loader_close(loader);
    if (st == GVM_OK) out->loss = out->steps > 0 ? weighted / (double)out->steps : NAN;
    return st;
}
