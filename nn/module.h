// module.h: the conventions every model module in nn/ follows, and the helpers they share.
//
// A module is a plain struct of parameter pointers plus its sizes. Its life has three phases, matching
// the parameter store's (core/param_store.h):
//   1. gvm_nn_<mod>_init(m, ps, prefix, cfg)    register parameters as "<prefix>.<name>" (data not usable)
//   2. gvm_param_store_finalize(ps)             one block for all parameters; the pointers stay valid
//   3. gvm_nn_<mod>_reset_parameters(m, rng)    fill the values: weights N(0, init_std), biases 0,
//                                               LayerNorm weight 1 / bias 0 (what Hugging Face's
//                                               _init_weights does for MusicGen, CLIP and BLIP-2)
//      or gvm_param_store_load(ps, file)        pretrained values by name
// then gvm_nn_<mod>_forward(ctx, m, inputs...) any number of times (ops record on the context's tape).
//
// Names: a module registers under the names of its Hugging Face twin (MusicgenForCausalLM, CLIP,
// Blip2QFormer), so a transformers checkpoint maps onto the store by name, e.g. a MusicGen decoder
// layer at prefix "model.decoder.layers.3" owns "model.decoder.layers.3.self_attn.q_proj.weight".
// An empty prefix ("" or NULL) registers bare names ("weight").
//
// Modules own no memory: parameters live in the store, activations in the context's arena. Only a KV
// cache (nn/attention.h) holds heap memory, freed by its own free function.
#ifndef GVM_NN_MODULE_H
#define GVM_NN_MODULE_H

#include <stdint.h>

#include "core/gvm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_NN_NAME_MAX 256
#define GVM_NN_DEFAULT_INIT_STD 0.02f  // HF initializer_range / initializer_factor of MusicGen, CLIP, BLIP-2

// "<prefix>.<name>" (or "<name>" for an empty prefix) into buf; aborts when it does not fit.
const char *gvm_nn_name(char *buf, const char *prefix, const char *name);
// Register parameter "<prefix>.<name>" of the given shape in `ps` (before finalize).
gvm_tensor *gvm_nn_param(gvm_param_store *ps, const char *prefix, const char *name, int ndim,
                         const int64_t *shape);

// Initialisers (after finalize; parameters on any device). NULL tensors are skipped, so optional biases
// need no test at the call site.
void gvm_nn_init_normal(gvm_tensor *t, gvm_rng *rng, float std);  // N(0, std^2)
void gvm_nn_init_const(gvm_tensor *t, float value);

// init_std of a config: 0 means the default.
static inline float gvm_nn_std(float init_std) { return init_std > 0 ? init_std : GVM_NN_DEFAULT_INIT_STD; }

#ifdef __cplusplus
}
#endif

#endif
