// context.h: a gvm_ctx holds what one thread of computation needs: the activation arena, the autograd
// tape, the no-grad depth, the training flag and the random stream (dropout).
//
//   gvm_ctx *ctx = gvm_ctx_new(seed);
//   for (step...) {
//       gvm_tensor *loss = model_forward(ctx, ...);   // ops record on the tape
//       gvm_backward(ctx, loss);                       // grads land in the parameters' .grad
//       optimiser_step(...);
//       gvm_ctx_reset(ctx);                            // frees every activation at once
//   }
//   gvm_ctx_free(ctx);
#ifndef GVM_CONTEXT_H
#define GVM_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct gvm_node;

typedef struct gvm_ctx {
    gvm_arena arena;         // host memory: tensor structs, tape nodes, saved state; CPU tensor data too
    gvm_arena device_arena;  // tensor data when the context's device is not the CPU
    struct gvm_node **tape;  // nodes in execution order
    int tape_len;
    int tape_cap;
    int no_grad_depth;       // > 0: ops record nothing
    bool training;           // dropout is active only when true
    gvm_rng rng;             // dropout and other stochastic ops
    gvm_device device;       // where new op outputs live (gvm_ctx_set_device)
    // Mixed precision: GVM_F32 (off), GVM_BF16 or GVM_F16. On CUDA, GEMM-shaped ops (matmul, linear,
    // attention) then multiply inputs rounded to this type with f32 accumulation; values stay f32 in
    // memory (master weights and activations), so every other op is unchanged. Ignored on the CPU.
    gvm_dtype autocast;
} gvm_ctx;

gvm_ctx *gvm_ctx_new(uint64_t seed);  // on the CPU
// Move a fresh context (nothing allocated since the last reset) to `device`. Fails with GVM_ERR_DEVICE and
// a message saying why when the device is not usable here (no GPU, no driver, a build without CUDA).
gvm_status gvm_ctx_set_device(gvm_ctx *ctx, gvm_device device);
// The arena that holds tensor data (and kernel scratch) on the context's device.
static inline gvm_arena *gvm_ctx_data_arena(gvm_ctx *ctx) {
    return ctx->device == GVM_DEVICE_CPU ? &ctx->arena : &ctx->device_arena;
}
void gvm_ctx_free(gvm_ctx *ctx);
// Free every arena tensor and tape node made since the last reset. Heap tensors (parameters) and
// their gradients are untouched, so gradients accumulate across micro-batches until zeroed.
void gvm_ctx_reset(gvm_ctx *ctx);

// No-grad scopes nest: gvm_no_grad_begin(ctx); ... gvm_no_grad_end(ctx);
void gvm_no_grad_begin(gvm_ctx *ctx);
void gvm_no_grad_end(gvm_ctx *ctx);
bool gvm_grad_enabled(const gvm_ctx *ctx);

#ifdef __cplusplus
}
#endif

#endif
