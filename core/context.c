// context.c: creation and reset of a gvm_ctx (see context.h).
#include "core/context.h"

#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/error.h"

gvm_ctx *gvm_ctx_new(uint64_t seed) {
    gvm_ctx *ctx = GVM_CALLOC(1, sizeof *ctx);
    gvm_arena_init(&ctx->arena, 0);
    gvm_rng_init(&ctx->rng, seed);
    ctx->training = true;
    ctx->device = GVM_DEVICE_CPU;
    ctx->autocast = GVM_F32;
    gvm_arena_init(&ctx->device_arena, 0);  // unused while the context is on the CPU
    return ctx;
}

gvm_status gvm_ctx_set_device(gvm_ctx *ctx, gvm_device device) {
    if (device == ctx->device) return GVM_OK;
    GVM_CHECK(ctx->tape_len == 0 && ctx->arena.used == 0 && ctx->device_arena.used == 0,
              "gvm_ctx_set_device on a context holding tensors (reset it first)");
    gvm_status st = gvm_device_init(device);
    if (st != GVM_OK) return st;
    gvm_arena_free(&ctx->device_arena);
    if (device != GVM_DEVICE_CPU) gvm_arena_init_on(&ctx->device_arena, device, (size_t)64 << 20);
    ctx->device = device;
    return GVM_OK;
}

void gvm_ctx_free(gvm_ctx *ctx) {
    if (!ctx) return;
    gvm_arena_free(&ctx->arena);
    gvm_arena_free(&ctx->device_arena);
    free(ctx->tape);
    free(ctx);
}

void gvm_ctx_reset(gvm_ctx *ctx) {
    ctx->tape_len = 0;
    gvm_arena_reset(&ctx->arena);
    if (ctx->device != GVM_DEVICE_CPU) gvm_arena_reset(&ctx->device_arena);
}

void gvm_no_grad_begin(gvm_ctx *ctx) { ctx->no_grad_depth++; }

void gvm_no_grad_end(gvm_ctx *ctx) {
    GVM_CHECK(ctx->no_grad_depth > 0, "gvm_no_grad_end without gvm_no_grad_begin");
    ctx->no_grad_depth--;
}

bool gvm_grad_enabled(const gvm_ctx *ctx) { return ctx->no_grad_depth == 0; }
