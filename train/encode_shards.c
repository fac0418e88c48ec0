// encode_shards.c: codec codes into dataset shards (train/encode_shards.h).
#define _POSIX_C_SOURCE 200809L
#include "train/encode_shards.h"

#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "data/dataset.h"
#include "train/run_files.h"

typedef struct pending_codes {
    int64_t index;
    int16_t *data;  // [K, T]
    int64_t t;
} pending_codes;

// One clip's audio -> codes int16 [K, T] (heap). The context's arena is reset afterwards.
static gvm_status encode_clip(gvm_ctx *ctx, gvm_codec *codec, const gvm_clip *clip, pending_codes *out) {
    const int K = (int)codec->model.cfg.num_quantizers;
    gvm_tensor *wave = gvm_tensor_empty(ctx, GVM_F32, 3, (int64_t[]){1, 1, clip->num_samples});
    memcpy(gvm_tensor_f32(wave), clip->audio, (size_t)clip->num_samples * sizeof(float));
    gvm_tensor *codes = gvm_nn_encodec_encode(ctx, &codec->model, wave, K);  // [1, K, T] i64
    const int64_t T = codes->shape[2];
    out->t = T;
    out->data = malloc((size_t)(K * T) * sizeof(int16_t));
    if (!out->data) {
        gvm_ctx_reset(ctx);
        return gvm_error_set(GVM_ERR_MEMORY, "out of memory for %lld codes", (long long)(K * T));
    }
    const int64_t *c = gvm_tensor_i64(codes);
    for (int64_t i = 0; i < K * T; i++) out->data[i] = (int16_t)c[i];  // codebook sizes are <= 32768 (checked)
    gvm_ctx_reset(ctx);
    return GVM_OK;
}

static gvm_status encode_shard(gvm_ctx *ctx, gvm_codec *codec, const char *path, bool force, FILE *log,
                               gvm_encode_stats *s) {
    gvm_shard *sh = NULL;
    gvm_status st = gvm_shard_open(path, &sh);
    if (st != GVM_OK) return st;
    const gvm_shard_info *info = gvm_shard_get_info(sh);
    if (info->sample_rate != codec->model.cfg.sampling_rate) {
        st = gvm_error_set(GVM_ERR_INVALID, "%s: audio at %d Hz, but codec '%s' takes %lld Hz: re-run gvm prep with "
                           "--rate %lld", path, info->sample_rate, codec->name,
                           (long long)codec->model.cfg.sampling_rate, (long long)codec->model.cfg.sampling_rate);
        gvm_shard_close(sh);
        return st;
    }
    const int64_t count = gvm_shard_clip_count(sh);
    pending_codes *todo = calloc((size_t)count + 1, sizeof *todo);
    int n = 0;
    int64_t skipped = 0, failed = 0;
    gvm_status first_err = GVM_OK;
    char first_msg[1024] = "";
    for (int64_t i = 0; i < count; i++) {
        gvm_clip clip;
        st = gvm_shard_read_clip_parts(sh, i, 0, &clip);
        bool fresh = st == GVM_OK && clip.codes.k > 0 && clip.codes.codec && strcmp(clip.codes.codec, codec->name) == 0 &&
                     clip.codes.k == codec->model.cfg.num_quantizers;
        if (st == GVM_OK) gvm_clip_free(&clip);
        if (st == GVM_OK && fresh && !force) {
            skipped++;
            continue;
        }
        if (st == GVM_OK) st = gvm_shard_read_clip_parts(sh, i, GVM_CLIP_AUDIO, &clip);
        if (st == GVM_OK) {
            st = encode_clip(ctx, codec, &clip, &todo[n]);
            if (st == GVM_OK) {
                todo[n++].index = i;
                s->audio_seconds += (double)clip.num_samples / (double)info->sample_rate;
            }
            gvm_clip_free(&clip);
        }
        if (st != GVM_OK) {  // this clip only: the others go on
            failed++;
            if (log) fprintf(log, "gvm encode: %s\n", gvm_error_message());
            if (first_err == GVM_OK) {
                first_err = st;
                snprintf(first_msg, sizeof first_msg, "%s", gvm_error_message());
            }
        }
    }
    gvm_shard_close(sh);
    st = GVM_OK;
    if (n > 0) {
        gvm_shard_updater *u = NULL;
        st = gvm_shard_update_open(path, &u);
        const double rate = gvm_nn_encodec_frame_rate(&codec->model.cfg);
        for (int i = 0; st == GVM_OK && i < n; i++) {
            const gvm_codes c = {.data = todo[i].data, .k = (int32_t)codec->model.cfg.num_quantizers, .t = todo[i].t,
                                 .frame_rate = rate, .codec = codec->name};
            st = gvm_shard_update_codes(u, todo[i].index, &c);
        }
        gvm_status cst = gvm_shard_update_close(u);
        if (st == GVM_OK) st = cst;
    }
    for (int i = 0; i < n; i++) free(todo[i].data);
    free(todo);
    s->clips += count;
    s->skipped += skipped;
    s->failed += failed;
    if (st == GVM_OK) s->encoded += n;
    else s->failed += n;
    if (log && st == GVM_OK)
        fprintf(log, "gvm encode: %s: %d clips encoded, %lld already had '%s' codes%s\n", path, n, (long long)skipped,
                codec->name, failed ? ", some failed (above)" : "");
    if (st == GVM_OK && first_err != GVM_OK) st = gvm_error_set(first_err, "%s", first_msg);
    return st;
}

gvm_status gvm_encode_shards(gvm_codec *codec, const char *const *paths, int n, bool force, FILE *log,
                             gvm_encode_stats *stats) {
    *stats = (gvm_encode_stats){0};
    GVM_CHECK(codec->model.cfg.codebook_size <= 32768, "codec: codes must fit int16");
    gvm_ctx *ctx = gvm_ctx_new(0);
    ctx->training = false;
    gvm_no_grad_begin(ctx);
    const double t0 = gvm_run_now();
    gvm_status first = GVM_OK;
    char msg[1024] = "";
    for (int i = 0; i < n; i++) {
        stats->shards++;
        gvm_status st = encode_shard(ctx, codec, paths[i], force, log, stats);
        if (st != GVM_OK) {
            if (log) fprintf(log, "gvm encode: %s\n", gvm_error_message());
            if (first == GVM_OK) {
                first = st;
                snprintf(msg, sizeof msg, "%s", gvm_error_message());
            }
            stats->shards_failed++;
        }
    }
    stats->seconds = gvm_run_now() - t0;
    gvm_no_grad_end(ctx);
    gvm_ctx_free(ctx);
    return first == GVM_OK ? GVM_OK : gvm_error_set(first, "%s", msg);
}
