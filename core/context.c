// context.c: creation and reset of a gvm_ctx (see context.h).
#include "core/context.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

gvm_ctx *gvm_ctx_new(uint64_t seed) {
    gvm_ctx *ctx = GVM_CALLOC(1, sizeof *ctx);
    gvm_arena_init(&ctx->arena, 0);
    gvm_rng_init(&ctx->rng, seed);
    ctx->training = true;
    ctx->device = GVM_DEVICE_CPU;
    return ctx;
}

void gvm_ctx_free(gvm_ctx *ctx) {
    if (!ctx) return;
    gvm_arena_free(&ctx->arena);
    free(ctx->tape);
    free(ctx);
}

void gvm_ctx_reset(gvm_ctx *ctx) {
    ctx->tape_len = 0;
    gvm_arena_reset(&ctx->arena);
}

void gvm_no_grad_begin(gvm_ctx *ctx) { ctx->no_grad_depth++; }

void gvm_no_grad_end(gvm_ctx *ctx) {
    GVM_CHECK(ctx->no_grad_depth > 0, "gvm_no_grad_end without gvm_no_grad_begin");
    ctx->no_grad_depth--;
}

bool gvm_grad_enabled(const gvm_ctx *ctx) { return ctx->no_grad_depth == 0; }
