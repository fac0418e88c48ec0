// ops/reduce.c: sum, mean and max over one axis or over everything, and masked mean pooling; forward and
// backward. Kernels are in core/cpu/reduce.c; every reduction is folded to x [outer, n, inner] -> [outer, inner].
#include <string.h>

#include "core/cpu/reduce.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/reduce.h"
#endif

typedef void (*sum_fwd_fn)(const float *x, float *y, int64_t outer, int64_t n, int64_t inner, double scale);
typedef void (*sum_bwd_fn)(const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner, float scale);
typedef void (*max_fwd_fn)(const float *x, float *y, int64_t *arg, int64_t outer, int64_t n, int64_t inner);
typedef void (*max_bwd_fn)(const float *dy, const int64_t *arg, float *dx, int64_t outer, int64_t n, int64_t inner);
typedef void (*mean_pool_fn)(const float *x, const uint8_t *mask, float *y, int64_t outer, int64_t n, int64_t inner);

static const sum_fwd_fn k_sum_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_sum_fwd,
                                                       GVM_CUDA_KERNEL(gvm_cuda_sum_fwd)};
static const sum_bwd_fn k_sum_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_sum_bwd,
                                                       GVM_CUDA_KERNEL(gvm_cuda_sum_bwd)};
static const max_fwd_fn k_max_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_max_fwd,
                                                       GVM_CUDA_KERNEL(gvm_cuda_max_fwd)};
static const max_bwd_fn k_max_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_max_bwd,
                                                       GVM_CUDA_KERNEL(gvm_cuda_max_bwd)};
static const mean_pool_fn k_mean_pool_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_mean_pool_fwd,
                                                               GVM_CUDA_KERNEL(gvm_cuda_mean_pool_fwd)};
static const mean_pool_fn k_mean_pool_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_mean_pool_bwd,
                                                               GVM_CUDA_KERNEL(gvm_cuda_mean_pool_bwd)};

// How a reduction of `a` over `axis` folds: x [outer, n, inner] -> out shape (ndim, shape).
typedef struct {
    int64_t outer, n, inner;
    int ndim;
    int64_t shape[GVM_MAX_DIMS];
} reduce_plan;

static reduce_plan plan_reduce(const gvm_tensor *a, int axis, bool keepdim, const char *op) {
    reduce_plan p;
    memset(&p, 0, sizeof p);
    // A 0-d tensor has one element; reducing it over "its" axis (0 or -1, as PyTorch allows) is the identity.
    if (axis == GVM_AXIS_ALL || (a->ndim == 0 && (axis == 0 || axis == -1))) {
        p.outer = 1;
        p.n = a->numel;
        p.inner = 1;
        p.ndim = keepdim ? a->ndim : 0;
        for (int i = 0; i < p.ndim; i++) p.shape[i] = 1;
        return p;
    }
    GVM_CHECK(axis >= -a->ndim && axis < a->ndim, "%s: axis %d out of range for a rank-%d tensor", op, axis, a->ndim);
    int ax = gvm_tensor_axis(a, axis);
    p.outer = gvm_shape_numel(ax, a->shape);
    p.n = a->shape[ax];
    p.inner = gvm_shape_numel(a->ndim - ax - 1, a->shape + ax + 1);
    for (int i = 0; i < a->ndim; i++) {
        if (i == ax && !keepdim) continue;
        p.shape[p.ndim++] = i == ax ? 1 : a->shape[i];
    }
    return p;
}

typedef struct {
    int64_t outer, n, inner;
    float scale;
    int64_t *arg;  // max: [outer, inner] index of the first maximum
} reduce_saved;

static void sum_backward(gvm_ctx *ctx, gvm_node *node) {
    const reduce_saved *s = node->saved;
    gvm_tensor *a = node->in[0];
    if (!gvm_needs_grad(a)) return;
    GVM_DISPATCH(k_sum_bwd, a->device, "sum")(node->out->grad->data, gvm_grad_data(ctx, a), s->outer, s->n, s->inner,
                                               s->scale);
}

static gvm_tensor *sum_or_mean(gvm_ctx *ctx, gvm_tensor *a, int axis, bool keepdim, bool mean, const char *op) {
    GVM_CHECK(a->dtype == GVM_F32, "%s: f32 input required, got %s", op, gvm_dtype_name(a->dtype));
    reduce_plan p = plan_reduce(a, axis, keepdim, op);
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, p.ndim, p.shape);  // [outer, inner] in a's dims
    // Mean over an empty axis is 0/0 = NaN, as in PyTorch.
    double scale = mean ? 1.0 / (double)p.n : 1.0;
    GVM_DISPATCH(k_sum_fwd, a->device, op)(a->data, out->data, p.outer, p.n, p.inner, scale);
    gvm_node *node = gvm_record(ctx, op, sum_backward, out, &a, 1, sizeof(reduce_saved));
    if (node) *(reduce_saved *)node->saved = (reduce_saved){p.outer, p.n, p.inner, (float)scale, NULL};
    return out;
}

gvm_tensor *gvm_sum(gvm_ctx *ctx, gvm_tensor *a, int axis, bool keepdim) {
    return sum_or_mean(ctx, a, axis, keepdim, false, "sum");
}

gvm_tensor *gvm_mean(gvm_ctx *ctx, gvm_tensor *a, int axis, bool keepdim) {
    return sum_or_mean(ctx, a, axis, keepdim, true, "mean");
}

// ---- max -----------------------------------------------------------------------------------------------------

static void max_backward(gvm_ctx *ctx, gvm_node *node) {
    const reduce_saved *s = node->saved;
    gvm_tensor *a = node->in[0];
    if (!gvm_needs_grad(a)) return;
    GVM_DISPATCH(k_max_bwd, a->device, "max")(node->out->grad->data, s->arg, gvm_grad_data(ctx, a), s->outer, s->n,
                                               s->inner);
}

gvm_tensor *gvm_max(gvm_ctx *ctx, gvm_tensor *a, int axis, bool keepdim) {
    GVM_CHECK(a->dtype == GVM_F32, "max: f32 input required, got %s", gvm_dtype_name(a->dtype));
    reduce_plan p = plan_reduce(a, axis, keepdim, "max");
    GVM_CHECK(p.n > 0, "max: reducing over an empty axis (size 0) has no maximum");
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, p.ndim, p.shape);
    // The arg indices [outer, inner] are needed only by the backward pass.
    bool record = gvm_should_record(ctx, &a, 1);
    int64_t *arg = record ? gvm_arena_alloc(gvm_ctx_data_arena(ctx), (size_t)(p.outer * p.inner) * sizeof(int64_t))
                          : NULL;
    GVM_DISPATCH(k_max_fwd, a->device, "max")(a->data, out->data, arg, p.outer, p.n, p.inner);
    gvm_node *node = gvm_record(ctx, "max", max_backward, out, &a, 1, sizeof(reduce_saved));
    if (node) *(reduce_saved *)node->saved = (reduce_saved){p.outer, p.n, p.inner, 1.0f, arg};
    return out;
}

// ---- masked mean pooling -------------------------------------------------------------------------------------

typedef struct {
    int64_t outer, n, inner;
} pool_saved;

static void mean_pool_backward(gvm_ctx *ctx, gvm_node *node) {
    const pool_saved *s = node->saved;
    gvm_tensor *x = node->in[0], *mask = node->in[1];
    if (!gvm_needs_grad(x)) return;
    GVM_DISPATCH(k_mean_pool_bwd, x->device, "mean_pool")(node->out->grad->data, mask ? mask->data : NULL,
                                                           gvm_grad_data(ctx, x), s->outer, s->n, s->inner);
}

gvm_tensor *gvm_mean_pool(gvm_ctx *ctx, gvm_tensor *x, int axis, gvm_tensor *mask) {
    GVM_CHECK(x->dtype == GVM_F32, "mean_pool: f32 input required, got %s", gvm_dtype_name(x->dtype));
    GVM_CHECK(axis >= -x->ndim && axis < x->ndim, "mean_pool: axis %d out of range for a rank-%d tensor", axis,
              x->ndim);
    int ax = gvm_tensor_axis(x, axis);
    if (mask) {
        // mask has x's leading dims up to and including the axis: x [B, T, D], axis 1 -> mask [B, T].
        char xs[96], ms[96];
        bool ok = mask->ndim == ax + 1;
        for (int i = 0; ok && i <= ax; i++) ok = mask->shape[i] == x->shape[i];
        GVM_CHECK(ok, "mean_pool: mask %s must have x %s's dims 0..%d",
                  gvm_shape_str(mask->ndim, mask->shape, ms, sizeof ms), gvm_shape_str(x->ndim, x->shape, xs, sizeof xs),
                  ax);
        GVM_CHECK(mask->dtype == GVM_BOOL || mask->dtype == GVM_U8, "mean_pool: mask must be bool or u8, got %s",
                  gvm_dtype_name(mask->dtype));
        GVM_CHECK(mask->device == x->device, "mean_pool: x and mask on different devices");
    }
    reduce_plan p = plan_reduce(x, ax, false, "mean_pool");
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, p.ndim, p.shape);  // x's shape without the axis
    GVM_DISPATCH(k_mean_pool_fwd, x->device, "mean_pool")(x->data, mask ? mask->data : NULL, out->data, p.outer, p.n,
                                                           p.inner);
    gvm_tensor *inputs[2] = {x, mask};
    gvm_node *node = gvm_record(ctx, "mean_pool", mean_pool_backward, out, inputs, 2, sizeof(pool_saved));
    if (node) *(pool_saved *)node->saved = (pool_saved){p.outer, p.n, p.inner};
    return out;
}
