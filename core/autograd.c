// autograd.c: the tape and the reverse walk (see autograd.h).
#include "core/autograd.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

bool gvm_should_record(const gvm_ctx *ctx, gvm_tensor *const *inputs, int n_inputs) {
    if (!gvm_grad_enabled(ctx)) return false;
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && inputs[i]->requires_grad) return true;
    return false;
}

gvm_node *gvm_record(gvm_ctx *ctx, const char *op, gvm_backward_fn backward, gvm_tensor *out,
                     gvm_tensor *const *inputs, int n_inputs, size_t saved_bytes) {
    if (!gvm_should_record(ctx, inputs, n_inputs)) return NULL;
    GVM_CHECK(n_inputs <= GVM_NODE_MAX_INPUTS, "op %s has %d inputs (max %d)", op, n_inputs,
              GVM_NODE_MAX_INPUTS);
    gvm_node *node = gvm_arena_calloc(&ctx->arena, sizeof *node);
    node->op = op;
    node->backward = backward;
    node->out = out;
    node->n_in = n_inputs;
    for (int i = 0; i < n_inputs; i++) node->in[i] = inputs[i];
    if (saved_bytes) node->saved = gvm_arena_calloc(&ctx->arena, saved_bytes);
    out->requires_grad = true;
    out->grad_fn = node;
    if (ctx->tape_len == ctx->tape_cap) {
        ctx->tape_cap = ctx->tape_cap ? ctx->tape_cap * 2 : 256;
        ctx->tape = realloc(ctx->tape, (size_t)ctx->tape_cap * sizeof *ctx->tape);
        GVM_CHECK(ctx->tape, "out of memory growing the tape");
    }
    ctx->tape[ctx->tape_len++] = node;
    return node;
}

float *gvm_grad_data(gvm_ctx *ctx, gvm_tensor *t) {
    if (!t->grad) {
        bool heap_leaf = t->grad_fn == NULL && (t->flags & GVM_TENSOR_HEAP_STRUCT);
        t->grad = heap_leaf ? gvm_tensor_new(GVM_F32, t->ndim, t->shape)
                            : gvm_tensor_zeros(ctx, GVM_F32, t->ndim, t->shape);
    }
    return gvm_tensor_f32(t->grad);
}

void gvm_backward_with_grad(gvm_ctx *ctx, gvm_tensor *out, const float *seed_grad) {
    GVM_CHECK(out->requires_grad, "backward from a tensor that does not require grad");
    // A fresh arena gradient is written directly (no zero fill then add): for a large output the seed
    // is a measurable part of a cheap op's backward.
    bool fresh = !out->grad && !(out->grad_fn == NULL && (out->flags & GVM_TENSOR_HEAP_STRUCT));
    if (fresh) out->grad = gvm_tensor_empty(ctx, GVM_F32, out->ndim, out->shape);
    float *g = gvm_grad_data(ctx, out);
    int64_t n = out->numel;
    if (fresh) {
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (int64_t i = 0; i < n; i++) g[i] = seed_grad ? seed_grad[i] : 1.0f;
    } else {
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (int64_t i = 0; i < n; i++) g[i] += seed_grad ? seed_grad[i] : 1.0f;
    }
    // Backward functions run kernels directly and never record, but ops they might call must not
    // record either.
    gvm_no_grad_begin(ctx);
    for (int i = ctx->tape_len - 1; i >= 0; i--) {
        gvm_node *node = ctx->tape[i];
        if (node->out->grad) node->backward(ctx, node);
    }
    gvm_no_grad_end(ctx);
    ctx->tape_len = 0;
}

void gvm_backward(gvm_ctx *ctx, gvm_tensor *loss) { gvm_backward_with_grad(ctx, loss, NULL); }

void gvm_zero_grad(gvm_tensor *t) {
    if (t && t->grad) memset(t->grad->data, 0, gvm_tensor_nbytes(t->grad));
}
