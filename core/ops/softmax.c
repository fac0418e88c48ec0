// ops/softmax.c: softmax and log-softmax over any axis, forward and backward.
//
// The input is seen as [outer, n, inner] with the softmax over n, so any axis works without a permute;
// the kernels take a fast path when the axis is the last one (inner == 1). Backward needs only the
// output y (the node's out), so nothing else is saved.
#include "core/cpu/softmax.h"

#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/softmax.h"
#endif

typedef void (*softmax_fwd_fn)(const float *x, float *y, int64_t outer, int64_t n, int64_t inner);
typedef void (*softmax_bwd_fn)(const float *y, const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner);

static const softmax_fwd_fn k_softmax_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_softmax_fwd,
                                                               GVM_CUDA_KERNEL(gvm_cuda_softmax_fwd)};
static const softmax_bwd_fn k_softmax_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_softmax_bwd,
                                                               GVM_CUDA_KERNEL(gvm_cuda_softmax_bwd)};
static const softmax_fwd_fn k_log_softmax_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_log_softmax_fwd,
                                                                   GVM_CUDA_KERNEL(gvm_cuda_log_softmax_fwd)};
static const softmax_bwd_fn k_log_softmax_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_log_softmax_bwd,
                                                                   GVM_CUDA_KERNEL(gvm_cuda_log_softmax_bwd)};

typedef struct {
    int64_t outer, n, inner;
} softmax_saved;

static void softmax_backward(gvm_ctx *ctx, gvm_node *node) {
    const softmax_saved *s = node->saved;
    gvm_tensor *a = node->in[0];
    if (!gvm_needs_grad(a)) return;
    GVM_DISPATCH(k_softmax_bwd, a->device, "softmax")
    (node->out->data, node->out->grad->data, gvm_grad_data(ctx, a), s->outer, s->n, s->inner);
}

static void log_softmax_backward(gvm_ctx *ctx, gvm_node *node) {
    const softmax_saved *s = node->saved;
    gvm_tensor *a = node->in[0];
    if (!gvm_needs_grad(a)) return;
    GVM_DISPATCH(k_log_softmax_bwd, a->device, "log_softmax")
    (node->out->data, node->out->grad->data, gvm_grad_data(ctx, a), s->outer, s->n, s->inner);
}

// a [..., n, ...] -> same shape, normalised over `axis`.
static gvm_tensor *softmax_op(gvm_ctx *ctx, gvm_tensor *a, int axis, bool log_out) {
    const char *name = log_out ? "log_softmax" : "softmax";
    GVM_CHECK(a->dtype == GVM_F32, "%s: f32 input required (got %s)", name, gvm_dtype_name(a->dtype));
    int ax = gvm_tensor_axis(a, axis);
    softmax_saved s = {gvm_shape_numel(ax, a->shape), a->shape[ax],
                       gvm_shape_numel(a->ndim - ax - 1, a->shape + ax + 1)};
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, a->ndim, a->shape);
    const softmax_fwd_fn *fwd = log_out ? k_log_softmax_fwd : k_softmax_fwd;
    if (a->numel > 0) {
        GVM_DISPATCH(fwd, a->device, name)(a->data, out->data, s.outer, s.n, s.inner);
    }
    gvm_tensor *inputs[1] = {a};
    gvm_node *node =
        gvm_record(ctx, name, log_out ? log_softmax_backward : softmax_backward, out, inputs, 1, sizeof(softmax_saved));
    if (node) *(softmax_saved *)node->saved = s;
    return out;
}

gvm_tensor *gvm_softmax(gvm_ctx *ctx, gvm_tensor *a, int axis) { return softmax_op(ctx, a, axis, false); }

gvm_tensor *gvm_log_softmax(gvm_ctx *ctx, gvm_tensor *a, int axis) { return softmax_op(ctx, a, axis, true); }
