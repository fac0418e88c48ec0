// train_fixture.h: what the tests of train/ share: a temporary folder and paths in it, synthetic shards of
// random frames and codes, a config from key=value lists, a model built from a config (random or loaded), a
// loss recorder for gvm_train_opts.on_step, and byte comparison of files. Header-only (static inline), like
// media_fixture.h, so each test program stays one file.
#ifndef GVM_TEST_TRAIN_FIXTURE_H
#define GVM_TEST_TRAIN_FIXTURE_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/rng.h"
#include "data/dataset.h"
#include "nn/gvmgen.h"
#include "tests/test_util.h"
#include "train/config.h"
#include "train/loop.h"

static char g_train_dir[256];  // the temporary folder of this test program

// Make the temporary folder "<TMPDIR or /tmp>/<prefix>-XXXXXX".
static inline void train_fixture_init(const char *prefix) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_train_dir, sizeof g_train_dir, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    GVM_CHECK(mkdtemp(g_train_dir), "cannot make a temporary folder");
}

// Remove the folder when every check passed (keep it for a look otherwise); returns rc.
static inline int train_fixture_finish(int rc) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_train_dir);
    if (rc == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_train_dir);
    if (rc != 0) fprintf(stderr, "test files kept in %s\n", g_train_dir);
    return rc;
}

// "<folder>/a" or "<folder>/a/b" (b may be NULL); 8 results stay valid at a time.
static inline const char *tf_path(const char *a, const char *b) {
    static char buf[8][700];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 700, "%s/%s%s%s", g_train_dir, a, b ? "/" : "", b ? b : "");
    return p;
}

// A shard of synthetic clips: random frames [frames, size, size, 3] and random codes [k, len] in 0..card-1 (the
// same set for the same seed), 64 samples of silence as audio.
typedef struct tf_shard_spec {
    const char *split;      // "train", "eval"
    int clips;
    uint64_t seed;
    int size, frames;       // frame size in pixels, frames per clip (1 fps)
    int k, card;            // codebooks and codebook size
    int code_len;           // codec frames per clip (when lens is NULL)
    const int *lens;        // [clips] codec frames per clip, or NULL
    double code_rate;       // codec frames per second
    const char *codec;      // the codes' codec name
    int sample_rate;
} tf_shard_spec;

static inline void tf_write_shard(const char *path, const tf_shard_spec *s) {
    gvm_shard_info info = {.frame_height = s->size, .frame_width = s->size, .fps = 1.0, .sample_rate = s->sample_rate,
                           .created_by = "gvm tests"};
    gvm_shard_writer *w = NULL;
    GVM_CHECK(gvm_shard_create(path, &info, &w) == GVM_OK, "%s", gvm_error_message());
    gvm_rng rng;
    gvm_rng_init(&rng, s->seed);
    const size_t frame_bytes = (size_t)s->frames * (size_t)s->size * (size_t)s->size * 3;
    uint8_t *frames = malloc(frame_bytes);
    int max_len = s->code_len;
    for (int i = 0; s->lens && i < s->clips; i++) max_len = s->lens[i] > max_len ? s->lens[i] : max_len;
    int16_t *codes = malloc((size_t)s->k * (size_t)max_len * sizeof *codes);
    GVM_CHECK(frames && codes, "out of memory");
    float audio[64] = {0};
    for (int i = 0; i < s->clips; i++) {
        for (size_t j = 0; j < frame_bytes; j++) frames[j] = (uint8_t)gvm_rng_below(&rng, 256);
        const int len = s->lens ? s->lens[i] : s->code_len;
        for (int j = 0; j < s->k * len; j++) codes[j] = (int16_t)gvm_rng_below(&rng, (uint64_t)s->card);
        char id[48];
        snprintf(id, sizeof id, "%s%02d", s->split, i);
        gvm_clip c = {.clip_id = id, .split = s->split, .duration = s->frames, .fps = 1.0,
                      .sample_rate = s->sample_rate, .frames = frames, .num_frames = s->frames, .height = s->size,
                      .width = s->size, .audio = audio, .num_samples = 64,
                      .codes = {codes, s->k, len, s->code_rate, s->codec}};
        GVM_CHECK(gvm_shard_add_clip(w, &c) == GVM_OK, "%s", gvm_error_message());
    }
    GVM_CHECK(gvm_shard_writer_close(w, true) == GVM_OK, "%s", gvm_error_message());
    free(frames);
    free(codes);
}

// Load a config from the key=value list `base` (n entries) followed by the NULL-terminated `extra` (or NULL);
// a failure is a failed check named "config".
static inline bool tf_config(gvm_config *cfg, const char *const *base, size_t n, const char *const *extra) {
    const char *all[128];
    size_t m = 0;
    for (size_t i = 0; i < n && m < 127; i++) all[m++] = base[i];
    for (int i = 0; extra && extra[i] && m < 127; i++) all[m++] = extra[i];
    gvm_status st = gvm_config_load(cfg, NULL, (int)m, all);
    return test_check(st == GVM_OK, "config", "load: %s", gvm_error_message());
}

// The model of a config with weights from `seed`, then (weights != NULL) loaded from that file.
static inline void tf_build_model(const gvm_config *cfg, uint64_t seed, const char *weights, gvm_param_store *ps,
                                  gvm_nn_gvmgen *m) {
    gvm_nn_gvmgen_cfg mc;
    GVM_CHECK(gvm_train_model_cfg(cfg, &mc) == GVM_OK, "%s", gvm_error_message());
    gvm_param_store_init(ps);
    gvm_nn_gvmgen_init(m, ps, &mc);
    gvm_param_store_finalize(ps);
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    gvm_nn_gvmgen_reset_parameters(m, &rng);
    if (weights) GVM_CHECK(gvm_param_store_load(ps, weights, false) == GVM_OK, "%s", gvm_error_message());
}

static inline void tf_free_model(gvm_param_store *ps, gvm_nn_gvmgen *m) {
    gvm_nn_gvmgen_free(m);
    gvm_param_store_free(ps);
}

// The losses a run reports (gvm_train_opts.on_step = tf_on_step, .user = the recorder), and a stop request
// after step stop_at (0: never), as SIGTERM would make one.
#define TF_MAX_STEPS 64
typedef struct tf_recorder {
    double loss[TF_MAX_STEPS + 1];  // by step
    int64_t last;
    int64_t stop_at;
    volatile sig_atomic_t stop;
} tf_recorder;

static inline void tf_on_step(void *user, int64_t step, double loss) {
    tf_recorder *r = user;
    if (step <= TF_MAX_STEPS) r->loss[step] = loss;
    r->last = step;
    if (r->stop_at && step >= r->stop_at) r->stop = 1;
}

static inline gvm_train_opts tf_opts(tf_recorder *r) {
    return (gvm_train_opts){.stop = &r->stop, .quiet = true, .on_step = tf_on_step, .user = r};
}

static inline bool tf_files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool eq = fa && fb;
    while (eq) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) eq = false;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return eq;
}

#endif
