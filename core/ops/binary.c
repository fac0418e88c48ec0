// ops/binary.c: add, sub, mul and div with NumPy broadcasting, forward and backward.
//
// a [...a], b [...b] -> out [broadcast(a, b)], e.g. [3, 1, 5] with [4, 1] -> [3, 4, 5]. The broadcast
// plan (core/broadcast.h) is made once in the forward and saved, so the backward reduces the output
// gradient over exactly the dims each input was broadcast along.
#include "core/broadcast.h"
#include "core/cpu/elementwise.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/ops/grad_internal.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/elementwise.h"
#endif

typedef void (*binary_fwd_fn)(gvm_binary_op op, const float *a, const float *b, float *y, const gvm_broadcast *bc);
typedef void (*binary_bwd_fn)(gvm_binary_op op, const float *a, const float *b, const float *gy, float *ga,
                              float *gb, const gvm_broadcast *bc);
static const binary_fwd_fn k_binary_fwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_binary_fwd,
                                                              GVM_CUDA_KERNEL(gvm_cuda_binary_fwd)};
static const binary_bwd_fn k_binary_bwd[GVM_DEVICE_COUNT] = {[GVM_DEVICE_CPU] = gvm_cpu_binary_bwd,
                                                              GVM_CUDA_KERNEL(gvm_cuda_binary_bwd)};

static const char *const k_binary_name[] = {"add", "sub", "mul", "div"};

typedef struct {
    gvm_binary_op op;
    gvm_broadcast bc;
} binary_saved;

static void binary_backward(gvm_ctx *ctx, gvm_node *node) {
    const binary_saved *s = node->saved;
    gvm_tensor *a = node->in[0], *b = node->in[1];
    // Where an input's gradient is the output's unchanged (a of add/sub, b of add, not broadcast), that input
    // takes the output's buffer and the kernel skips it. Never both: a == b (x + x) must still accumulate.
    bool took_a = false, took_b = false;
    if (s->op == GVM_BINARY_ADD || s->op == GVM_BINARY_SUB) took_a = a != b && gvm_grad_take(ctx, a, node->out);
    if (s->op == GVM_BINARY_ADD && !took_a) took_b = a != b && gvm_grad_take(ctx, b, node->out);
    if ((took_a || !gvm_needs_grad(a)) && (took_b || !gvm_needs_grad(b))) return;
    float *ga = gvm_needs_grad(a) && !took_a ? gvm_grad_data(ctx, a) : NULL;
    float *gb = gvm_needs_grad(b) && !took_b ? gvm_grad_data(ctx, b) : NULL;
    GVM_DISPATCH(k_binary_bwd, a->device, k_binary_name[s->op])
    (s->op, a->data, b->data, node->out->grad->data, ga, gb, &s->bc);
}

static gvm_tensor *binary(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b, gvm_binary_op op) {
    const char *name = k_binary_name[op];
    GVM_CHECK(a && b, "%s: NULL input", name);
    GVM_CHECK(a->dtype == GVM_F32 && b->dtype == GVM_F32, "%s: f32 inputs required (got %s and %s)", name,
              gvm_dtype_name(a->dtype), gvm_dtype_name(b->dtype));
    GVM_CHECK(a->device == b->device, "%s: inputs on different devices", name);
    gvm_broadcast bc;
    const gvm_tensor *in[2] = {a, b};
    gvm_broadcast_tensors(&bc, 2, in, name);
    gvm_tensor *out = gvm_tensor_empty(ctx, GVM_F32, bc.ndim, bc.shape);  // [broadcast(a, b)]
    GVM_DISPATCH(k_binary_fwd, a->device, name)(op, a->data, b->data, out->data, &bc);
    gvm_tensor *inputs[2] = {a, b};
    gvm_node *node = gvm_record(ctx, name, binary_backward, out, inputs, 2, sizeof(binary_saved));
    if (node) *(binary_saved *)node->saved = (binary_saved){op, bc};
    return out;
}

gvm_tensor *gvm_add(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b) { return binary(ctx, a, b, GVM_BINARY_ADD); }
gvm_tensor *gvm_sub(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b) { return binary(ctx, a, b, GVM_BINARY_SUB); }
gvm_tensor *gvm_mul(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b) { return binary(ctx, a, b, GVM_BINARY_MUL); }
gvm_tensor *gvm_div(gvm_ctx *ctx, gvm_tensor *a, gvm_tensor *b) { return binary(ctx, a, b, GVM_BINARY_DIV); }
