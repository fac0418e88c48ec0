// backward_scope.c: the gradient memory scope of one layer (see backward_scope.h).
#include "nn/backward_scope.h"

#include "core/device.h"

struct gvm_nn_backward_scope {
    gvm_tensor *x, *cond;  // from outside the layer: their gradients must outlive the scope
    gvm_tensor *inner_x;   // the layer's view of x (NULL when x needs no gradient)
    gvm_arena_mark host, data;
    bool marked;
};

// A view of t [..] (same dtype, device, shape and data; owns nothing).
static gvm_tensor *view(gvm_ctx *ctx, const gvm_tensor *t) {
    gvm_tensor *v = gvm_arena_calloc(&ctx->arena, sizeof *v);
    v->dtype = t->dtype;
    v->device = t->device;
    v->ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) v->shape[i] = t->shape[i];
    v->numel = t->numel;
    v->data = t->data;
    return v;
}

static void end_backward(gvm_ctx *ctx, gvm_node *node) {
    gvm_nn_backward_scope *sc = *(gvm_nn_backward_scope **)node->saved;
    gvm_tensor *y = node->in[0], *out = node->out;
    if (!y->grad)
        y->grad = view(ctx, out->grad);  // the gradient passes through unchanged
    else
        gvm_device_add_f32(y->device, y->grad->data, out->grad->data, y->numel);
    // Everything allocated from here on is released by begin_backward: the outside gradients come first.
    if (gvm_needs_grad(sc->x)) gvm_grad_data(ctx, sc->x);
    if (gvm_needs_grad(sc->cond)) gvm_grad_data(ctx, sc->cond);
    if (sc->inner_x && !sc->inner_x->grad) sc->inner_x->grad = view(ctx, sc->x->grad);
    sc->host = gvm_arena_save(&ctx->arena);
    sc->data = gvm_arena_save(gvm_ctx_data_arena(ctx));
    sc->marked = true;
}

static void begin_backward(gvm_ctx *ctx, gvm_node *node) {
    gvm_nn_backward_scope *sc = *(gvm_nn_backward_scope **)node->saved;
    gvm_tensor *x = node->in[0], *inner = node->out;
    if (!gvm_needs_grad(x)) return;
    if (!sc->marked) {  // the output's node never ran (the output reached no loss): inner has its own buffer
        gvm_device_add_f32(x->device, gvm_grad_data(ctx, x), inner->grad->data, x->numel);
        return;
    }
    if (inner->grad->data != x->grad->data)  // inner had a gradient of its own before end_backward ran
        gvm_device_add_f32(x->device, x->grad->data, inner->grad->data, x->numel);
    gvm_arena *data = gvm_ctx_data_arena(ctx);
    gvm_arena_rewind(data, sc->data);
    if (data != &ctx->arena) gvm_arena_rewind(&ctx->arena, sc->host);
    sc->marked = false;
}

gvm_tensor *gvm_nn_backward_scope_begin(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *cond, gvm_nn_backward_scope **scope) {
    *scope = NULL;
    if (!gvm_grad_enabled(ctx)) return x;
    gvm_nn_backward_scope *sc = gvm_arena_calloc(&ctx->arena, sizeof *sc);
    sc->x = x;
    sc->cond = cond;
    *scope = sc;
    gvm_tensor *inner = view(ctx, x);
    gvm_node *node = gvm_record(ctx, "backward_scope", begin_backward, inner, &x, 1, sizeof sc);
    if (!node) return x;  // x needs no gradient: the scope still marks, and never rewinds (harmless)
    *(gvm_nn_backward_scope **)node->saved = sc;
    sc->inner_x = inner;
    return inner;
}

gvm_tensor *gvm_nn_backward_scope_end(gvm_ctx *ctx, gvm_tensor *y, gvm_nn_backward_scope *sc) {
    if (!sc) return y;
    gvm_tensor *out = view(ctx, y);
    gvm_node *node = gvm_record(ctx, "backward_scope", end_backward, out, &y, 1, sizeof sc);
    if (!node) return y;
    *(gvm_nn_backward_scope **)node->saved = sc;
    return out;
}
