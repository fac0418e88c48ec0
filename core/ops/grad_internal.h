// ops/grad_internal.h: gradient buffers that backward functions may take without a zero fill. Not public API.
//
// gvm_grad_data() (core/autograd.h) zero-fills an input's gradient the first time, and backward functions
// accumulate (+=) into it. Most intermediate tensors have a single consumer, so that zero fill, the
// accumulation pass and, for ops whose input gradient equals their output gradient (reshape, add),
// the whole buffer are wasted. These helpers skip them when it is safe:
//   * gvm_grad_take: hand the output's gradient buffer to an input as its gradient (no copy, no memory).
//     Safe because an output gradient is read only by its own node's backward, which is the caller, and
//     nothing writes it afterwards; the buffer then belongs to the input alone.
//   * gvm_grad_fresh: an uninitialised gradient buffer the caller overwrites (GEMM beta 0) instead of adding.
// Neither applies to heap leaves (parameters: their gradient lives in the store and accumulates across
// micro-batches) nor to a tensor that already has a gradient (it was reached by another path).
#ifndef GVM_OPS_GRAD_INTERNAL_H
#define GVM_OPS_GRAD_INTERNAL_H

#include <stdbool.h>

#include "core/arena.h"
#include "core/autograd.h"

static inline bool gvm_grad_is_new_arena(const gvm_tensor *t) {
    return t->grad == NULL && !(t->grad_fn == NULL && (t->flags & GVM_TENSOR_HEAP_STRUCT));
}

// Make out's gradient the gradient of `in` (same element count and order, f32 [in's shape]). Returns false
// (and does nothing) when `in` needs no gradient or cannot take one: then accumulate as usual.
static inline bool gvm_grad_take(gvm_ctx *ctx, gvm_tensor *in, const gvm_tensor *out) {
    if (!gvm_needs_grad(in) || !gvm_grad_is_new_arena(in) || !out->grad || in->numel != out->numel ||
        in->device != out->grad->device)
        return false;
    gvm_tensor *g = gvm_arena_calloc(&ctx->arena, sizeof *g);  // a view struct: owns nothing
    g->dtype = GVM_F32;
    g->device = in->device;
    g->ndim = in->ndim;
    for (int i = 0; i < in->ndim; i++) g->shape[i] = in->shape[i];
    g->numel = in->numel;
    g->data = out->grad->data;
    g->flags = 0;
    in->grad = g;
    return true;
}

// The gradient buffer of `in` (which must need one): *fresh = true when it was just made and is
// uninitialised (the caller must write every element), false when it holds values to accumulate onto.
static inline float *gvm_grad_fresh(gvm_ctx *ctx, gvm_tensor *in, bool *fresh) {
    *fresh = gvm_grad_is_new_arena(in);
    if (*fresh) in->grad = gvm_tensor_empty(ctx, GVM_F32, in->ndim, in->shape);
    return gvm_grad_data(ctx, in);
}

#endif
