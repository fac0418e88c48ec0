// generate.c: the autoregressive generation loop over the music LM's KV cache (see generate.h).
#include "nn/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/delay_pattern.h"

gvm_nn_generate_opts gvm_nn_generate_opts_default(void) {
    return (gvm_nn_generate_opts){.cfg_scale = 3.0f, .sample = gvm_nn_sampling_opts_default()};
}

// The user-facing checks, before anything is allocated or run.
static gvm_status check_inputs(const gvm_ctx *ctx, const gvm_nn_music_lm *lm, const gvm_tensor *cond,
                               const gvm_tensor *cond_mask,
                               int64_t frames, const int64_t *prompt, int64_t prompt_k, int64_t prompt_frames,
                               const gvm_nn_generate_opts *o) {
    const int64_t K = lm->num_codebooks;
    if (frames <= 0)
        return gvm_error_set(GVM_ERR_INVALID, "generate: %lld codec frames requested; need at least 1",
                             (long long)frames);
    if (!cond || cond->ndim != 3 || cond->dtype != GVM_F32 || cond->shape[0] <= 0)
        return gvm_error_set(GVM_ERR_INVALID, "generate: the condition must be an f32 [B, F, D] tensor with B >= 1");
    const int64_t B = cond->shape[0], F = cond->shape[1];
    if (cond->device != ctx->device)
        return gvm_error_set(GVM_ERR_INVALID, "generate: the condition is on %s, the context on %s",
                             gvm_device_name(cond->device), gvm_device_name(ctx->device));
    const int64_t cross = lm->num_layers > 0 ? lm->layers[0].encoder_attn.kv_dim : cond->shape[2];
    if (cond->shape[2] != cross)
        return gvm_error_set(GVM_ERR_INVALID, "generate: the condition has width %lld, the LM's cross-attention "
                             "takes %lld", (long long)cond->shape[2], (long long)cross);
    if (cond_mask && (cond_mask->ndim != 2 || cond_mask->shape[0] != B || cond_mask->shape[1] != F ||
                      (cond_mask->dtype != GVM_U8 && cond_mask->dtype != GVM_BOOL)))
        return gvm_error_set(GVM_ERR_INVALID, "generate: the condition mask must be bool/u8 [%lld, %lld]",
                             (long long)B, (long long)F);
    if (prompt_frames < 0 || (!prompt && prompt_frames != 0))
        return gvm_error_set(GVM_ERR_INVALID, "generate: prompt of %lld frames without codes",
                             (long long)prompt_frames);
    if (prompt) {
        if (prompt_k != K)
            return gvm_error_set(GVM_ERR_INVALID, "generate: the prompt has %lld codebooks, the model %lld",
                                 (long long)prompt_k, (long long)K);
        if (prompt_frames >= frames)
            return gvm_error_set(GVM_ERR_INVALID, "generate: the prompt (%lld frames) must be shorter than the "
                                 "generation (%lld frames)", (long long)prompt_frames, (long long)frames);
        for (int64_t i = 0; i < B * K * prompt_frames; i++)
            if (prompt[i] < 0 || prompt[i] >= lm->card)
                return gvm_error_set(GVM_ERR_INVALID, "generate: prompt code %lld at index %lld not in 0..%lld",
                                     (long long)prompt[i], (long long)i, (long long)(lm->card - 1));
    }
    if (!isfinite(o->cfg_scale) || o->cfg_scale < 0.0f)
        return gvm_error_set(GVM_ERR_INVALID, "generate: cfg scale %g must be >= 0 (0 = no guidance)",
                             (double)o->cfg_scale);
    return gvm_nn_sampling_check(&o->sample);
}

// [2B, F, D] condition and [2B, F] u8 mask: the B samples as given, then B null rows (zeros, mask 0).
static void guided_condition(gvm_ctx *ctx, gvm_tensor *cond, gvm_tensor *cond_mask, gvm_tensor **cond_out,
                             gvm_tensor **mask_out) {
    const int64_t B = cond->shape[0], F = cond->shape[1], D = cond->shape[2];
    gvm_tensor *null_cond, *null_mask;
    gvm_nn_music_lm_null_cond(ctx, B, F, D, &null_cond, &null_mask);
    *cond_out = gvm_concat(ctx, (gvm_tensor *[]){cond, null_cond}, 2, 0);  // [2B, F, D]
    gvm_tensor *h = gvm_tensor_new(GVM_U8, 2, (int64_t[]){2 * B, F});     // zeros: the null half stays 0
    uint8_t *hv = gvm_tensor_u8(h);
    if (cond_mask) {
        gvm_tensor *mh = cond_mask->device == GVM_DEVICE_CPU ? NULL : gvm_tensor_to(cond_mask, GVM_DEVICE_CPU);
        const uint8_t *mv = gvm_tensor_u8(mh ? mh : cond_mask);
        for (int64_t i = 0; i < B * F; i++) hv[i] = mv[i] != 0;
        gvm_tensor_free(mh);
    } else {
        memset(hv, 1, (size_t)(B * F));
    }
    *mask_out = gvm_tensor_empty(ctx, GVM_U8, 2, (int64_t[]){2 * B, F});
    gvm_tensor_copy(*mask_out, h);
    gvm_tensor_free(h);
}

// LM input tokens [rows, K, n] (i64, context's device): input step j in [first, first + n) of every row is
// seq[b][k][j - 1], or the start token at j = 0; row r reads sample r % B (the guidance rows repeat the batch).
static gvm_tensor *input_tokens(gvm_ctx *ctx, const int64_t *seq, int64_t B, int64_t rows, int64_t K, int64_t S,
                                int64_t first, int64_t n, int64_t special) {
    gvm_tensor *h = gvm_tensor_new(GVM_I64, 3, (int64_t[]){rows, K, n});
    int64_t *hv = gvm_tensor_i64(h);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < n; j++) {
                const int64_t s = first + j;
                hv[(r * K + k) * n + j] = s == 0 ? special : seq[((r % B) * K + k) * S + s - 1];
            }
    gvm_tensor *t = gvm_tensor_empty(ctx, GVM_I64, 3, (int64_t[]){rows, K, n});
    gvm_tensor_copy(t, h);
    gvm_tensor_free(h);
    return t;
}

// The last position's logits of every row into host rows: dst[(r * K + k) * card ...] = logits[k][r, n-1, :].
static void last_logits(gvm_ctx *ctx, gvm_tensor *const *logits, int64_t rows, int64_t K, int64_t card,
                        float *dst) {
    for (int64_t k = 0; k < K; k++) {
        const gvm_tensor *l = logits[k];  // [rows, n, card]
        const int64_t n = l->shape[1];
        gvm_tensor *h = NULL;
        const float *src;
        int64_t stride = n * card, offset = (n - 1) * card;
        if (l->device == GVM_DEVICE_CPU) {
            src = gvm_tensor_f32(l);
        } else {  // only the last position crosses to the host
            h = gvm_tensor_to(gvm_slice(ctx, logits[k], 1, n - 1, n), GVM_DEVICE_CPU);  // [rows, 1, card]
            src = gvm_tensor_f32(h);
            stride = card;
            offset = 0;
        }
        for (int64_t r = 0; r < rows; r++)
            memcpy(dst + (r * K + k) * card, src + r * stride + offset, (size_t)card * sizeof *dst);
        gvm_tensor_free(h);
    }
}

typedef struct arena_marks {
    gvm_arena_mark host, device;
} arena_marks;

static arena_marks marks_save(const gvm_ctx *ctx) {
    arena_marks m = {gvm_arena_save(&ctx->arena), {0}};
    if (ctx->device != GVM_DEVICE_CPU) m.device = gvm_arena_save(&ctx->device_arena);
    return m;
}

static void marks_rewind(gvm_ctx *ctx, arena_marks m) {
    gvm_arena_rewind(&ctx->arena, m.host);
    if (ctx->device != GVM_DEVICE_CPU) gvm_arena_rewind(&ctx->device_arena, m.device);
}

gvm_status gvm_nn_generate_lm(gvm_ctx *ctx, const gvm_nn_music_lm *lm, gvm_tensor *cond, gvm_tensor *cond_mask,
                              int64_t frames, const int64_t *prompt, int64_t prompt_num_codebooks,
                              int64_t prompt_frames, const gvm_nn_generate_opts *opts, int64_t *codes) {
    const gvm_status st =
        check_inputs(ctx, lm, cond, cond_mask, frames, prompt, prompt_num_codebooks, prompt_frames, opts);
    if (st != GVM_OK) return st;
    const int64_t K = lm->num_codebooks, card = lm->card, special = card, T = frames, P = prompt_frames;
    const int64_t B = cond->shape[0], S = gvm_delay_pattern_steps(T, K);
    const bool guided = opts->cfg_scale > 0.0f;
    const int64_t rows = guided ? 2 * B : B;  // LM batch

    // seq [B, K, S]: the known positions now (special, prompt), -1 where a code is still to be drawn
    int64_t *seq = GVM_MALLOC((size_t)(B * K * S) * sizeof *seq);
    for (int64_t b = 0; b < B; b++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t s = 0; s < S; s++)
                seq[(b * K + k) * S + s] = !gvm_delay_pattern_is_valid(s, k, T) ? special
                                           : s - k < P ? prompt[(b * K + k) * P + s - k] : -1;
    float *logits_h = GVM_MALLOC((size_t)(rows * K * card) * sizeof *logits_h);  // [rows, K, card]
    int64_t *drawn = GVM_MALLOC((size_t)(B * K) * sizeof *drawn);                // [B, K]

    const bool was_training = ctx->training;
    ctx->training = false;
    gvm_no_grad_begin(ctx);
    const arena_marks outer = marks_save(ctx);
    gvm_tensor *lm_cond = cond, *lm_mask = cond_mask;
    if (guided) guided_condition(ctx, cond, cond_mask, &lm_cond, &lm_mask);
    gvm_nn_music_lm_cache cache;
    gvm_nn_music_lm_cache_init(&cache, lm);
    const arena_marks per_step = marks_save(ctx);

    // seq[0 .. P-1] are all known (special or prompt), so input steps 0..P go in one call predicting seq[P];
    // then one input step per call. The draw of seq[s] uses step s of the random stream however it is fed.
    for (int64_t s = P; s < S; s++) {
        const int64_t first = s == P ? 0 : s, n = s - first + 1;
        gvm_tensor *in = input_tokens(ctx, seq, B, rows, K, S, first, n, special);  // [rows, K, n]
        gvm_tensor *lg[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
        gvm_nn_music_lm_forward(ctx, lm, in, lm_cond, lm_mask, &cache, lg);  // K x [rows, n, card]
        last_logits(ctx, lg, rows, K, card, logits_h);
        if (guided)  // rows 0..B-1 (cond) become the guided scores in place
            gvm_nn_sampling_cfg(logits_h, logits_h + B * K * card, B * K, card, opts->cfg_scale, logits_h);
        gvm_nn_sampling_sample(logits_h, B, K, card, &opts->sample, s, drawn);
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = 0; k < K; k++) {
                int64_t *v = &seq[(b * K + k) * S + s];
                if (*v < 0) *v = drawn[b * K + k];  // forced positions keep their token
            }
        marks_rewind(ctx, per_step);
        if (opts->progress) opts->progress(opts->progress_user, s + 1, S);
    }

    gvm_nn_music_lm_cache_free(&cache);
    marks_rewind(ctx, outer);
    gvm_no_grad_end(ctx);
    ctx->training = was_training;
    for (int64_t b = 0; b < B; b++)  // undo the delay: codes[b, k, t] = seq[b, k, t + k]
        for (int64_t k = 0; k < K; k++)
            for (int64_t t = 0; t < T; t++) codes[(b * K + k) * T + t] = seq[(b * K + k) * S + t + k];
    if (opts->seq_out) memcpy(opts->seq_out, seq, (size_t)(B * K * S) * sizeof *seq);
    free(seq);
    free(logits_h);
    free(drawn);
    return GVM_OK;
}

gvm_status gvm_nn_generate(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *cond, gvm_tensor *cond_mask,
                           int64_t frames, const int64_t *prompt, int64_t prompt_num_codebooks,
                           int64_t prompt_frames, const gvm_nn_generate_opts *opts, int64_t *codes) {
    if (cond && cond->ndim == 3 && cond->shape[2] != m->cond_dim)
        return gvm_error_set(GVM_ERR_INVALID, "generate: the condition has width %lld, the model's is %lld",
                             (long long)cond->shape[2], (long long)m->cond_dim);
    return gvm_nn_generate_lm(ctx, &m->lm, cond, cond_mask, frames, prompt, prompt_num_codebooks, prompt_frames,
                              opts, codes);
}
