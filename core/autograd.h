// autograd.h: reverse-mode automatic differentiation on a tape.
//
// Ops run eagerly. When grad is enabled and an input requires grad, the op records a node: its
// backward function, output, inputs and whatever it saved (in the arena). gvm_backward walks the tape
// in reverse; each backward function reads node->out->grad and ACCUMULATES (+=) into the grads of the
// inputs that require grad, using gvm_grad_data() to get (and zero-allocate on first use) those
// buffers. Accumulation is what makes a tensor used several times, and micro-batch gradient
// accumulation, come out right.
#ifndef GVM_AUTOGRAD_H
#define GVM_AUTOGRAD_H

#include <stddef.h>

#include "core/context.h"
#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GVM_NODE_MAX_INPUTS 6

typedef struct gvm_node gvm_node;
typedef void (*gvm_backward_fn)(gvm_ctx *ctx, gvm_node *node);

struct gvm_node {
    const char *op;                         // op name, for messages
    gvm_backward_fn backward;
    gvm_tensor *out;
    gvm_tensor *in[GVM_NODE_MAX_INPUTS];    // NULL entries allowed (optional inputs)
    int n_in;
    void *saved;                            // op-specific, arena-allocated, zeroed
};

// True when an op taking `inputs` must record (grad enabled and some input requires grad).
bool gvm_should_record(const gvm_ctx *ctx, gvm_tensor *const *inputs, int n_inputs);
// Record `out` as produced by `op` from `inputs` when gvm_should_record(); returns the node (with
// `saved_bytes` of zeroed storage at node->saved) or NULL when nothing was recorded.
gvm_node *gvm_record(gvm_ctx *ctx, const char *op, gvm_backward_fn backward, gvm_tensor *out,
                     gvm_tensor *const *inputs, int n_inputs, size_t saved_bytes);

// The f32 gradient buffer of `t` (same numel), zero-filled the first time. Leaves that live on the heap
// get a heap gradient (kept across gvm_ctx_reset, so it accumulates); others get an arena gradient.
float *gvm_grad_data(gvm_ctx *ctx, gvm_tensor *t);
// Does the backward pass need a gradient for this input? (non-NULL and requires_grad)
static inline bool gvm_needs_grad(const gvm_tensor *t) { return t && t->requires_grad; }

// Backpropagate from `loss` (a scalar or any tensor; its seed gradient is all ones), then drop the
// tape. Non-leaf gradients are arena memory and die with gvm_ctx_reset.
void gvm_backward(gvm_ctx *ctx, gvm_tensor *loss);
// Same with an explicit seed gradient (f32, same numel as `out`, in memory of out's device).
void gvm_backward_with_grad(gvm_ctx *ctx, gvm_tensor *out, const float *seed_grad);

// Set the gradient of a heap tensor to zero (no-op when it has none yet).
void gvm_zero_grad(gvm_tensor *t);

#ifdef __cplusplus
}
#endif

#endif
