// loader_batch.c: the batch loader's assembly of one batch: the ring slot's buffers (allocated once,
// page-locked for a CUDA consumer), and filling a row from a clip: CLIP normalisation of the frames into
// channel-first f32, truncation and padding to the fixed lengths, the masks; and the epoch permutation.
#include "data/loader_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "core/rng.h"
#ifdef GVM_HAVE_CUDA
#include "core/cuda/runtime.h"
#endif

// ---- normalisation ----------------------------------------------------------------------------------------------
// (v / 255 - mean[c]) / std[c] for every byte value, computed in double and rounded once: the table makes the
// per-pixel work a load, and each output is the correctly rounded double result.
static float g_lut[3][256];
static pthread_once_t g_lut_once = PTHREAD_ONCE_INIT;

static void lut_init(void) {
    static const double mean[3] = {GVM_CLIP_MEAN_R, GVM_CLIP_MEAN_G, GVM_CLIP_MEAN_B};
    static const double std[3] = {GVM_CLIP_STD_R, GVM_CLIP_STD_G, GVM_CLIP_STD_B};
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) g_lut[c][v] = (float)(((double)v / 255.0 - mean[c]) / std[c]);
}

// One frame: u8 [H*W, 3] (interleaved RGB) -> f32 [3, H*W] (planar).
static void normalise_frame(const uint8_t *restrict in, float *restrict out, int64_t hw) {
    float *restrict r = out, *restrict g = out + hw, *restrict b = out + 2 * hw;
    for (int64_t p = 0; p < hw; p++) {
        r[p] = g_lut[0][in[3 * p]];
        g[p] = g_lut[1][in[3 * p + 1]];
        b[p] = g_lut[2][in[3 * p + 2]];
    }
}

void gvm_loader_normalise_frames(const uint8_t *frames, int64_t count, int64_t hw, float *out) {
    pthread_once(&g_lut_once, lut_init);
    for (int64_t f = 0; f < count; f++) normalise_frame(frames + f * hw * 3, out + f * 3 * hw, hw);
}

// ---- slot buffers -----------------------------------------------------------------------------------------------
static void *buf_alloc(size_t bytes, bool pinned) {
#ifdef GVM_HAVE_CUDA
    if (pinned) return gvm_cuda_host_alloc(bytes);
#else
    (void)pinned;
#endif
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 64) == 0 ? p : NULL;
}

static void buf_free(void *p, bool pinned) {
#ifdef GVM_HAVE_CUDA
    if (pinned) {
        gvm_cuda_host_free(p);
        return;
    }
#else
    (void)pinned;
#endif
    free(p);
}

// A tensor wrapping a new buffer of numel elements; NULL (and *bytes_out the size) when out of memory.
static gvm_tensor *wrap_new(gvm_dtype dtype, int ndim, const int64_t *shape, bool pinned, size_t *bytes_out) {
    size_t bytes = gvm_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) bytes *= (size_t)shape[i];  // sizes were bounded by the caller
    *bytes_out = bytes;
    void *data = buf_alloc(bytes, pinned);
    if (!data) return NULL;
    return gvm_tensor_wrap(dtype, ndim, shape, data);
}

static void wrap_free(gvm_tensor *t, bool pinned) {
    if (!t) return;
    buf_free(t->data, pinned);
    gvm_tensor_free(t);
}

gvm_status gvm_loader_slot_alloc(gvm_loader_slot *slot, const gvm_loader_shape *s) {
    memset(slot, 0, sizeof *slot);
    int64_t B = s->batch;
    slot->clip = calloc((size_t)B, sizeof(int64_t));
    slot->shard_clip = calloc((size_t)B, sizeof(int64_t));
    slot->shard = calloc((size_t)B, sizeof(int32_t));
    slot->frame_len = calloc((size_t)B, sizeof(int64_t));
    slot->code_len = calloc((size_t)B, sizeof(int64_t));
    slot->audio_len = calloc((size_t)B, sizeof(int64_t));
    size_t bytes = 0;
    bool ok = slot->clip && slot->shard_clip && slot->shard && slot->frame_len && slot->code_len && slot->audio_len;
    if (ok && (s->parts & GVM_CLIP_FRAMES)) {
        int64_t fs[5] = {B, s->frames, 3, s->height, s->width}, ms[2] = {B, s->frames};
        ok = (slot->frames = wrap_new(GVM_F32, 5, fs, s->pinned, &bytes)) != NULL &&
             (slot->frame_mask = wrap_new(GVM_BOOL, 2, ms, s->pinned, &bytes)) != NULL;
    }
    if (ok && (s->parts & GVM_CLIP_FEATURES)) {
        int64_t fs[4] = {B, s->frames, s->feature_tokens, s->feature_dim}, ms[2] = {B, s->frames};
        ok = (slot->features = wrap_new(GVM_F32, 4, fs, s->pinned, &bytes)) != NULL &&
             (slot->frame_mask || (slot->frame_mask = wrap_new(GVM_BOOL, 2, ms, s->pinned, &bytes)) != NULL);
    }
    if (ok && (s->parts & GVM_CLIP_CODES)) {
        int64_t cs[3] = {B, s->codebooks, s->code_steps}, ms[2] = {B, s->code_steps};
        ok = (slot->codes = wrap_new(GVM_I32, 3, cs, s->pinned, &bytes)) != NULL &&
             (slot->code_mask = wrap_new(GVM_BOOL, 2, ms, s->pinned, &bytes)) != NULL;
    }
    if (ok && (s->parts & GVM_CLIP_AUDIO)) {
        int64_t as[2] = {B, s->audio_samples};
        ok = (slot->audio = wrap_new(GVM_F32, 2, as, s->pinned, &bytes)) != NULL &&
             (slot->audio_mask = wrap_new(GVM_BOOL, 2, as, s->pinned, &bytes)) != NULL;
    }
    if (!ok) {
        gvm_loader_slot_free(slot, s);
        return gvm_error_set(GVM_ERR_MEMORY, "loader: out of memory allocating a batch buffer of %zu bytes (%s); use "
                             "a smaller batch_size, fewer frames/samples, or a smaller prefetch depth", bytes,
                             s->pinned ? "page-locked" : "host");
    }
    for (int64_t i = 0; i < B; i++) gvm_loader_pad_row(slot, s, i);  // touch every page once, at open
    return GVM_OK;
}

void gvm_loader_slot_free(gvm_loader_slot *slot, const gvm_loader_shape *s) {
    free(slot->clip);
    free(slot->shard_clip);
    free(slot->shard);
    free(slot->frame_len);
    free(slot->code_len);
    free(slot->audio_len);
    wrap_free(slot->frames, s->pinned);
    wrap_free(slot->features, s->pinned);
    wrap_free(slot->frame_mask, s->pinned);
    wrap_free(slot->codes, s->pinned);
    wrap_free(slot->code_mask, s->pinned);
    wrap_free(slot->audio, s->pinned);
    wrap_free(slot->audio_mask, s->pinned);
    memset(slot, 0, sizeof *slot);
}

// ---- rows -------------------------------------------------------------------------------------------------------
static void pad_codes(int32_t *codes, int64_t n, int32_t pad) {
    for (int64_t i = 0; i < n; i++) codes[i] = pad;
}

void gvm_loader_pad_row(gvm_loader_slot *slot, const gvm_loader_shape *s, int64_t row) {
    slot->clip[row] = -1;
    slot->shard_clip[row] = -1;
    slot->shard[row] = -1;
    slot->frame_len[row] = slot->code_len[row] = slot->audio_len[row] = 0;
    if (slot->frames) {
        int64_t n = s->frames * 3 * s->height * s->width;
        memset(gvm_tensor_f32(slot->frames) + row * n, 0, (size_t)n * sizeof(float));
    }
    if (slot->features) {
        int64_t n = s->frames * s->feature_tokens * s->feature_dim;
        memset(gvm_tensor_f32(slot->features) + row * n, 0, (size_t)n * sizeof(float));
    }
    if (slot->frame_mask) memset(gvm_tensor_u8(slot->frame_mask) + row * s->frames, 0, (size_t)s->frames);
    if (slot->codes) {
        pad_codes(gvm_tensor_i32(slot->codes) + row * s->codebooks * s->code_steps, s->codebooks * s->code_steps,
                  s->code_pad);
        memset(gvm_tensor_u8(slot->code_mask) + row * s->code_steps, 0, (size_t)s->code_steps);
    }
    if (slot->audio) {
        memset(gvm_tensor_f32(slot->audio) + row * s->audio_samples, 0, (size_t)s->audio_samples * sizeof(float));
        memset(gvm_tensor_u8(slot->audio_mask) + row * s->audio_samples, 0, (size_t)s->audio_samples);
    }
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Valid entries first, then the mask: 1 for the first n of len, 0 after.
static void set_mask(uint8_t *mask, int64_t n, int64_t len) {
    memset(mask, 1, (size_t)n);
    memset(mask + n, 0, (size_t)(len - n));
}

gvm_status gvm_loader_fill_row(gvm_loader_slot *slot, const gvm_loader_shape *s, int64_t row, const gvm_clip *clip,
                               const char *where) {
    // Check everything before writing, so a failed row leaves nothing half-written behind it.
    const gvm_codes *c = &clip->codes;
    if (s->parts & GVM_CLIP_CODES) {
        if (c->k == 0 || !c->data)
            return gvm_error_set(GVM_ERR_FORMAT, "%s: the clip has no codec codes: run `gvm encode` on the shard, or "
                                 "train without codes", where);
        if (s->codec && strcmp(c->codec ? c->codec : "", s->codec) != 0)
            return gvm_error_set(GVM_ERR_FORMAT, "%s: the codes were made by codec '%s', the run wants '%s': re-run "
                                 "`gvm encode` with the run's codec", where, c->codec ? c->codec : "", s->codec);
        if (c->k < s->codebooks)
            return gvm_error_set(GVM_ERR_FORMAT, "%s: the codes have %d codebooks, the run wants %d: re-encode the "
                                 "shard or lower the number of codebooks", where, (int)c->k, (int)s->codebooks);
    }
    if ((s->parts & GVM_CLIP_FRAMES) && (clip->height != s->height || clip->width != s->width || !clip->frames))
        return gvm_error_set(GVM_ERR_FORMAT, "%s: frames are %dx%d, the run's shards have %lldx%lld", where,
                             (int)clip->height, (int)clip->width, (long long)s->height, (long long)s->width);
    if ((s->parts & GVM_CLIP_AUDIO) && !clip->audio)
        return gvm_error_set(GVM_ERR_FORMAT, "%s: the clip has no audio", where);
    const gvm_features *ft = &clip->features;
    if (s->parts & GVM_CLIP_FEATURES) {
        if (ft->t == 0 || !ft->data)
            return gvm_error_set(GVM_ERR_FORMAT, "%s: the clip has no cached vision features: let gvm train fill the "
                                 "cache (model.vision.cache_features: true) or train from frames", where);
        if (ft->tokens != s->feature_tokens || ft->dim != s->feature_dim)
            return gvm_error_set(GVM_ERR_FORMAT, "%s: cached features are %lld tokens x %lld, the run wants %lld x %lld: "
                                 "they were made by another vision model; let gvm train rebuild the cache", where,
                                 (long long)ft->tokens, (long long)ft->dim, (long long)s->feature_tokens,
                                 (long long)s->feature_dim);
        if (s->feature_source && strcmp(ft->source ? ft->source : "", s->feature_source) != 0)
            return gvm_error_set(GVM_ERR_FORMAT, "%s: cached features come from '%s', the run's vision model is '%s': "
                                 "let gvm train rebuild the cache", where, ft->source ? ft->source : "",
                                 s->feature_source);
    }

    if (s->parts & GVM_CLIP_FRAMES) {
        int64_t hw = s->height * s->width, n = min64(clip->num_frames, s->frames);
        float *out = gvm_tensor_f32(slot->frames) + row * s->frames * 3 * hw;
        gvm_loader_normalise_frames(clip->frames, n, hw, out);
        memset(out + n * 3 * hw, 0, (size_t)((s->frames - n) * 3 * hw) * sizeof(float));
        set_mask(gvm_tensor_u8(slot->frame_mask) + row * s->frames, n, s->frames);
        slot->frame_len[row] = n;
    }
    if (s->parts & GVM_CLIP_FEATURES) {
        const int64_t per = s->feature_tokens * s->feature_dim, n = min64(ft->t, s->frames);
        float *out = gvm_tensor_f32(slot->features) + row * s->frames * per;
        gvm_f16_to_f32_array(ft->data, out, (size_t)(n * per));
        memset(out + n * per, 0, (size_t)((s->frames - n) * per) * sizeof(float));
        set_mask(gvm_tensor_u8(slot->frame_mask) + row * s->frames, n, s->frames);
        slot->frame_len[row] = n;
    }
    if (s->parts & GVM_CLIP_CODES) {
        int64_t n = min64(c->t, s->code_steps);
        int32_t *out = gvm_tensor_i32(slot->codes) + row * s->codebooks * s->code_steps;
        for (int32_t k = 0; k < s->codebooks; k++) {
            const int16_t *in = c->data + (int64_t)k * c->t;  // stored [K_clip, T]: row k is codebook k
            int32_t *o = out + (int64_t)k * s->code_steps;
            for (int64_t t = 0; t < n; t++) o[t] = in[t];
            pad_codes(o + n, s->code_steps - n, s->code_pad);
        }
        set_mask(gvm_tensor_u8(slot->code_mask) + row * s->code_steps, n, s->code_steps);
        slot->code_len[row] = n;
    }
    if (s->parts & GVM_CLIP_AUDIO) {
        int64_t n = min64(clip->num_samples, s->audio_samples);
        float *out = gvm_tensor_f32(slot->audio) + row * s->audio_samples;
        memcpy(out, clip->audio, (size_t)n * sizeof(float));
        memset(out + n, 0, (size_t)(s->audio_samples - n) * sizeof(float));
        set_mask(gvm_tensor_u8(slot->audio_mask) + row * s->audio_samples, n, s->audio_samples);
        slot->audio_len[row] = n;
    }
    return GVM_OK;
}

// ---- the epoch permutation ----------------------------------------------------------------------------------------
void gvm_loader_permutation(uint64_t seed, int64_t epoch, int64_t m, bool shuffle, int64_t *out) {
    for (int64_t i = 0; i < m; i++) out[i] = i;
    if (!shuffle) return;
    uint64_t draw = 0;
    for (int64_t i = m - 1; i > 0; i--) {
        uint64_t n = (uint64_t)i + 1, limit = UINT64_MAX - UINT64_MAX % n, x;
        do {
            uint32_t w[4];
            gvm_philox4x32(seed, draw++, (uint64_t)epoch, w);
            x = ((uint64_t)w[0] << 32) | w[1];
        } while (x >= limit);
        int64_t j = (int64_t)(x % n), t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}
