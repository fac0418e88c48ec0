// backward_scope.h: bounds the memory of a layer's intermediate gradients during the backward pass.
//
// The activation arena frees nothing before gvm_ctx_reset, so every intermediate gradient made in backward
// stays allocated to the end of the step: over a stack of layers they add up to about the size of the
// activations again. A layer's intermediate gradients are dead once backward has left the layer, though.
// Wrapping a layer's forward in a scope releases them there:
//
//   gvm_nn_backward_scope *sc;
//   x = gvm_nn_backward_scope_begin(ctx, x, cond, &sc);  // x [..]: the layer's view of its input
//   y = ...layer ops on x (and cond)...;
//   return gvm_nn_backward_scope_end(ctx, y, sc);         // y [..]: the layer's output, as a view
//
// Two identity nodes do it. The one on the output runs first in backward: it makes the gradient buffers of
// what the layer reads from outside (x and `cond`, when they need gradients) and marks the arenas; the one
// on the input runs last and rewinds the arenas to the mark, so the next layer down reuses the memory. The
// layer sees x through a view whose gradient is x's own buffer, so nothing is copied out of the scope.
// Requirements: besides x and cond, the layer reads only parameters (heap gradients) and tensors that need
// no gradient; nothing outside the layer may read the gradient of a tensor made inside it after backward.
// Without a tape (no-grad, inference) both calls return their input and record nothing.
#ifndef GVM_NN_BACKWARD_SCOPE_H
#define GVM_NN_BACKWARD_SCOPE_H

#include "core/gvm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gvm_nn_backward_scope gvm_nn_backward_scope;

// x: the layer's input; cond: a second outside input or NULL. *scope: NULL when nothing records.
gvm_tensor *gvm_nn_backward_scope_begin(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *cond, gvm_nn_backward_scope **scope);
gvm_tensor *gvm_nn_backward_scope_end(gvm_ctx *ctx, gvm_tensor *y, gvm_nn_backward_scope *scope);

#ifdef __cplusplus
}
#endif

#endif
