// ops/index.c: ops that pick elements by integer indices: index_select, gather (PyTorch's semantics) and
// embedding; forward and backward (scatter-adds: repeated indices accumulate). Kernels in core/cpu/shape.c and
// core/cuda/shape.cu.
// An index outside its axis is a programming error: the kernel aborts naming the index and the size.
#include <string.h>

#include "core/cpu/shape.h"
#ifdef GVM_HAVE_CUDA
#include "core/cuda/shape.h"
#endif
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"

typedef void (*index_select_fwd_fn)(const void *src, void *dst, size_t esize, const void *idx, bool idx64,
                                    int64_t outer, int64_t n, int64_t m, int64_t inner);
typedef void (*index_select_bwd_fn)(const float *dy, float *dx, const void *idx, bool idx64, int64_t outer, int64_t n,
                                    int64_t m, int64_t inner);
typedef void (*gather_fwd_fn)(const void *src, void *dst, size_t esize, const void *idx, bool idx64, int ndim,
                              const int64_t *src_shape, const int64_t *idx_shape, int axis);
typedef void (*gather_bwd_fn)(const float *dy, float *dx, const void *idx, bool idx64, int ndim,
                              const int64_t *src_shape, const int64_t *idx_shape, int axis);

static const index_select_fwd_fn k_index_select_fwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_index_select_fwd, GVM_CUDA_KERNEL(gvm_cuda_index_select_fwd)};
static const index_select_bwd_fn k_index_select_bwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_index_select_bwd, GVM_CUDA_KERNEL(gvm_cuda_index_select_bwd)};
static const gather_fwd_fn k_gather_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_gather_fwd,
                                                                 GVM_CUDA_KERNEL(gvm_cuda_gather_fwd)};
static const gather_bwd_fn k_gather_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_gather_bwd,
                                                                 GVM_CUDA_KERNEL(gvm_cuda_gather_bwd)};

static bool check_index_dtype(const gvm_tensor *idx, const char *op) {
    GVM_CHECK(idx->dtype == GVM_I32 || idx->dtype == GVM_I64, "%s: indices must be i32 or i64, got %s", op,
              gvm_dtype_name(idx->dtype));
    return idx->dtype == GVM_I64;
}

// ---- index_select / embedding ---------------------------------------------------------------------------------
// Both fold the source to [outer, n, inner] and pick m rows of the middle axis; embedding is outer = 1.

typedef struct {
    int64_t outer, n, m, inner;
} select_saved;

static void index_select_backward(gvm_ctx *ctx, gvm_node *node) {
    const select_saved *s = node->saved;
    gvm_tensor *a = node->in[0], *idx = node->in[1];
    if (!gvm_needs_grad(a)) return;
    GVM_DISPATCH(k_index_select_bwd, a->device, node->op)(node->out->grad->data, gvm_grad_data(ctx, a), idx->data,
                                                           idx->dtype == GVM_I64, s->outer, s->n, s->m, s->inner);
}

static gvm_tensor *select_rows(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *idx, const char *op, select_saved s, int ndim,
                               const int64_t *shape) {
    bool idx64 = check_index_dtype(idx, op);
    gvm_tensor *out = gvm_tensor_empty(ctx, a->dtype, ndim, shape);
    GVM_DISPATCH(k_index_select_fwd, a->device, op)(a->data, out->data, gvm_dtype_size(a->dtype), idx->data, idx64,
                                                     s.outer, s.n, s.m, s.inner);
    gvm_tensor *inputs[2] = {a, idx};
    gvm_node *node = gvm_record(ctx, op, index_select_backward, out, inputs, 2, sizeof(select_saved));
    if (node) *(select_saved *)node->saved = s;
    return out;
}

gvm_tensor *gvm_index_select(gvm_ctx *ctx, gvm_tensor *a, int axis, gvm_tensor *idx) {
    GVM_CHECK(axis >= -a->ndim && axis < a->ndim, "index_select: axis %d out of range for a rank-%d tensor", axis,
              a->ndim);
    GVM_CHECK(idx->ndim == 1, "index_select: indices must be 1-D, got rank %d", idx->ndim);
    int ax = gvm_tensor_axis(a, axis);
    int64_t shape[GVM_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[ax] = idx->numel;  // a [..., n, ...] -> [..., m, ...]
    select_saved s = {gvm_shape_numel(ax, a->shape), a->shape[ax], idx->numel,
                      gvm_shape_numel(a->ndim - ax - 1, a->shape + ax + 1)};
    return select_rows(ctx, a, idx, "index_select", s, a->ndim, shape);
}

gvm_tensor *gvm_embedding(gvm_ctx *ctx, gvm_tensor *weight, gvm_tensor *idx) {
    GVM_CHECK(weight->ndim == 2, "embedding: weight must be [V, D], got rank %d", weight->ndim);
    GVM_CHECK(idx->ndim < GVM_MAX_DIMS, "embedding: indices of rank %d leave no room for D", idx->ndim);
    int64_t shape[GVM_MAX_DIMS];
    memcpy(shape, idx->shape, (size_t)idx->ndim * sizeof(int64_t));
    shape[idx->ndim] = weight->shape[1];  // idx [...] -> [..., D]
    select_saved s = {1, weight->shape[0], idx->numel, weight->shape[1]};
    return select_rows(ctx, weight, idx, "embedding", s, idx->ndim + 1, shape);
}

// ---- gather --------------------------------------------------------------------------------------------------------

typedef struct {
    int axis;
} gather_saved;

static void gather_backward(gvm_ctx *ctx, gvm_node *node) {
    const gather_saved *s = node->saved;
    gvm_tensor *a = node->in[0], *idx = node->in[1];
    if (!gvm_needs_grad(a)) return;
    GVM_DISPATCH(k_gather_bwd, a->device, "gather")(node->out->grad->data, gvm_grad_data(ctx, a), idx->data,
                                                     idx->dtype == GVM_I64, a->ndim, a->shape, idx->shape, s->axis);
}

gvm_tensor *gvm_gather(gvm_ctx *ctx, gvm_tensor *a, int axis, gvm_tensor *idx) {
    GVM_CHECK(a->ndim >= 1, "gather: the source needs at least one dim");
    GVM_CHECK(axis >= -a->ndim && axis < a->ndim, "gather: axis %d out of range for a rank-%d tensor", axis, a->ndim);
    int ax = gvm_tensor_axis(a, axis);
    bool idx64 = check_index_dtype(idx, "gather");
    char as[96], is[96];
    bool ok = idx->ndim == a->ndim;
    for (int d = 0; ok && d < a->ndim; d++) ok = d == ax || idx->shape[d] <= a->shape[d];
    GVM_CHECK(ok, "gather: indices %s must have the rank of the source %s and no larger dims (but axis %d)",
              gvm_shape_str(idx->ndim, idx->shape, is, sizeof is), gvm_shape_str(a->ndim, a->shape, as, sizeof as), ax);
    gvm_tensor *out = gvm_tensor_empty(ctx, a->dtype, idx->ndim, idx->shape);  // idx's shape
    GVM_DISPATCH(k_gather_fwd, a->device, "gather")(a->data, out->data, gvm_dtype_size(a->dtype), idx->data, idx64,
                                                     a->ndim, a->shape, idx->shape, ax);
    gvm_tensor *inputs[2] = {a, idx};
    gvm_node *node = gvm_record(ctx, "gather", gather_backward, out, inputs, 2, sizeof(gather_saved));
    if (node) ((gather_saved *)node->saved)->axis = ax;
    return out;
}
