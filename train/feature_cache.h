// feature_cache.h: caching the frozen ViT's output tokens in the dataset shards (model.vision.cache_features).
//
// GVMGen's reference recipe freezes the ViT, so its output for a clip never changes during training, yet
// it is the most expensive part of the forward (ViT-L/14@336: ~95 GFLOP per frame). With the cache, gvm
// train runs the ViT once per clip before the first step, stores its tokens [T_v, N+1, W_vit] as f16 in
// the clip's `features` slot (docs/dataset-format.md), and trains from them: only the Q-Former, the
// projection and the LM run per step.
//
// Staleness. Each cached entry carries a source string naming the ViT that made it: its sizes and a
// 64-bit FNV-1a hash of all its parameter values. A cache made by other weights (another seed, other
// imported weights, another size) is recomputed, never silently used; the loader refuses features whose
// source differs from the run's (data/loader.h).
//
// Precision. Tokens are rounded to f16 (relative error <= 2^-11); the model reads them back as f32. A run
// with the cache therefore differs from one without it in the last bits; two cached runs are identical.
//
// Writing. The shard is updated in place (gvm_shard_update_features: atomic per dataset, fsynced), in
// groups of clips that bound the memory held (~512 MiB of features); an interrupted fill is resumed by
// the next run, which recomputes only the clips still missing or stale.
#ifndef GVM_TRAIN_FEATURE_CACHE_H
#define GVM_TRAIN_FEATURE_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nn/gvmgen.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_FEATURE_SOURCE_MAX 160

// "gvm-vit img<S> patch<p> w<W> l<L> h<H> params:<16 hex digits>" into buf[GVM_FEATURE_SOURCE_MAX].
const char *gvm_feature_source(const gvm_nn_gvmgen *m, char *buf);

typedef struct gvm_feature_cache_stats {
    int64_t clips;       // clips looked at
    int64_t computed;    // clips whose features were (re)computed
    int64_t frames;      // frames run through the ViT
    double seconds;      // wall time of the fill
} gvm_feature_cache_stats;

// Fill the cache of every clip in the shards "<dir>/<split>-*.h5" whose features are missing or from
// another source. Runs the ViT on ctx's device, frame_batch frames per forward (0: 8), without grad.
// Progress lines go to `log` (NULL: none). A split without shards is not an error (stats stay 0).
gvm_status gvm_feature_cache_fill(gvm_ctx *ctx, const gvm_nn_gvmgen *m, const char *dir, const char *split,
                                  const char *source, int frame_batch, FILE *log, gvm_feature_cache_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
