// batch.c: the loader settings of a split and the loss of one batch (train/batch.h).
#include "train/batch.h"

#include <math.h>

#include "core/context.h"
#include "core/device.h"

gvm_loader_config gvm_train_loader_config(const gvm_config *c, const gvm_nn_gvmgen *m, const char *split,
                                          bool training, const char *feature_source) {
    gvm_loader_config lc = gvm_loader_config_default();
    lc.folder = c->data.dir;
    lc.split = split;
    lc.batch_size = c->data.batch_size;
    lc.parts = (feature_source ? GVM_CLIP_FEATURES : GVM_CLIP_FRAMES) | GVM_CLIP_CODES;
    lc.frames = (int64_t)llround(c->data.clip_seconds * c->data.fps);
    lc.feature_tokens = m->vision.n_tokens;
    lc.feature_dim = m->vision.width;
    lc.feature_source = feature_source;
    lc.code_steps = (int64_t)llround(c->data.clip_seconds * c->codec.frame_rate);
    lc.codebooks = c->model.lm.codebooks;
    lc.code_pad = 0;  // padded steps are masked by code_len; any valid code will do
    lc.codec = c->codec.name[0] ? c->codec.name : NULL;
    lc.seed = (uint64_t)c->train.seed;
    lc.shuffle = training;
    lc.drop_last = training;  // training steps see full batches; an evaluation sees every clip once
    lc.prefetch = c->data.prefetch;
    lc.workers = c->data.workers;
    lc.pinned = c->train.device != GVM_DEVICE_CPU;
    return lc;
}

void gvm_train_device_batch_free(gvm_train_device_batch *d) {
    gvm_tensor_free(d->frames);
    gvm_tensor_free(d->features);
    gvm_tensor_free(d->mask);
    gvm_tensor_free(d->codes);
    *d = (gvm_train_device_batch){0};
}

// The host tensor itself on the CPU; else its copy in a device tensor kept in *slot across steps.
static gvm_tensor *on_device(gvm_device dev, gvm_tensor **slot, gvm_tensor *host) {
    if (!host || dev == GVM_DEVICE_CPU) return host;
    if (!*slot) *slot = gvm_tensor_new_on(dev, host->dtype, host->ndim, host->shape);
    gvm_tensor_copy(*slot, host);
    return *slot;
}

gvm_tensor *gvm_train_batch_loss(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_train_device_batch *d,
                                 const gvm_loader_batch *b, float cond_dropout) {
    const gvm_device dev = ctx->device;
    gvm_tensor *mask = on_device(dev, &d->mask, b->frame_mask);  // [B, T_v]
    gvm_tensor *codes = on_device(dev, &d->codes, b->codes);     // [B, K, T_m]
    gvm_tensor *cond;                                            // [B, T_v, D]
    if (b->features)
        cond = gvm_nn_gvmgen_condition_from_tokens(ctx, m, on_device(dev, &d->features, b->features));
    else
        cond = gvm_nn_gvmgen_forward_condition(ctx, m, on_device(dev, &d->frames, b->frames), mask);
    return gvm_nn_gvmgen_loss_from_condition(ctx, m, cond, mask, codes, b->code_len, cond_dropout, NULL);
}
