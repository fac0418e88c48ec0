// ops/norm.c: the normalisations: layer norm, RMS norm, L2 normalisation, cosine similarity and weight
// normalisation, forward and backward. Each saves its per-row statistics (a few floats per row) so that
// backward need not recompute them.
#include "core/cpu/norm.h"
#ifdef GVM_HAVE_CUDA
#include "core/cuda/norm.h"
#endif

#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"

typedef void (*layer_norm_fwd_fn)(const float *x, const float *w, const float *b, float *y, float *mean, float *rstd,
                                  int64_t rows, int64_t D, float eps);
typedef void (*layer_norm_bwd_fn)(const float *x, const float *w, const float *mean, const float *rstd, const float *dy,
                                  float *dx, float *dw, float *db, double *scratch, int64_t rows, int64_t D);
typedef void (*rms_norm_fwd_fn)(const float *x, const float *w, float *y, float *rstd, int64_t rows, int64_t D,
                                float eps);
typedef void (*rms_norm_bwd_fn)(const float *x, const float *w, const float *rstd, const float *dy, float *dx,
                                float *dw, double *scratch, int64_t rows, int64_t D);
typedef void (*l2n_fwd_fn)(const float *x, float *y, float *norm, int64_t outer, int64_t n, int64_t inner, float eps);
typedef void (*l2n_bwd_fn)(const float *y, const float *norm, const float *dy, float *dx, int64_t outer, int64_t n,
                           int64_t inner, float eps);
typedef void (*cos_fwd_fn)(const float *a, const float *b, float *y, float *na, float *nb, int64_t outer, int64_t n,
                           int64_t inner, float eps);
typedef void (*cos_bwd_fn)(const float *a, const float *b, const float *y, const float *na, const float *nb,
                           const float *dy, float *da, float *db, int64_t outer, int64_t n, int64_t inner, float eps);
typedef size_t (*norm_scratch_fn)(int64_t D);
typedef void (*wn_fwd_fn)(const float *g, const float *v, float *w, float *norm, int64_t O, int64_t K);
typedef void (*wn_bwd_fn)(const float *g, const float *v, const float *norm, const float *dw, float *dg, float *dv,
                          int64_t O, int64_t K);

// Bytes of scratch the layer/RMS norm backward kernels want for their dweight/dbias partial sums.
static const norm_scratch_fn k_norm_bwd_scratch[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_norm_bwd_scratch_bytes, GVM_CUDA_KERNEL(gvm_cuda_norm_bwd_scratch_bytes)};
static const layer_norm_fwd_fn k_layer_norm_fwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_layer_norm_fwd, GVM_CUDA_KERNEL(gvm_cuda_layer_norm_fwd)};
static const layer_norm_bwd_fn k_layer_norm_bwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_layer_norm_bwd, GVM_CUDA_KERNEL(gvm_cuda_layer_norm_bwd)};
static const rms_norm_fwd_fn k_rms_norm_fwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_rms_norm_fwd, GVM_CUDA_KERNEL(gvm_cuda_rms_norm_fwd)};
static const rms_norm_bwd_fn k_rms_norm_bwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_rms_norm_bwd, GVM_CUDA_KERNEL(gvm_cuda_rms_norm_bwd)};
static const l2n_fwd_fn k_l2n_fwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_l2_normalize_fwd, GVM_CUDA_KERNEL(gvm_cuda_l2_normalize_fwd)};
static const l2n_bwd_fn k_l2n_bwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_l2_normalize_bwd, GVM_CUDA_KERNEL(gvm_cuda_l2_normalize_bwd)};
static const cos_fwd_fn k_cos_fwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_cosine_similarity_fwd, GVM_CUDA_KERNEL(gvm_cuda_cosine_similarity_fwd)};
static const cos_bwd_fn k_cos_bwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_cosine_similarity_bwd, GVM_CUDA_KERNEL(gvm_cuda_cosine_similarity_bwd)};
static const wn_fwd_fn k_wn_fwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_weight_norm_fwd, GVM_CUDA_KERNEL(gvm_cuda_weight_norm_fwd)};
static const wn_bwd_fn k_wn_bwd[GVM_DEVICE_COUNT] = {
    [GVM_DEVICE_CPU] = gvm_cpu_weight_norm_bwd, GVM_CUDA_KERNEL(gvm_cuda_weight_norm_bwd)};

static float *arena_floats(gvm_ctx *ctx, int64_t n) {
    return gvm_arena_alloc(gvm_ctx_data_arena(ctx), (size_t)(n > 0 ? n : 1) * sizeof(float));
}

static double *norm_scratch(gvm_ctx *ctx, gvm_device device, int64_t D) {
    return gvm_arena_alloc(gvm_ctx_data_arena(ctx), GVM_DISPATCH(k_norm_bwd_scratch, device, "norm")(D));
}

// A per-feature parameter of a last-dim norm: NULL, or f32 [D].
static void check_feature_param(const gvm_tensor *p, int64_t D, const char *op, const char *what) {
    if (!p) return;
    GVM_CHECK(p->dtype == GVM_F32 && p->ndim == 1 && p->shape[0] == D,
              "%s: %s must be f32 [%lld] (got %s, rank %d, %lld values)", op, what, (long long)D,
              gvm_dtype_name(p->dtype), p->ndim, (long long)p->numel);
}

// ---- layer norm: x [..., D], weight [D] or NULL, bias [D] or NULL -> [..., D] ------------------------------

typedef struct {
    float *mean, *rstd;  // [rows] each
    int64_t rows, D;
} layer_norm_saved;

static void layer_norm_backward(gvm_ctx *ctx, gvm_node *node) {
    const layer_norm_saved *s = node->saved;
    gvm_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    float *dx = gvm_needs_grad(x) ? gvm_grad_data(ctx, x) : NULL;
    float *dw = gvm_needs_grad(w) ? gvm_grad_data(ctx, w) : NULL;
    float *db = gvm_needs_grad(b) ? gvm_grad_data(ctx, b) : NULL;
    double *scratch = norm_scratch(ctx, x->device, s->D);
    GVM_DISPATCH(k_layer_norm_bwd, x->device, "layer_norm")
    (x->data, w ? w->data : NULL, s->mean, s->rstd, node->out->grad->data, dx, dw, db, scratch, s->rows, s->D);
}

gvm_tensor *gvm_layer_norm(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *weight, gvm_tensor *bias, float eps) {
    GVM_CHECK(x->dtype == GVM_F32 && x->ndim >= 1, "layer_norm: x must be f32 [..., D]");
    int64_t D = x->shape[x->ndim - 1], rows = gvm_shape_numel(x->ndim - 1, x->shape);
    check_feature_param(weight, D, "layer_norm", "weight");
    check_feature_param(bias, D, "layer_norm", "bias");
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, x->ndim, x->shape);
    float *mean = arena_floats(ctx, rows), *rstd = arena_floats(ctx, rows);
    GVM_DISPATCH(k_layer_norm_fwd, x->device, "layer_norm")
    (x->data, weight ? weight->data : NULL, bias ? bias->data : NULL, out->data, mean, rstd, rows, D, eps);
    gvm_tensor *inputs[3] = {x, weight, bias};
    gvm_node *node = gvm_record(ctx, "layer_norm", layer_norm_backward, out, inputs, 3, sizeof(layer_norm_saved));
    if (node) *(layer_norm_saved *)node->saved = (layer_norm_saved){mean, rstd, rows, D};
    return out;
}

// ---- RMS norm: x [..., D], weight [D] or NULL -> x * rsqrt(mean(x^2) + eps) * weight (F.rms_norm) -----------

typedef struct {
    float *rstd;  // [rows]
    int64_t rows, D;
} rms_norm_saved;

static void rms_norm_backward(gvm_ctx *ctx, gvm_node *node) {
    const rms_norm_saved *s = node->saved;
    gvm_tensor *x = node->in[0], *w = node->in[1];
    float *dx = gvm_needs_grad(x) ? gvm_grad_data(ctx, x) : NULL;
    float *dw = gvm_needs_grad(w) ? gvm_grad_data(ctx, w) : NULL;
    double *scratch = norm_scratch(ctx, x->device, s->D);
    GVM_DISPATCH(k_rms_norm_bwd, x->device, "rms_norm")
    (x->data, w ? w->data : NULL, s->rstd, node->out->grad->data, dx, dw, scratch, s->rows, s->D);
}

gvm_tensor *gvm_rms_norm(gvm_ctx *ctx, gvm_tensor *x, gvm_tensor *weight, float eps) {
    GVM_CHECK(x->dtype == GVM_F32 && x->ndim >= 1, "rms_norm: x must be f32 [..., D]");
    int64_t D = x->shape[x->ndim - 1], rows = gvm_shape_numel(x->ndim - 1, x->shape);
    check_feature_param(weight, D, "rms_norm", "weight");
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, x->ndim, x->shape);
    float *rstd = arena_floats(ctx, rows);
    GVM_DISPATCH(k_rms_norm_fwd, x->device, "rms_norm")
    (x->data, weight ? weight->data : NULL, out->data, rstd, rows, D, eps);
    gvm_tensor *inputs[2] = {x, weight};
    gvm_node *node = gvm_record(ctx, "rms_norm", rms_norm_backward, out, inputs, 2, sizeof(rms_norm_saved));
    if (node) *(rms_norm_saved *)node->saved = (rms_norm_saved){rstd, rows, D};
    return out;
}

// ---- L2 normalisation: x [..., n, ...] -> x / max(||x||, eps) along axis (F.normalize, p = 2) ------------------

typedef struct {
    float *norm;  // [outer, inner]: ||x|| before the clamp
    int64_t outer, n, inner;
    float eps;
} l2n_saved;

static void l2_normalize_backward(gvm_ctx *ctx, gvm_node *node) {
    const l2n_saved *s = node->saved;
    gvm_tensor *x = node->in[0];
    if (!gvm_needs_grad(x)) return;
    GVM_DISPATCH(k_l2n_bwd, x->device, "l2_normalize")
    (node->out->data, s->norm, node->out->grad->data, gvm_grad_data(ctx, x), s->outer, s->n, s->inner, s->eps);
}

gvm_tensor *gvm_l2_normalize(gvm_ctx *ctx, gvm_tensor *x, int axis, float eps) {
    GVM_CHECK(x->dtype == GVM_F32, "l2_normalize: f32 input required");
    int ax = gvm_tensor_axis(x, axis);
    int64_t outer = gvm_shape_numel(ax, x->shape), n = x->shape[ax];
    int64_t inner = gvm_shape_numel(x->ndim - ax - 1, x->shape + ax + 1);
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, x->ndim, x->shape);
    float *norm = arena_floats(ctx, outer * inner);
    GVM_DISPATCH(k_l2n_fwd, x->device, "l2_normalize")(x->data, out->data, norm, outer, n, inner, eps);
    gvm_tensor *inputs[1] = {x};
    gvm_node *node = gvm_record(ctx, "l2_normalize", l2_normalize_backward, out, inputs, 1, sizeof(l2n_saved));
    if (node) *(l2n_saved *)node->saved = (l2n_saved){norm, outer, n, inner, eps};
    return out;
}

// ---- cosine similarity: a, b [..., n, ...] -> [..., ...] (axis removed) ----------------------------------------
// PyTorch (checked against torch 2.15, aten cosine_similarity) normalises each input first:
//     y = sum( a / max(||a||, eps) * b / max(||b||, eps) )
// (not sum(a*b) / max(||a|| * ||b||, eps), older PyTorch's formula, which ops.h's comment still quotes;
// the two differ only when a norm is below eps). The clamp is applied in place under no_grad, so its
// backward differentiates the norm even when clamped. With ca = max(||a||, eps), cb likewise:
//     da = g * ( b / (ca * cb) - y * a / (ca * ||a||) )     (second term 0 when ||a|| = 0)
//     db = g * ( a / (ca * cb) - y * b / (cb * ||b||) )
// which is the exact gradient whenever both norms are >= eps.

typedef struct {
    float *na, *nb;  // [outer, inner]: ||a||, ||b||
    int64_t outer, n, inner;
    float eps;
} cos_saved;

static void cosine_similarity_backward(gvm_ctx *ctx, gvm_node *node) {
    const cos_saved *s = node->saved;
    gvm_tensor *a = node->in[0], *b = node->in[1];
    float *da = gvm_needs_grad(a) ? gvm_grad_data(ctx, a) : NULL;
    float *db = gvm_needs_grad(b) ? gvm_grad_data(ctx, b) : NULL;
    GVM_DISPATCH(k_cos_bwd, a->device, "cosine_similarity")
    (a->data, b->data, node->out->data, s->na, s->nb, node->out->grad->data, da, db, s->outer, s->n, s->inner, s->eps);
}

gvm_tensor *gvm_cosine_similarity(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b, int axis, float eps) {
    GVM_CHECK(a->dtype == GVM_F32 && b->dtype == GVM_F32, "cosine_similarity: f32 inputs required");
    char sa[64], sb[64];
    GVM_CHECK(gvm_tensor_same_shape(a, b), "cosine_similarity: shapes differ (%s vs %s)",
              gvm_shape_str(a->ndim, a->shape, sa, sizeof sa), gvm_shape_str(b->ndim, b->shape, sb, sizeof sb));
    int ax = gvm_tensor_axis(a, axis);
    int64_t outer = gvm_shape_numel(ax, a->shape), n = a->shape[ax];
    int64_t inner = gvm_shape_numel(a->ndim - ax - 1, a->shape + ax + 1);
    int64_t shape[GVM_MAX_DIMS];
    for (int i = 0, j = 0; i < a->ndim; i++)
        if (i != ax) shape[j++] = a->shape[i];
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, a->ndim - 1, shape);
    float *na = arena_floats(ctx, outer * inner), *nb = arena_floats(ctx, outer * inner);
    GVM_DISPATCH(k_cos_fwd, a->device, "cosine_similarity")(a->data, b->data, out->data, na, nb, outer, n, inner, eps);
    gvm_tensor *inputs[2] = {a, b};
    gvm_node *node =
        gvm_record(ctx, "cosine_similarity", cosine_similarity_backward, out, inputs, 2, sizeof(cos_saved));
    if (node) *(cos_saved *)node->saved = (cos_saved){na, nb, outer, n, inner, eps};
    return out;
}

// ---- weight normalisation: g [O, 1, ..., 1], v [O, ...] -> g * v / ||v|| (norm over all dims but 0) ------------
// As torch._weight_norm(v, g, 0): no eps, so a zero row of v gives NaN there, as in PyTorch.

typedef struct {
    float *norm;  // [O]
    int64_t O, K;
} wn_saved;

static void weight_norm_backward(gvm_ctx *ctx, gvm_node *node) {
    const wn_saved *s = node->saved;
    gvm_tensor *g = node->in[0], *v = node->in[1];
    float *dg = gvm_needs_grad(g) ? gvm_grad_data(ctx, g) : NULL;
    float *dv = gvm_needs_grad(v) ? gvm_grad_data(ctx, v) : NULL;
    GVM_DISPATCH(k_wn_bwd, v->device, "weight_norm")
    (g->data, v->data, s->norm, node->out->grad->data, dg, dv, s->O, s->K);
}

gvm_tensor *gvm_weight_norm(gvm_ctx *ctx, gvm_tensor *g, gvm_tensor *v) {
    GVM_CHECK(g->dtype == GVM_F32 && v->dtype == GVM_F32, "weight_norm: f32 inputs required");
    GVM_CHECK(v->ndim >= 1, "weight_norm: v must be [O, ...]");
    char sg[64], sv[64];
    bool g_ok = g->ndim == v->ndim && g->shape[0] == v->shape[0];
    for (int i = 1; i < g->ndim && g_ok; i++) g_ok = g->shape[i] == 1;
    GVM_CHECK(g_ok, "weight_norm: g must be [O, 1, ..., 1] with v's rank (g %s, v %s)",
              gvm_shape_str(g->ndim, g->shape, sg, sizeof sg), gvm_shape_str(v->ndim, v->shape, sv, sizeof sv));
    int64_t O = v->shape[0], K = gvm_shape_numel(v->ndim - 1, v->shape + 1);
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, v->ndim, v->shape);
    float *norm = arena_floats(ctx, O);
    GVM_DISPATCH(k_wn_fwd, v->device, "weight_norm")(g->data, v->data, out->data, norm, O, K);
    gvm_tensor *inputs[2] = {g, v};
    gvm_node *node = gvm_record(ctx, "weight_norm", weight_norm_backward, out, inputs, 2, sizeof(wn_saved));
    if (node) *(wn_saved *)node->saved = (wn_saved){norm, O, K};
    return out;
}
