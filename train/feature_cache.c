// feature_cache.c: filling the shards' vision-feature cache (train/feature_cache.h).
#define _POSIX_C_SOURCE 200809L
#include "train/feature_cache.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/device.h"
#include "core/half.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "train/run_files.h"

enum { GROUP_BYTES = 512 << 20 };  // features held before a group is written back

const char *gvm_feature_source(const gvm_nn_gvmgen *m, char *buf) {
    const gvm_param_store *ps = m->ps;
    const gvm_nn_vit *v = &m->vision;
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 over every ViT parameter's name and f32 bytes
    const int first = m->first[GVM_NN_GVMGEN_VISION], count = m->count[GVM_NN_GVMGEN_VISION];
    float *host = NULL;
    size_t cap = 0;
    for (int i = first; i < first + count; i++) {
        const gvm_tensor *t = ps->params[i];
        for (const char *c = t->name ? t->name : ""; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
        const size_t n = (size_t)t->numel;
        if (n > cap) {
            free(host);
            host = malloc(n * sizeof *host);
            GVM_CHECK(host, "out of memory hashing the ViT");
            cap = n;
        }
        gvm_device_copy(host, GVM_DEVICE_CPU, t->data, t->device, n * sizeof *host);
        const uint8_t *b = (const uint8_t *)host;
        for (size_t j = 0; j < n * sizeof *host; j++) h = (h ^ b[j]) * 0x100000001b3ull;
    }
    free(host);
    snprintf(buf, GVM_FEATURE_SOURCE_MAX, "gvm-vit img%lld patch%lld w%lld l%lld params:%016llx",
             (long long)v->image_size, (long long)v->patch_size, (long long)v->width, (long long)v->n_layers,
             (unsigned long long)h);
    return buf;
}

// One clip's tokens: frames u8 [T, S, S, 3] -> out f16 [T, N+1, W], frame_batch frames per ViT forward.
static void compute_clip(gvm_ctx *ctx, const gvm_nn_gvmgen *m, const gvm_clip *clip, int frame_batch,
                         float *host_frames, float *host_tokens, uint16_t *out) {
    const gvm_nn_vit *v = &m->vision;
    const int64_t S = v->image_size, hw = S * S, per = v->n_tokens * v->width;
    for (int64_t f0 = 0; f0 < clip->num_frames; f0 += frame_batch) {
        const int64_t n = clip->num_frames - f0 < frame_batch ? clip->num_frames - f0 : frame_batch;
        gvm_loader_normalise_frames(clip->frames + f0 * hw * 3, n, hw, host_frames);  // [n, 3, S, S]
        gvm_tensor *frames = gvm_tensor_empty(ctx, GVM_F32, 5, (int64_t[]){1, n, 3, S, S});
        gvm_device_copy(frames->data, frames->device, host_frames, GVM_DEVICE_CPU, (size_t)(n * 3 * hw) * sizeof(float));
        gvm_tensor *tokens = gvm_nn_gvmgen_vision_tokens(ctx, m, frames);  // [1, n, N+1, W]
        gvm_device_copy(host_tokens, GVM_DEVICE_CPU, tokens->data, tokens->device, (size_t)(n * per) * sizeof(float));
        gvm_f32_to_f16_array(host_tokens, out + f0 * per, (size_t)(n * per));
        gvm_ctx_reset(ctx);
    }
}

typedef struct pending_clip {
    int64_t index;
    int64_t t;
    uint16_t *data;  // [t, N+1, W] f16
} pending_clip;

static gvm_status write_group(const char *path, pending_clip *group, int n, int64_t tokens, int64_t dim,
                              const char *source) {
    gvm_shard_updater *u = NULL;
    gvm_status st = gvm_shard_update_open(path, &u);
    for (int i = 0; st == GVM_OK && i < n; i++) {
        const gvm_features f = {.data = group[i].data, .t = group[i].t, .tokens = tokens, .dim = dim, .source = source};
        st = gvm_shard_update_features(u, group[i].index, &f);
    }
    gvm_status cst = gvm_shard_update_close(u);
    return st != GVM_OK ? st : cst;
}

// The clips of one shard that need features, filled group by group.
static gvm_status fill_shard(gvm_ctx *ctx, const gvm_nn_gvmgen *m, const char *path, const char *source,
                             int frame_batch, FILE *log, gvm_feature_cache_stats *stats) {
    const gvm_nn_vit *v = &m->vision;
    const int64_t per = v->n_tokens * v->width, S = v->image_size;
    gvm_shard *sh = NULL;
    gvm_status st = gvm_shard_open(path, &sh);
    if (st != GVM_OK) return st;
    const int64_t count = gvm_shard_clip_count(sh);
    const gvm_shard_info *info = gvm_shard_get_info(sh);
    if (info->frame_height != S || info->frame_width != S) {
        st = gvm_error_set(GVM_ERR_INVALID, "%s: frames are %dx%d but the ViT takes %lldx%lld", path,
                           info->frame_width, info->frame_height, (long long)S, (long long)S);
        gvm_shard_close(sh);
        return st;
    }
    float *host_frames = malloc((size_t)(frame_batch * 3 * S * S) * sizeof(float));
    float *host_tokens = malloc((size_t)(frame_batch * per) * sizeof(float));
    pending_clip *group = calloc((size_t)count + 1, sizeof *group);
    if (!host_frames || !host_tokens || !group) st = gvm_error_set(GVM_ERR_MEMORY, "feature cache: out of memory");
    int n_group = 0;
    size_t group_bytes = 0;
    int64_t done_here = 0;
    for (int64_t i = 0; st == GVM_OK && i <= count; i++) {
        // Write the group back when it is full or the shard is done (the reader closes first: HDF5 does not
        // open a file for writing that the process holds open read-only).
        if (n_group > 0 && (i == count || group_bytes >= GROUP_BYTES)) {
            gvm_shard_close(sh);
            sh = NULL;
            st = write_group(path, group, n_group, v->n_tokens, v->width, source);
            for (int g = 0; g < n_group; g++) free(group[g].data);
            n_group = 0;
            group_bytes = 0;
            if (st == GVM_OK && i < count) st = gvm_shard_open(path, &sh);
            if (st != GVM_OK) break;
        }
        if (i == count) break;
        gvm_clip meta;
        if ((st = gvm_shard_read_clip_parts(sh, i, 0, &meta)) != GVM_OK) break;
        stats->clips++;
        const bool fresh = meta.features.t == meta.num_frames && meta.features.tokens == v->n_tokens &&
                           meta.features.dim == v->width && meta.features.source &&
                           strcmp(meta.features.source, source) == 0;
        gvm_clip_free(&meta);
        if (fresh) continue;
        gvm_clip clip;
        if ((st = gvm_shard_read_clip_parts(sh, i, GVM_CLIP_FRAMES, &clip)) != GVM_OK) break;
        const size_t bytes = (size_t)(clip.num_frames * per) * sizeof(uint16_t);
        uint16_t *data = malloc(bytes);
        if (!data) {
            gvm_clip_free(&clip);
            st = gvm_error_set(GVM_ERR_MEMORY, "feature cache: out of memory for %zu bytes", bytes);
            break;
        }
        compute_clip(ctx, m, &clip, frame_batch, host_frames, host_tokens, data);
        group[n_group++] = (pending_clip){.index = i, .t = clip.num_frames, .data = data};
        group_bytes += bytes;
        stats->computed++;
        stats->frames += clip.num_frames;
        done_here++;
        gvm_clip_free(&clip);
    }
    for (int g = 0; g < n_group; g++) free(group[g].data);
    gvm_shard_close(sh);
    free(host_frames);
    free(host_tokens);
    free(group);
    if (st == GVM_OK && log && done_here > 0)
        fprintf(log, "feature cache: %s: %lld of %lld clips computed\n", path, (long long)done_here, (long long)count);
    return st;
}

gvm_status gvm_feature_cache_fill(gvm_ctx *ctx, const gvm_nn_gvmgen *m, const char *dir, const char *split,
                                  const char *source, int frame_batch, FILE *log, gvm_feature_cache_stats *stats) {
    *stats = (gvm_feature_cache_stats){0};
    if (frame_batch <= 0) frame_batch = 8;
    GVM_CHECK(m->frozen[GVM_NN_GVMGEN_VISION], "feature cache: the ViT must be frozen");
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/%s-*.h5", dir, split);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0) {
        globfree(&g);
        return GVM_OK;
    }
    const double t0 = gvm_run_now();
    const bool was_training = ctx->training;
    ctx->training = false;
    gvm_no_grad_begin(ctx);
    gvm_status st = GVM_OK;
    for (size_t i = 0; st == GVM_OK && i < g.gl_pathc; i++)
        st = fill_shard(ctx, m, g.gl_pathv[i], source, frame_batch, log, stats);
    gvm_no_grad_end(ctx);
    ctx->training = was_training;
    globfree(&g);
    stats->seconds = gvm_run_now() - t0;
    return st;
}
