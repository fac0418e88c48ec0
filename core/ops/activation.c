// ops/activation.c: activations (gelu, gelu_tanh, relu, elu, silu, tanh, sigmoid), dropout and
// masked_fill, forward and backward.
//
// The activations are unary maps: they go through gvm_op_unary (ops/unary.c) with their gvm_unary_op.
// Dropout stores no mask: it saves (seed, base, p) and the backward regenerates the mask from Philox,
// so it costs no memory and is the same on every device and thread count.
#include "core/broadcast.h"
#include "core/cpu/elementwise.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/ops/unary_internal.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/elementwise.h"
#endif

// ---- activations --------------------------------------------------------------------------------------

gvm_tensor *gvm_gelu(gvm_ctx *ctx, gvm_tensor *a) { return gvm_op_unary(ctx, a, GVM_UNARY_GELU, 0.0f, "gelu"); }
gvm_tensor *gvm_gelu_tanh(gvm_ctx *ctx, gvm_tensor *a) {
    return gvm_op_unary(ctx, a, GVM_UNARY_GELU_TANH, 0.0f, "gelu_tanh");
}
gvm_tensor *gvm_relu(gvm_ctx *ctx, gvm_tensor *a) { return gvm_op_unary(ctx, a, GVM_UNARY_RELU, 0.0f, "relu"); }
gvm_tensor *gvm_elu(gvm_ctx *ctx, gvm_tensor *a, float alpha) {
    return gvm_op_unary(ctx, a, GVM_UNARY_ELU, alpha, "elu");
}
gvm_tensor *gvm_silu(gvm_ctx *ctx, gvm_tensor *a) { return gvm_op_unary(ctx, a, GVM_UNARY_SILU, 0.0f, "silu"); }
gvm_tensor *gvm_tanh(gvm_ctx *ctx, gvm_tensor *a) { return gvm_op_unary(ctx, a, GVM_UNARY_TANH, 0.0f, "tanh"); }
gvm_tensor *gvm_sigmoid(gvm_ctx *ctx, gvm_tensor *a) {
    return gvm_op_unary(ctx, a, GVM_UNARY_SIGMOID, 0.0f, "sigmoid");
}

// ---- dropout --------------------------------------------------------------------------------------------

typedef void (*dropout_fwd_fn)(const float *x, float *y, int64_t n, uint64_t seed, uint64_t base, float p);
typedef void (*dropout_bwd_fn)(const float *gy, float *gx, int64_t n, uint64_t seed, uint64_t base, float p);
static const dropout_fwd_fn k_dropout_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_dropout_fwd,
                                                                GVM_CUDA_KERNEL(gvm_cuda_dropout_fwd)};
static const dropout_bwd_fn k_dropout_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_dropout_bwd,
                                                                GVM_CUDA_KERNEL(gvm_cuda_dropout_bwd)};

typedef struct {
    uint64_t seed, base;  // the Philox range the forward drew its mask from
    float p;
} dropout_saved;

static void dropout_backward(gvm_ctx *ctx, gvm_node *node) {
    const dropout_saved *s = node->saved;
    gvm_tensor *x = node->in[0];
    if (!gvm_needs_grad(x)) return;
    GVM_DISPATCH(k_dropout_bwd, x->device, "dropout")
    (node->out->grad->data, gvm_grad_data(ctx, x), x->numel, s->seed, s->base, s->p);
}

// a [...] -> out [...]. In eval mode (or p == 0) the op is the identity and returns `a` itself, as
// PyTorch does, without drawing from the stream. p == 1 zeroes everything (no value is >= 1).
gvm_tensor *gvm_dropout(gvm_ctx *ctx, gvm_tensor *a, float p) {
    GVM_CHECK(a, "dropout: NULL input");
    GVM_CHECK(a->dtype == GVM_F32, "dropout: f32 input required (got %s)", gvm_dtype_name(a->dtype));
    GVM_CHECK(p >= 0.0f && p <= 1.0f, "dropout: p = %g outside [0, 1]", (double)p);
    if (!ctx->training || p == 0.0f) return a;
    uint64_t seed = ctx->rng.seed;
    uint64_t base = gvm_rng_reserve(&ctx->rng, (size_t)a->numel);
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, a->ndim, a->shape);
    GVM_DISPATCH(k_dropout_fwd, a->device, "dropout")(a->data, out->data, a->numel, seed, base, p);
    gvm_node *node = gvm_record(ctx, "dropout", dropout_backward, out, &a, 1, sizeof(dropout_saved));
    if (node) *(dropout_saved *)node->saved = (dropout_saved){seed, base, p};
    return out;
}

// ---- masked_fill ----------------------------------------------------------------------------------------

typedef void (*masked_fill_fwd_fn)(const float *a, const uint8_t *mask, float *y, float value,
                                   const gvm_broadcast *bc);
typedef void (*masked_fill_bwd_fn)(const uint8_t *mask, const float *gy, float *ga, const gvm_broadcast *bc);
static const masked_fill_fwd_fn k_masked_fill_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_masked_fill_fwd,
                                                                        GVM_CUDA_KERNEL(gvm_cuda_masked_fill_fwd)};
static const masked_fill_bwd_fn k_masked_fill_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_masked_fill_bwd,
                                                                        GVM_CUDA_KERNEL(gvm_cuda_masked_fill_bwd)};

static void masked_fill_backward(gvm_ctx *ctx, gvm_node *node) {
    const gvm_broadcast *bc = node->saved;
    gvm_tensor *a = node->in[0], *mask = node->in[1];
    if (!gvm_needs_grad(a)) return;
    GVM_DISPATCH(k_masked_fill_bwd, a->device, "masked_fill")
    (mask->data, node->out->grad->data, gvm_grad_data(ctx, a), bc);
}

// a [...], mask [...m] (bool/u8, broadcastable to a's shape) -> out [a's shape].
gvm_tensor *gvm_masked_fill(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *mask, float value) {
    GVM_CHECK(a && mask, "masked_fill: NULL input");
    GVM_CHECK(a->dtype == GVM_F32, "masked_fill: f32 input required (got %s)", gvm_dtype_name(a->dtype));
    GVM_CHECK(mask->dtype == GVM_BOOL || mask->dtype == GVM_U8, "masked_fill: mask must be bool or u8 (got %s)",
              gvm_dtype_name(mask->dtype));
    GVM_CHECK(a->device == mask->device, "masked_fill: inputs on different devices");
    gvm_broadcast bc;
    const gvm_tensor *in[2] = {a, mask};
    gvm_broadcast_tensors(&bc, 2, in, "masked_fill");
    bool same = bc.ndim == a->ndim;
    for (int d = 0; same && d < a->ndim; d++) same = bc.shape[d] == a->shape[d];
    char sa[96], sm[96];
    GVM_CHECK(same, "masked_fill: mask %s does not broadcast to a's shape %s",
              gvm_shape_str(mask->ndim, mask->shape, sm, sizeof sm), gvm_shape_str(a->ndim, a->shape, sa, sizeof sa));
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, a->ndim, a->shape);
    GVM_DISPATCH(k_masked_fill_fwd, a->device, "masked_fill")(a->data, mask->data, out->data, value, &bc);
    gvm_tensor *inputs[2] = {a, mask};
    gvm_node *node = gvm_record(ctx, "masked_fill", masked_fill_backward, out, inputs, 2, sizeof(gvm_broadcast));
    if (node) *(gvm_broadcast *)node->saved = bc;
    return out;
}
