// init_weights.h: starting a model from pretrained weights: model.vision.init (a CLIP ViT) and model.lm.init
// (a MusicGen LM, with its enc_to_dec_proj) in gvm train, from the files `gvm import` writes (docs/pretrained.md).
//
// A weights file holds some of the model's parameters under the model's own names. Loading one:
//  * every tensor of the file must be a parameter of the model with the same shape, except the ones listed as
//    optional (loaded when their shape matches, skipped with a note otherwise: MusicGen's enc_to_dec_proj is
//    768 -> width, GVMGen's takes model.cond_dim);
//  * every parameter whose name starts with one of the required prefixes must be in the file (a ViT file must
//    cover all of vision_model.*);
//  * errors name the file and the tensor, and leave the store unchanged (all checks before any copy).
#ifndef GVM_TRAIN_INIT_WEIGHTS_H
#define GVM_TRAIN_INIT_WEIGHTS_H

#include <stdio.h>

#include "core/param_store.h"

#ifdef __cplusplus
extern "C" {
#endif

// required: NULL-terminated name prefixes the file must cover; optional: NULL-terminated names that may be
// skipped on a shape mismatch. what: a word for messages ("model.vision.init"). Notes go to `log` (or nowhere).
// *loaded receives the number of tensors copied.
gvm_status gvm_init_weights_load(gvm_param_store *ps, const char *path, const char *what,
                                 const char *const *required, const char *const *optional, FILE *log, int *loaded);

#ifdef __cplusplus
}
#endif

#endif
