// ops/shape.c: ops that change shape or layout but not values: reshape and slice views, permute/transpose,
// contiguous copies, concat, split and dtype casts; forward and backward. Kernels are in core/cpu/shape.c and
// core/cuda/shape.cu.
//
// Views (reshape; slice along axis 0) are arena structs whose data points into the base tensor's storage
// (flags 0: they own nothing). Their gradient is a separate f32 buffer of their own shape, added into the
// base's gradient by the view's backward; a reshape whose base has no gradient yet hands the base its buffer
// instead (ops/grad_internal.h).
#include <string.h>

#include "core/cpu/shape.h"
#ifdef GVM_HAVE_CUDA
#include "core/cuda/shape.h"
#endif
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/ops/grad_internal.h"

typedef void (*permute_fwd_fn)(const void *src, void *dst, size_t esize, int ndim, const int64_t *shape,
                               const int *perm);
typedef void (*permute_bwd_fn)(const float *dy, float *dx, int ndim, const int64_t *shape, const int *perm);
typedef void (*identity_bwd_fn)(const float *dy, float *dx, int64_t n);
typedef void (*copy_fn)(const void *src, void *dst, size_t nbytes);
typedef void (*window_fwd_fn)(const void *src, void *dst, size_t esize, int64_t outer, int64_t n, int64_t inner,
                              int64_t start, int64_t len);
typedef void (*window_bwd_fn)(const float *dy, float *dx, int64_t outer, int64_t n, int64_t inner, int64_t start,
                              int64_t len);
typedef void (*cast_fn)(const void *src, gvm_dtype src_dtype, void *dst, gvm_dtype dst_dtype, int64_t n);

static const permute_fwd_fn k_permute_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_permute_fwd,
                                                               GVM_CUDA_KERNEL(gvm_cuda_permute_fwd)};
static const permute_bwd_fn k_permute_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_permute_bwd,
                                                               GVM_CUDA_KERNEL(gvm_cuda_permute_bwd)};
static const identity_bwd_fn k_identity_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_reshape_bwd,
                                                                GVM_CUDA_KERNEL(gvm_cuda_reshape_bwd)};
static const copy_fn k_contiguous_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_contiguous_fwd,
                                                          GVM_CUDA_KERNEL(gvm_cuda_contiguous_fwd)};
static const window_fwd_fn k_slice_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_slice_fwd,
                                                             GVM_CUDA_KERNEL(gvm_cuda_slice_fwd)};
static const window_bwd_fn k_slice_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_slice_bwd,
                                                             GVM_CUDA_KERNEL(gvm_cuda_slice_bwd)};
static const window_fwd_fn k_concat_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_concat_fwd,
                                                              GVM_CUDA_KERNEL(gvm_cuda_concat_fwd)};
static const window_bwd_fn k_concat_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_concat_bwd,
                                                              GVM_CUDA_KERNEL(gvm_cuda_concat_bwd)};
static const cast_fn k_cast_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_cast_fwd,
                                                        GVM_CUDA_KERNEL(gvm_cuda_cast_fwd)};

// A view of `base`: same dtype and device, the given shape, data at `data` inside base's storage.
static gvm_tensor *view_of(gvm_ctx *ctx, const gvm_tensor *base, int ndim, const int64_t *shape, void *data) {
    gvm_tensor *v = gvm_arena_calloc(&ctx->arena, sizeof *v);  // the struct is host memory
    v->dtype = base->dtype;
    v->device = base->device;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) v->shape[i] = shape[i];
    v->numel = gvm_shape_numel(ndim, shape);
    v->data = data;
    v->flags = 0;
    return v;
}

// Backward of every op whose output holds the input's elements in the same order (reshape, contiguous, cast).
static void identity_backward(gvm_ctx *ctx, gvm_node *node) {
    gvm_tensor *a = node->in[0];
    if (!gvm_needs_grad(a)) return;
    if (a->dtype == GVM_F32 && gvm_grad_take(ctx, a, node->out)) return;  // the same values: share the buffer
    GVM_DISPATCH(k_identity_bwd, a->device, node->op)(node->out->grad->data, gvm_grad_data(ctx, a), a->numel);
}

// ---- reshape -----------------------------------------------------------------------------------------------------

gvm_tensor *gvm_reshape(gvm_ctx *ctx, gvm_tensor *a, int ndim, const int64_t *shape) {
    GVM_CHECK(ndim >= 0 && ndim <= GVM_MAX_DIMS, "reshape: rank %d outside 0..%d", ndim, GVM_MAX_DIMS);
    int64_t s[GVM_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (shape[i] == -1) {
            GVM_CHECK(infer < 0, "reshape: more than one -1 in the new shape");
            infer = i;
        } else {
            GVM_CHECK(shape[i] >= 0, "reshape: dimension %d is %lld", i, (long long)shape[i]);
            known *= shape[i];
        }
    }
    char as[96], ns[96];
    if (infer >= 0) {
        GVM_CHECK(known > 0 && a->numel % known == 0, "reshape: cannot infer the -1 of %s from %s",
                  gvm_shape_str(ndim, shape, ns, sizeof ns), gvm_shape_str(a->ndim, a->shape, as, sizeof as));
        s[infer] = a->numel / known;
        known *= s[infer];
    }
    GVM_CHECK(known == a->numel, "reshape: %s has %lld elements, new shape %s has %lld",
              gvm_shape_str(a->ndim, a->shape, as, sizeof as), (long long)a->numel,
              gvm_shape_str(ndim, s, ns, sizeof ns), (long long)known);
    gvm_tensor *out = view_of(ctx, a, ndim, s, a->data);
    gvm_record(ctx, "reshape", identity_backward, out, &a, 1, 0);
    return out;
}

// ---- permute / transpose ---------------------------------------------------------------------------------------

typedef struct {
    int perm[GVM_MAX_DIMS];
} permute_saved;

static void permute_backward(gvm_ctx *ctx, gvm_node *node) {
    const permute_saved *s = node->saved;
    gvm_tensor *a = node->in[0];
    if (!gvm_needs_grad(a)) return;
    GVM_DISPATCH(k_permute_bwd, a->device, "permute")(node->out->grad->data, gvm_grad_data(ctx, a), a->ndim, a->shape,
                                                       s->perm);
}

gvm_tensor *gvm_permute(gvm_ctx *ctx, gvm_tensor *a, const int *perm) {
    int64_t shape[GVM_MAX_DIMS];
    bool seen[GVM_MAX_DIMS] = {false};
    for (int i = 0; i < a->ndim; i++) {
        GVM_CHECK(perm[i] >= 0 && perm[i] < a->ndim && !seen[perm[i]],
                  "permute: perm[%d] = %d is not part of a permutation of 0..%d", i, perm[i], a->ndim - 1);
        seen[perm[i]] = true;
        shape[i] = a->shape[perm[i]];
    }
    gvm_tensor *out = gvm_tensor_empty(ctx, a->dtype, a->ndim, shape);  // out.shape[i] = a.shape[perm[i]]
    GVM_DISPATCH(k_permute_fwd, a->device, "permute")(a->data, out->data, gvm_dtype_size(a->dtype), a->ndim, a->shape,
                                                       perm);
    gvm_node *node = gvm_record(ctx, "permute", permute_backward, out, &a, 1, sizeof(permute_saved));
    if (node) memcpy(((permute_saved *)node->saved)->perm, perm, (size_t)a->ndim * sizeof(int));
    return out;
}

gvm_tensor *gvm_transpose(gvm_ctx *ctx, gvm_tensor *a, int dim0, int dim1) {
    int d0 = gvm_tensor_axis(a, dim0), d1 = gvm_tensor_axis(a, dim1);
    int perm[GVM_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) perm[i] = i;
    perm[d0] = d1;
    perm[d1] = d0;
    return gvm_permute(ctx, a, perm);
}

// ---- contiguous ----------------------------------------------------------------------------------------------------

gvm_tensor *gvm_contiguous(gvm_ctx *ctx, gvm_tensor *a) {
    gvm_tensor *out = gvm_tensor_empty_like(ctx, a);
    GVM_DISPATCH(k_contiguous_fwd, a->device, "contiguous")(a->data, out->data, gvm_tensor_nbytes(a));
    gvm_record(ctx, "contiguous", identity_backward, out, &a, 1, 0);
    return out;
}

// ---- slice / split -----------------------------------------------------------------------------------------------

// The window [start, start + len) of an axis, with the tensor folded to [outer, n, inner].
typedef struct {
    int64_t outer, n, inner, start, len;
} window_saved;

static void slice_backward(gvm_ctx *ctx, gvm_node *node) {
    const window_saved *s = node->saved;
    gvm_tensor *a = node->in[0];
    if (!gvm_needs_grad(a)) return;
    GVM_DISPATCH(k_slice_bwd, a->device, "slice")(node->out->grad->data, gvm_grad_data(ctx, a), s->outer, s->n,
                                                   s->inner, s->start, s->len);
}

gvm_tensor *gvm_slice(gvm_ctx *ctx, gvm_tensor *a, int axis, int64_t start, int64_t end) {
    GVM_CHECK(axis >= -a->ndim && axis < a->ndim, "slice: axis %d out of range for a rank-%d tensor", axis, a->ndim);
    int ax = gvm_tensor_axis(a, axis);
    int64_t n = a->shape[ax];
    // Negative bounds count from the end, as in Python; anything else outside the axis is a bug.
    int64_t s0 = start < 0 ? start + n : start, s1 = end < 0 ? end + n : end;
    GVM_CHECK(s0 >= 0 && s0 <= s1 && s1 <= n, "slice: [%lld:%lld] is not a window of an axis of size %lld",
              (long long)start, (long long)end, (long long)n);
    window_saved w = {gvm_shape_numel(ax, a->shape), n, gvm_shape_numel(a->ndim - ax - 1, a->shape + ax + 1), s0,
                      s1 - s0};
    int64_t shape[GVM_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[ax] = w.len;
    gvm_tensor *out;
    if (ax == 0) {
        // Rows [s0, s1) of the first axis are one contiguous run of the base's storage.
        out = view_of(ctx, a, a->ndim, shape, (char *)a->data + (size_t)(s0 * w.inner) * gvm_dtype_size(a->dtype));
    } else {
        out = gvm_tensor_empty(ctx, a->dtype, a->ndim, shape);
        GVM_DISPATCH(k_slice_fwd, a->device, "slice")(a->data, out->data, gvm_dtype_size(a->dtype), w.outer, w.n,
                                                       w.inner, w.start, w.len);
    }
    gvm_node *node = gvm_record(ctx, "slice", slice_backward, out, &a, 1, sizeof(window_saved));
    if (node) *(window_saved *)node->saved = w;
    return out;
}

void gvm_split(gvm_ctx *ctx, gvm_tensor *a, int axis, int n_parts, const int64_t *sizes, gvm_tensor **out) {
    GVM_CHECK(n_parts >= 1, "split: %d parts", n_parts);
    GVM_CHECK(axis >= -a->ndim && axis < a->ndim, "split: axis %d out of range for a rank-%d tensor", axis, a->ndim);
    int ax = gvm_tensor_axis(a, axis);
    int64_t total = 0;
    for (int k = 0; k < n_parts; k++) {
        GVM_CHECK(sizes[k] >= 0, "split: part %d has size %lld", k, (long long)sizes[k]);
        total += sizes[k];
    }
    GVM_CHECK(total == a->shape[ax], "split: sizes sum to %lld, axis %d has %lld", (long long)total, ax,
              (long long)a->shape[ax]);
    // Each part is its own slice with its own tape node, so parts left unused simply contribute no gradient.
    int64_t start = 0;
    for (int k = 0; k < n_parts; k++) {
        out[k] = gvm_slice(ctx, a, ax, start, start + sizes[k]);
        start += sizes[k];
    }
}

// ---- concat ---------------------------------------------------------------------------------------------------------

static void concat_backward(gvm_ctx *ctx, gvm_node *node) {
    const window_saved *s = node->saved;
    gvm_tensor *part = node->in[0];
    if (!gvm_needs_grad(part)) return;
    GVM_DISPATCH(k_concat_bwd, part->device, "concat")(node->out->grad->data, gvm_grad_data(ctx, part), s->outer, s->n,
                                                        s->inner, s->start, s->len);
}

gvm_tensor *gvm_concat(gvm_ctx *ctx, gvm_tensor *const *parts, int n_parts, int axis) {
    GVM_CHECK(n_parts >= 1, "concat: %d parts", n_parts);
    const gvm_tensor *p0 = parts[0];
    GVM_CHECK(axis >= -p0->ndim && axis < p0->ndim, "concat: axis %d out of range for rank-%d parts", axis, p0->ndim);
    int ax = gvm_tensor_axis(p0, axis);
    int64_t shape[GVM_MAX_DIMS];
    memcpy(shape, p0->shape, sizeof shape);
    shape[ax] = 0;
    char s0[96], sk[96];
    for (int k = 0; k < n_parts; k++) {
        const gvm_tensor *p = parts[k];
        bool ok = p->ndim == p0->ndim && p->dtype == p0->dtype && p->device == p0->device;
        for (int i = 0; ok && i < p0->ndim; i++) ok = i == ax || p->shape[i] == p0->shape[i];
        GVM_CHECK(ok, "concat: part %d (%s %s) does not match part 0 (%s %s) outside axis %d", k,
                  gvm_dtype_name(p->dtype), gvm_shape_str(p->ndim, p->shape, sk, sizeof sk), gvm_dtype_name(p0->dtype),
                  gvm_shape_str(p0->ndim, p0->shape, s0, sizeof s0), ax);
        shape[ax] += p->shape[ax];
    }
    gvm_tensor *out = gvm_tensor_empty(ctx, p0->dtype, p0->ndim, shape);
    int64_t outer = gvm_shape_numel(ax, shape), inner = gvm_shape_numel(p0->ndim - ax - 1, shape + ax + 1);
    int64_t start = 0;
    for (int k = 0; k < n_parts; k++) {
        int64_t len = parts[k]->shape[ax];
        GVM_DISPATCH(k_concat_fwd, p0->device, "concat")(parts[k]->data, out->data, gvm_dtype_size(p0->dtype), outer,
                                                          shape[ax], inner, start, len);
        // One node per part: any number of parts fits (a node holds at most GVM_NODE_MAX_INPUTS inputs), and
        // each node routes its window of the gradient to its part.
        gvm_tensor *part = parts[k];
        gvm_node *node = gvm_record(ctx, "concat", concat_backward, out, &part, 1, sizeof(window_saved));
        if (node) *(window_saved *)node->saved = (window_saved){outer, shape[ax], inner, start, len};
        start += len;
    }
    return out;
}

// ---- cast --------------------------------------------------------------------------------------------------------------

gvm_tensor *gvm_cast(gvm_ctx *ctx, gvm_tensor *a, gvm_dtype dtype) {
    GVM_CHECK(dtype >= 0 && dtype < GVM_DTYPE_COUNT, "cast: bad dtype %d", (int)dtype);
    gvm_tensor *out = gvm_tensor_empty(ctx, dtype, a->ndim, a->shape);
    GVM_DISPATCH(k_cast_fwd, a->device, "cast")(a->data, a->dtype, out->data, dtype, a->numel);
    // Gradients are f32 buffers whatever the tensor's dtype, so float -> float passes them straight through
    // (the derivative of rounding is taken as 1). Nothing flows to or from integers.
    if (gvm_dtype_is_float(a->dtype) && gvm_dtype_is_float(dtype))
        gvm_record(ctx, "cast", identity_backward, out, &a, 1, 0);
    return out;
}
