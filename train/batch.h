// batch.h: what the training loop (train/loop.c) and the evaluation (train/evaluate.c) share: the loader
// settings of a split, and the loss of one loader batch on the model's device.
//
// A batch carries either frames [B, T_v, 3, S, S] (the ViT runs) or cached vision tokens
// [B, T_v, N+1, W_vit] (model.vision.cache_features: the frozen ViT ran once, train/feature_cache.h),
// plus codes [B, K, T_m] with their lengths.
#ifndef GVM_TRAIN_BATCH_H
#define GVM_TRAIN_BATCH_H

#include <stdbool.h>

#include "data/loader.h"
#include "nn/gvmgen.h"
#include "train/config.h"

#ifdef __cplusplus
extern "C" {
#endif

// The loader settings of `split` for this config and model. training: shuffled, full batches only
// (drop_last); otherwise in index order with a padded last batch (each clip once: an evaluation pass).
// feature_source: non-NULL = read cached vision tokens made by that source instead of frames.
gvm_loader_config gvm_train_loader_config(const gvm_config *cfg, const gvm_nn_gvmgen *m, const char *split,
                                          bool training, const char *feature_source);

// Device copies of a batch's tensors, reused from step to step (all NULL on the CPU, where the loader's
// tensors are used directly).
typedef struct gvm_train_device_batch {
    gvm_tensor *frames, *features, *mask, *codes;
} gvm_train_device_batch;

void gvm_train_device_batch_free(gvm_train_device_batch *d);

// The model's loss on one loader batch (nn/gvmgen.h: per-codebook cross-entropy on the valid steps,
// averaged over K), on the context's device. cond_dropout acts only when ctx->training.
gvm_tensor *gvm_train_batch_loss(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_train_device_batch *d,
                                 const gvm_loader_batch *b, float cond_dropout);

#ifdef __cplusplus
}
#endif

#endif
