// evaluate.h: the evaluation loss of a GVMGen model on a split (train.eval_every in gvm train).
//
// The loss is the training loss (nn/gvmgen.h) without condition dropout or dropout, averaged over every
// valid codec step of the clips evaluated: batch losses weighted by their valid steps, so the number
// does not depend on the batch size or on the padded last batch. Clips in index order (no shuffle),
// the first max_batches batches of the split (0: all of it).
#ifndef GVM_TRAIN_EVALUATE_H
#define GVM_TRAIN_EVALUATE_H

#include <stdint.h>

#include "nn/gvmgen.h"
#include "train/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_eval_result {
    double loss;     // mean per-codebook cross-entropy over the valid steps (nats)
    int64_t steps;   // valid codec steps evaluated
    int64_t clips;   // clips evaluated
    int64_t batches;
} gvm_eval_result;

// Evaluate on cfg->data.eval_split (feature_source: as gvm_train_loader_config). Leaves ctx's training
// flag, tape, RNG and arena as it found them (the arena reset). GVM_ERR_NOT_FOUND when the split has no
// shards; other errors (a damaged clip, clips without codes) name the clip.
gvm_status gvm_train_evaluate(gvm_ctx *ctx, const gvm_nn_gvmgen *m, const gvm_config *cfg,
                              const char *feature_source, int max_batches, gvm_eval_result *out);

#ifdef __cplusplus
}
#endif

#endif
