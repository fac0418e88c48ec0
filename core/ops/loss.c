// ops/loss.c: the scalar losses: cross-entropy (with ignore_index), mean squared error and mean absolute
// error, forward and backward.
//
// Cross-entropy is the music LM's loss over 2048-way codebooks with ~10^4 rows, so log-softmax and the
// NLL are fused: the forward pass keeps only each row's max and log-sum [N], and the backward pass
// recomputes the softmax from them instead of keeping an [N, C] probability tensor alive.
#include <string.h>

#include "core/cpu/softmax.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/softmax.h"
#endif

typedef void (*ce_fwd_fn)(const float *logits, const int64_t *targets, float *rowmax, float *logsum, float *loss,
                          int64_t N, int64_t C, int64_t ignore_index);
typedef void (*ce_bwd_fn)(const float *logits, const int64_t *targets, const float *rowmax, const float *logsum,
                          const float *dloss, float *dlogits, int64_t N, int64_t C, int64_t ignore_index);
typedef void (*pair_loss_fwd_fn)(const float *a, const float *b, float *loss, int64_t n);
typedef void (*pair_loss_bwd_fn)(const float *a, const float *b, const float *dloss, float *da, float *db, int64_t n);

static const ce_fwd_fn k_ce_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_cross_entropy_fwd,
                                                     GVM_CUDA_KERNEL(gvm_cuda_cross_entropy_fwd)};
static const ce_bwd_fn k_ce_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_cross_entropy_bwd,
                                                     GVM_CUDA_KERNEL(gvm_cuda_cross_entropy_bwd)};
static const pair_loss_fwd_fn k_mse_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_mse_loss_fwd,
                                                             GVM_CUDA_KERNEL(gvm_cuda_mse_loss_fwd)};
static const pair_loss_bwd_fn k_mse_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_mse_loss_bwd,
                                                             GVM_CUDA_KERNEL(gvm_cuda_mse_loss_bwd)};
static const pair_loss_fwd_fn k_l1_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_l1_loss_fwd,
                                                            GVM_CUDA_KERNEL(gvm_cuda_l1_loss_fwd)};
static const pair_loss_bwd_fn k_l1_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_l1_loss_bwd,
                                                            GVM_CUDA_KERNEL(gvm_cuda_l1_loss_bwd)};

// ---- cross-entropy -----------------------------------------------------------------------------------------

// i32 targets are widened to the i64 the kernels read, on the targets' device (CUDA: core/cuda/softmax.cu).
typedef void (*widen_fn)(const int32_t *src, int64_t *dst, int64_t n);

static void cpu_widen_i32_i64(const int32_t *src, int64_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}

static const widen_fn k_widen[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = cpu_widen_i32_i64,
                                                   GVM_CUDA_KERNEL(gvm_cuda_widen_i32_i64)};

typedef struct {
    const int64_t *targets;  // [N], i64 (the input's own data, or an arena copy of i32 targets)
    float *rowmax, *logsum;  // [N] each, arena
    int64_t N, C, ignore_index;
} ce_saved;

static void cross_entropy_backward(gvm_ctx *ctx, gvm_node *node) {
    const ce_saved *s = node->saved;
    gvm_tensor *logits = node->in[0];
    if (!gvm_needs_grad(logits)) return;
    GVM_DISPATCH(k_ce_bwd, logits->device, "cross_entropy")
    (logits->data, s->targets, s->rowmax, s->logsum, node->out->grad->data, gvm_grad_data(ctx, logits), s->N, s->C,
     s->ignore_index);
}

// logits [N, C], targets [N] (i32/i64) -> scalar
gvm_tensor *gvm_cross_entropy(gvm_ctx *ctx, gvm_tensor *logits, gvm_tensor *targets, int64_t ignore_index) {
    GVM_CHECK(logits->dtype == GVM_F32 && logits->ndim == 2,
              "cross_entropy: logits must be f32 [N, C] (got %s rank %d)", gvm_dtype_name(logits->dtype), logits->ndim);
    GVM_CHECK(targets->dtype == GVM_I32 || targets->dtype == GVM_I64,
              "cross_entropy: targets must be i32 or i64 (got %s)", gvm_dtype_name(targets->dtype));
    int64_t N = logits->shape[0], C = logits->shape[1];
    GVM_CHECK(targets->ndim == 1 && targets->shape[0] == N,
              "cross_entropy: targets must be [%lld] (got %lld values, rank %d)", (long long)N,
              (long long)targets->numel, targets->ndim);
    GVM_CHECK(targets->device == logits->device, "cross_entropy: logits on %s but targets on %s",
              gvm_device_name(logits->device), gvm_device_name(targets->device));
    const int64_t *tg;
    if (targets->dtype == GVM_I64) {
        tg = targets->data;
    } else {
        int64_t *wide = gvm_arena_alloc(gvm_ctx_data_arena(ctx), (size_t)(N ? N : 1) * sizeof(int64_t));
        GVM_DISPATCH(k_widen, targets->device, "cross_entropy")(targets->data, wide, N);
        tg = wide;
    }
    // A target outside the classes would index outside the row: a bug in the caller's data pipeline.
    // Checked here for CPU tensors; the CUDA kernel checks each row's target itself (and traps on a bad one).
    if (targets->device == GVM_DEVICE_CPU)
        for (int64_t i = 0; i < N; i++)
            GVM_CHECK(tg[i] == ignore_index || (tg[i] >= 0 && tg[i] < C),
                      "cross_entropy: target %lld at row %lld is outside 0..%lld and is not ignore_index (%lld)",
                      (long long)tg[i], (long long)i, (long long)C - 1, (long long)ignore_index);

    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, 0, NULL);
    size_t row_bytes = (size_t)(N ? N : 1) * sizeof(float);
    float *rowmax = gvm_arena_alloc(gvm_ctx_data_arena(ctx), row_bytes), *logsum = gvm_arena_alloc(gvm_ctx_data_arena(ctx), row_bytes);
    GVM_DISPATCH(k_ce_fwd, logits->device, "cross_entropy")
    (logits->data, tg, rowmax, logsum, out->data, N, C, ignore_index);
    gvm_tensor *inputs[2] = {logits, targets};
    gvm_node *node = gvm_record(ctx, "cross_entropy", cross_entropy_backward, out, inputs, 2, sizeof(ce_saved));
    if (node) *(ce_saved *)node->saved = (ce_saved){tg, rowmax, logsum, N, C, ignore_index};
    return out;
}

// ---- MSE and L1: a, b same shape -> scalar mean ---------------------------------------------------------------

static void pair_loss_backward(gvm_ctx *ctx, gvm_node *node, const pair_loss_bwd_fn *table) {
    gvm_tensor *a = node->in[0], *b = node->in[1];
    float *da = gvm_needs_grad(a) ? gvm_grad_data(ctx, a) : NULL;
    float *db = gvm_needs_grad(b) ? gvm_grad_data(ctx, b) : NULL;
    if (da || db) GVM_DISPATCH(table, a->device, node->op)(a->data, b->data, node->out->grad->data, da, db, a->numel);
}

static void mse_backward(gvm_ctx *ctx, gvm_node *node) { pair_loss_backward(ctx, node, k_mse_bwd); }
static void l1_backward(gvm_ctx *ctx, gvm_node *node) { pair_loss_backward(ctx, node, k_l1_bwd); }

static gvm_tensor *pair_loss(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b, const char *name,
                             const pair_loss_fwd_fn *table, gvm_backward_fn backward) {
    GVM_CHECK(a->dtype == GVM_F32 && b->dtype == GVM_F32, "%s: f32 inputs required", name);
    GVM_CHECK(a->device == b->device, "%s: inputs on different devices", name);
    char sa[64], sb[64];
    GVM_CHECK(gvm_tensor_same_shape(a, b), "%s: shapes differ (%s vs %s)", name,
              gvm_shape_str(a->ndim, a->shape, sa, sizeof sa), gvm_shape_str(b->ndim, b->shape, sb, sizeof sb));
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, 0, NULL);
    GVM_DISPATCH(table, a->device, name)(a->data, b->data, out->data, a->numel);
    gvm_tensor *inputs[2] = {a, b};
    gvm_record(ctx, name, backward, out, inputs, 2, 0);
    return out;
}

gvm_tensor *gvm_mse_loss(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b) {
    return pair_loss(ctx, a, b, "mse_loss", k_mse_fwd, mse_backward);
}

// The gradient of |a - b| is sign(a - b) with sign(0) = 0, as PyTorch's l1_loss.
gvm_tensor *gvm_l1_loss(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b) {
    return pair_loss(ctx, a, b, "l1_loss", k_l1_fwd, l1_backward);
}
