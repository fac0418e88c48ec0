// dataset_fixture.h: what the dataset tests (test_data_dataset.c, test_data_dataset_errors.c) share: a
// temporary folder, synthetic clips with known content, a bit-exact comparison of a clip read back with
// the one written, and small file helpers. Header-only so each test stays one program.
#ifndef GVM_TESTS_DATASET_FIXTURE_H
#define GVM_TESTS_DATASET_FIXTURE_H

#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "tests/file_fixture.h"
#include "tests/test_util.h"

static char g_dir[256];

static inline const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

static inline bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}


// ---- synthetic clips ----------------------------------------------------------------------------------------------
static uint64_t g_rng;
static inline uint32_t rnd(void) {  // xorshift64*: a reproducible stream without the core RNG's machinery
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 2685821657736338717ull) >> 32);
}

enum { H = 12, W = 20 };  // small, and not square, so a transposed frame would show

typedef struct owned_clip {
    gvm_clip c;
    char id[64], style[64];
    uint8_t *frames;
    float *audio;
    int16_t *codes;
    uint16_t *feat;
} owned_clip;

static inline void make_clip(owned_clip *o, uint64_t seed, const char *id, const char *style, int64_t tv, int64_t ta,
                      int32_t k, int64_t tm, int64_t tokens, int64_t dim) {
    memset(o, 0, sizeof *o);
    g_rng = seed * 0x9E3779B97F4A7C15ull + 1;
    snprintf(o->id, sizeof o->id, "%s", id);
    if (style) snprintf(o->style, sizeof o->style, "%s", style);
    o->frames = malloc((size_t)(tv * H * W * 3));
    for (int64_t i = 0; i < tv * H * W * 3; i++) o->frames[i] = (uint8_t)rnd();
    o->audio = malloc((size_t)ta * sizeof(float));
    for (int64_t i = 0; i < ta; i++) o->audio[i] = (float)((int32_t)rnd()) / 2147483648.0f;
    // Values that a careless conversion would change: -0, a subnormal, the ends of the range.
    float special[4] = {-0.0f, 1e-40f, 1.0f, -1.0f};
    for (int i = 0; i < 4 && i < ta; i++) o->audio[i] = special[i];
    o->c = (gvm_clip){.clip_id = o->id, .source_file = "media/source file é.mp4", .style = style ? o->style : NULL,
                      .split = seed % 2 ? "eval" : "train", .start_time = 30.0 * (double)seed + 0.25,
                      .duration = (double)ta / 32000.0, .fps = 1.0, .sample_rate = 32000, .frames = o->frames,
                      .num_frames = tv, .height = H, .width = W, .audio = o->audio, .num_samples = ta};
    if (k > 0) {
        o->codes = malloc((size_t)(k * tm) * sizeof(int16_t));
        for (int64_t i = 0; i < k * tm; i++) o->codes[i] = (int16_t)(rnd() % 2048);
        o->codes[0] = -32768;
        o->codes[k * tm - 1] = 32767;
        o->c.codes = (gvm_codes){o->codes, k, tm, 50.0, "encodec_32khz"};
    }
    if (tokens > 0) {
        int64_t n = tv * tokens * dim;
        o->feat = malloc((size_t)n * sizeof(uint16_t));
        for (int64_t i = 0; i < n; i++) o->feat[i] = gvm_f32_to_f16((float)((int32_t)rnd()) / 1e9f);
        o->c.features = (gvm_features){o->feat, tv, tokens, dim, "test-vit/layer-2"};
    }
}

static inline void free_clip(owned_clip *o) {
    free(o->frames);
    free(o->audio);
    free(o->codes);
    free(o->feat);
}

// HDF5 objects (datasets, groups, attributes) open in any file: the library must close what it opens, or a
// long-running loader would pile them up (the files' strong close degree would hide it until close).
static inline ssize_t open_h5_objects(void) {
    return H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_ATTR | H5F_OBJ_DATATYPE);
}

static inline bool str_eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

// The first difference between a clip read back and what was written ("" when none), for the parts asked.
static inline const char *clip_diff(const gvm_clip *got, const gvm_clip *want, unsigned parts) {
    if (!str_eq(got->clip_id, want->clip_id)) return "clip_id";
    if (!str_eq(got->source_file, want->source_file ? want->source_file : "")) return "source_file";
    if (!str_eq(got->style, want->style ? want->style : "")) return "style";
    if (!str_eq(got->split, want->split ? want->split : "train")) return "split";
    if (got->start_time != want->start_time || got->duration != want->duration || got->fps != want->fps ||
        got->sample_rate != want->sample_rate)
        return "numeric metadata";
    if (got->num_frames != want->num_frames || got->height != want->height || got->width != want->width ||
        got->num_samples != want->num_samples)
        return "frame or audio shape";
    size_t fbytes = (size_t)(want->num_frames * want->height * want->width * 3);
    if ((parts & GVM_CLIP_FRAMES) ? !got->frames || memcmp(got->frames, want->frames, fbytes) != 0
                                  : got->frames != NULL)
        return "frames";
    if ((parts & GVM_CLIP_AUDIO) ? !got->audio || memcmp(got->audio, want->audio, (size_t)want->num_samples * 4) != 0
                                 : got->audio != NULL)
        return "audio (bits)";
    const gvm_codes *gc = &got->codes, *wc = &want->codes;
    if (wc->data) {
        if (gc->k != wc->k || gc->t != wc->t || gc->frame_rate != wc->frame_rate || !str_eq(gc->codec, wc->codec))
            return "codes shape or attributes";
        if ((parts & GVM_CLIP_CODES) ? !gc->data || memcmp(gc->data, wc->data, (size_t)(wc->k * wc->t) * 2) != 0
                                     : gc->data != NULL)
            return "codes";
    } else if (gc->k != 0 || gc->data) {
        return "codes present where none were written";
    }
    const gvm_features *gf = &got->features, *wf = &want->features;
    if (wf->data) {
        if (gf->t != wf->t || gf->tokens != wf->tokens || gf->dim != wf->dim || !str_eq(gf->source, wf->source))
            return "features shape or source";
        size_t n = (size_t)(wf->t * wf->tokens * wf->dim) * 2;
        if ((parts & GVM_CLIP_FEATURES) ? !gf->data || memcmp(gf->data, wf->data, n) != 0 : gf->data != NULL)
            return "features";
    } else if (gf->t != 0 || gf->data) {
        return "features present where none were written";
    }
    return "";
}

static const gvm_shard_info k_info = {H, W, 1.0, 32000, "gvm test_data_dataset"};

enum { N_CLIPS = 5 };
static owned_clip g_clips[N_CLIPS];

static inline void make_clips(void) {
    make_clip(&g_clips[0], 1, "clip-000", "guzheng 古筝", 3, 1000, 0, 0, 0, 0);
    // Longer than one audio chunk (65536 samples), with codes and features.
    make_clip(&g_clips[1], 2, "clip-001", "电影配乐 film score", 5, 70001, 4, 37, 2, 8);
    make_clip(&g_clips[2], 3, "yt/abc.mp4#0003", NULL, 1, 1, 4, 1, 0, 0);  // an id with '/', defaults for strings
    make_clip(&g_clips[3], 4, "clip-003", "vlog", 2, 500, 0, 0, 1, 5);
    make_clip(&g_clips[4], 5, "clip-004", "", 4, 32000, 2, 50, 3, 4);
    g_clips[2].c.source_file = NULL;
    g_clips[2].c.split = NULL;
}

static inline gvm_status write_shard(const char *path, int n) {
    gvm_shard_writer *w;
    gvm_status st = gvm_shard_create(path, &k_info, &w);
    for (int i = 0; st == GVM_OK && i < n; i++) st = gvm_shard_add_clip(w, &g_clips[i].c);
    if (st != GVM_OK) {
        gvm_shard_writer_close(w, false);
        return st;
    }
    return gvm_shard_writer_close(w, true);
}


static inline void check_shard(const char *path, const gvm_clip *const *want, int n, const char *name) {
    gvm_shard *s;
    gvm_status st = gvm_shard_open(path, &s);
    if (!TEST_CHECK(st == GVM_OK, name, "open: %s", gvm_error_message())) return;
    TEST_CHECK(gvm_shard_clip_count(s) == n, name, "count %lld", (long long)gvm_shard_clip_count(s));
    for (int i = 0; i < n && i < gvm_shard_clip_count(s); i++) {
        gvm_clip got;
        st = gvm_shard_read_clip(s, i, &got);
        const char *d = st == GVM_OK ? clip_diff(&got, want[i], GVM_CLIP_ALL) : gvm_error_message();
        TEST_CHECK(!d[0], name, "clip %d: %s", i, d);
        gvm_clip_free(&got);
    }
    gvm_shard_close(s);
}

// Another process updates the shard: HDF5's file lock makes our reader fail with a clear error (on a

// The temporary folder every test file goes into (under $TMPDIR or /tmp), and its removal.
static inline void fixture_setup(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/gvm_test_dataset_XXXXXX", base);
    GVM_CHECK(mkdtemp(g_dir), "mkdtemp %s: %s", g_dir, strerror(errno));
    make_clips();
}

static inline void fixture_teardown(void) {
    ssize_t files = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE);
    TEST_CHECK(files == 0, "no HDF5 files left open", "%zd", files);
    for (int i = 0; i < N_CLIPS; i++) free_clip(&g_clips[i]);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

#endif
