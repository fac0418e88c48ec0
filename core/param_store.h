// param_store.h: all parameters of a model in one contiguous block per group.
//
// Parameters, their gradients and each optimiser state (AdamW's m and v, EMA weights) live in separate
// single blocks with the same layout, so an all-reduce of the gradients, an optimiser step or a
// checkpoint write is one loop over one buffer. Parameter tensors are views into the block.
//
//   gvm_param_store ps;  gvm_param_store_init(&ps);
//   gvm_tensor *w = gvm_param_store_add(&ps, "lm.layers.0.attn.q.weight", 2, (int64_t[]){1024, 1024});
//   ...                                 // register everything (data is not yet usable)
//   gvm_param_store_finalize(&ps);      // one allocation for params, one for grads; views set
#ifndef GVM_PARAM_STORE_H
#define GVM_PARAM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_PARAM_MAX_STATES 4

typedef struct gvm_param_store {
    int n_params;
    int cap;
    gvm_tensor **params;   // heap structs; data/grad point into the blocks after finalize
    size_t *offsets;       // element offset of each parameter in the blocks (64-byte aligned)
    size_t total;          // elements in each block, padding included
    float *data;           // [total] parameter values (f32 master weights)
    float *grad;           // [total] gradients
    float *state[GVM_PARAM_MAX_STATES];  // optimiser/EMA blocks, made on demand
    gvm_device device;     // where the blocks live
    bool finalized;
} gvm_param_store;

void gvm_param_store_init(gvm_param_store *ps);
void gvm_param_store_free(gvm_param_store *ps);
// Register a parameter (requires_grad = true). The name is copied.
gvm_tensor *gvm_param_store_add(gvm_param_store *ps, const char *name, int ndim, const int64_t *shape);
// Allocate the parameter and gradient blocks (zeroed) and point every parameter into them.
void gvm_param_store_finalize(gvm_param_store *ps);
// The same with the blocks on `device` (initialised: core/device.h). Save and load go through the host.
void gvm_param_store_finalize_on(gvm_param_store *ps, gvm_device device);
// Block `slot` (0..GVM_PARAM_MAX_STATES-1) of optimiser state, zero-filled the first time.
float *gvm_param_store_state(gvm_param_store *ps, int slot);
void gvm_param_store_zero_grad(gvm_param_store *ps);
gvm_tensor *gvm_param_store_find(const gvm_param_store *ps, const char *name);
// Number of parameter values (no padding).
int64_t gvm_param_store_numel(const gvm_param_store *ps);

// Save all parameters to a safetensors file (f32; written atomically). `metadata` is a NULL-terminated
// list of key, value string pairs or NULL.
gvm_status gvm_param_store_save(const gvm_param_store *ps, const char *path, const char *const *metadata);
// Load parameters by name from a safetensors file (f32/f16/bf16 converted). Every parameter must be
// present with its shape; tensors in the file that the store lacks are an error unless allow_extra.
gvm_status gvm_param_store_load(gvm_param_store *ps, const char *path, bool allow_extra);

#ifdef __cplusplus
}
#endif

#endif
