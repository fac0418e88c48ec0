// autograd.c: the tape and the reverse walk (see autograd.h).
#include "core/autograd.h"

#include <stdlib.h>
#include <string.h>

#include "core/device.h"
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
    // Inputs on another device than the context would hand host pointers to device kernels (or back).
    for (int i = 0; i < n_inputs; i++)
        GVM_CHECK(!inputs[i] || inputs[i]->device == ctx->device, "op %s: input %d is on %s but the context is on %s",
                  op, i, gvm_device_name(inputs[i]->device), gvm_device_name(ctx->device));
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
        t->grad = heap_leaf ? gvm_tensor_new_on(t->device, GVM_F32, t->ndim, t->shape)
                            : gvm_tensor_zeros(ctx, GVM_F32, t->ndim, t->shape);
    }
    GVM_CHECK(t->grad->dtype == GVM_F32 && t->grad->device == t->device, "gradient of %s is not f32 on its device",
              t->name ? t->name : "a tensor");
    return t->grad->data;
}

void gvm_backward_with_grad(gvm_ctx *ctx, gvm_tensor *out, const float *seed_grad) {
    GVM_CHECK(out->requires_grad, "backward from a tensor that does not require grad");
    // A fresh arena gradient is written directly (no zero fill then add): for a large output the seed
    // is a measurable part of a cheap op's backward.
    bool fresh = !out->grad && !(out->grad_fn == NULL && (out->flags & GVM_TENSOR_HEAP_STRUCT));
    if (fresh) out->grad = gvm_tensor_empty(ctx, GVM_F32, out->ndim, out->shape);
    float *g = gvm_grad_data(ctx, out);
    int64_t n = out->numel;
    gvm_device dev = out->device;
    if (fresh && seed_grad) {
        gvm_device_copy(g, dev, seed_grad, dev, (size_t)n * sizeof(float));
    } else if (fresh) {
        gvm_device_fill_f32(dev, g, n, 1.0f);
    } else if (seed_grad) {
        gvm_device_add_f32(dev, g, seed_grad, n);
    } else {
        // Rare (backward from a tensor that already has a gradient): add ones through a filled buffer.
        gvm_arena_mark mark = gvm_arena_save(gvm_ctx_data_arena(ctx));
        float *ones = gvm_arena_alloc(gvm_ctx_data_arena(ctx), (size_t)n * sizeof(float));
        gvm_device_fill_f32(dev, ones, n, 1.0f);
        gvm_device_add_f32(dev, g, ones, n);
        gvm_arena_rewind(gvm_ctx_data_arena(ctx), mark);
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
    if (t && t->grad) gvm_device_memset0(t->grad->device, t->grad->data, gvm_tensor_nbytes(t->grad));
}
