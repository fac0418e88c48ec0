// ops/unary.c: scalar arithmetic and unary math (add/mul/pow by a scalar, neg, exp, log, sqrt, abs).
//
// Every op here is a [...] -> [...] map with one CPU kernel pair (core/cpu/elementwise.c) selected by
// gvm_unary_op; the backward reads the input and the saved output, so nothing extra is stored.
#include "core/cpu/elementwise.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/ops/unary_internal.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/elementwise.h"
#endif

typedef void (*unary_fwd_fn)(gvm_unary_op op, const float *x, float *y, int64_t n, float param);
typedef void (*unary_bwd_fn)(gvm_unary_op op, const float *x, const float *y, const float *gy, float *gx, int64_t n,
                             float param);
static const unary_fwd_fn k_unary_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_unary_fwd,
                                                            GVM_CUDA_KERNEL(gvm_cuda_unary_fwd)};
static const unary_bwd_fn k_unary_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_unary_bwd,
                                                            GVM_CUDA_KERNEL(gvm_cuda_unary_bwd)};

typedef struct {
    gvm_unary_op op;
    float param;
    const char *name;
} unary_saved;

static void unary_backward(gvm_ctx *ctx, gvm_node *node) {
    const unary_saved *s = node->saved;
    gvm_tensor *x = node->in[0];
    if (!gvm_needs_grad(x)) return;
    GVM_DISPATCH(k_unary_bwd, x->device, s->name)
    (s->op, x->data, node->out->data, node->out->grad->data, gvm_grad_data(ctx, x), x->numel, s->param);
}

// a [...] -> out [...] (see unary_internal.h).
gvm_tensor *gvm_op_unary(gvm_ctx *ctx, gvm_tensor *a, gvm_unary_op op, float param, const char *name) {
    GVM_CHECK(a, "%s: NULL input", name);
    GVM_CHECK(a->dtype == GVM_F32, "%s: f32 input required (got %s)", name, gvm_dtype_name(a->dtype));
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, a->ndim, a->shape);
    GVM_DISPATCH(k_unary_fwd, a->device, name)(op, a->data, out->data, a->numel, param);
    gvm_node *node = gvm_record(ctx, name, unary_backward, out, &a, 1, sizeof(unary_saved));
    if (node) *(unary_saved *)node->saved = (unary_saved){op, param, name};
    return out;
}

gvm_tensor *gvm_add_scalar(gvm_ctx *ctx, gvm_tensor *a, float s) {
    return gvm_op_unary(ctx, a, GVM_UNARY_ADD_SCALAR, s, "add_scalar");
}
gvm_tensor *gvm_mul_scalar(gvm_ctx *ctx, gvm_tensor *a, float s) {
    return gvm_op_unary(ctx, a, GVM_UNARY_MUL_SCALAR, s, "mul_scalar");
}
gvm_tensor *gvm_pow_scalar(gvm_ctx *ctx, gvm_tensor *a, float p) {
    return gvm_op_unary(ctx, a, GVM_UNARY_POW, p, "pow_scalar");
}
gvm_tensor *gvm_neg(gvm_ctx *ctx, gvm_tensor *a) { return gvm_op_unary(ctx, a, GVM_UNARY_NEG, 0.0f, "neg"); }
gvm_tensor *gvm_exp(gvm_ctx *ctx, gvm_tensor *a) { return gvm_op_unary(ctx, a, GVM_UNARY_EXP, 0.0f, "exp"); }
gvm_tensor *gvm_log(gvm_ctx *ctx, gvm_tensor *a) { return gvm_op_unary(ctx, a, GVM_UNARY_LOG, 0.0f, "log"); }
gvm_tensor *gvm_sqrt(gvm_ctx *ctx, gvm_tensor *a) { return gvm_op_unary(ctx, a, GVM_UNARY_SQRT, 0.0f, "sqrt"); }
gvm_tensor *gvm_abs(gvm_ctx *ctx, gvm_tensor *a) { return gvm_op_unary(ctx, a, GVM_UNARY_ABS, 0.0f, "abs"); }
