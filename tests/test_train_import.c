// test_train_import.c: gvm import (train/import_*.c) against transformers. Each golden folder
// (tests/golden/gen_import.py) is a repository saved with save_pretrained plus gvm_golden.safetensors; the
// test imports the repository into a temp folder, builds our nn/ module from the imported file alone (its
// metadata config, then a strict load by name) and compares with transformers' outputs at max abs error
// 1e-4 (f32 vs the float64 reference):
//   clip      every hidden state of the ViT (gvm_nn_vit_forward) and the pooled output
//   musicgen  the logits of every codebook given codes, encoder hidden states and their mask (with
//             enc_to_dec_proj applied as MusicgenForConditionalGeneration does), and for a composite
//             repository its EnCodec: exact codes, decoded audio
//   encodec   exact codes and decoded audio through gvm_codec_load (what gvm encode/generate use)
// Then broken copies of a good repository (missing, extra, mis-shaped tensor; no config.json; the wrong
// --format) must fail with an error naming the tensor or file, and the safetensors writer's streaming mode
// is checked on its own (order, values, an aborted write leaves no file).
//
// usage: test_train_import [GOLDEN_DIR | CASE_DIR ...]   (default: <golden>/import/*; a folder holding
// gvm_golden.safetensors is one case, any other folder is searched for cases, also under its import/)
#define _DEFAULT_SOURCE  // mkdtemp, DT_DIR
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/gvm.h"
#include "nn/linear.h"
#include "test_util.h"
#include "train/codec_file.h"
#include "train/import_common.h"

#define TOL 1e-4

static char g_tmp[256];

static bool is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static gvm_tensor *golden(gvm_safetensors *st, const char *key) {
    gvm_tensor *t = NULL;
    GVM_CHECK(gvm_safetensors_load(st, key, &t) == GVM_OK, "%s", gvm_error_message());
    return t;
}

static void compare(const char *label, const gvm_tensor *got, gvm_safetensors *st, const char *key) {
    gvm_tensor *e = golden(st, key);
    char name[512];
    snprintf(name, sizeof name, "%s %s", label, key);
    if (TEST_CHECK(got->numel == e->numel, name, "%lld values, golden has %lld", (long long)got->numel,
                   (long long)e->numel))
        test_allclose(name, gvm_tensor_f32(got), gvm_tensor_f32(e), e->numel, TOL, 0.0);
    gvm_tensor_free(e);
}

static void compare_codes(const char *label, const gvm_tensor *got, gvm_safetensors *st, const char *key) {
    gvm_tensor *e = golden(st, key);
    int64_t diff = got->numel == e->numel ? 0 : -1;
    for (int64_t i = 0; diff >= 0 && i < e->numel; i++) diff += gvm_tensor_get_index(got, i) != gvm_tensor_i64(e)[i];
    TEST_CHECK(diff == 0, label, "%s: %lld of %lld codes differ (or the shapes do)", key, (long long)diff,
               (long long)e->numel);
    gvm_tensor_free(e);
}

// ---- families ----------------------------------------------------------------------------------------------

static void check_clip(const char *dir, const char *label, gvm_safetensors *gold) {
    char out[512];
    snprintf(out, sizeof out, "%s/vit.safetensors", g_tmp);
    gvm_import_opts o = {.out = out};
    if (!TEST_CHECK(gvm_import_clip_vision(dir, &o) == GVM_OK, label, "import: %s", gvm_error_message())) return;
    gvm_nn_vit_cfg cfg;
    if (!TEST_CHECK(gvm_import_read_vit_cfg(out, &cfg) == GVM_OK, label, "config: %s", gvm_error_message())) return;
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_vit vit;
    gvm_nn_vit_init(&vit, &ps, "vision_model", &cfg);
    gvm_param_store_finalize(&ps);
    if (TEST_CHECK(gvm_param_store_load(&ps, out, false) == GVM_OK, label, "strict load: %s", gvm_error_message())) {
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *px = golden(gold, "in.pixel_values");
        gvm_tensor **hs = calloc((size_t)cfg.layers + 1, sizeof *hs);
        gvm_tensor *last = gvm_nn_vit_forward(ctx, &vit, px, hs);
        for (int64_t i = 0; i <= cfg.layers; i++) {
            char key[64];
            snprintf(key, sizeof key, "out.hidden_states.%lld", (long long)i);
            compare(label, hs[i], gold, key);
        }
        compare(label, gvm_nn_vit_pool(ctx, &vit, last), gold, "out.pooled");
        free(hs);
        gvm_tensor_free(px);
        gvm_ctx_free(ctx);
    }
    gvm_nn_vit_free(&vit);
    gvm_param_store_free(&ps);
}

static void check_codec(const char *path, const char *label, gvm_safetensors *gold, const char *want_name) {
    gvm_codec codec;
    if (!TEST_CHECK(gvm_codec_load(path, &codec) == GVM_OK, label, "gvm_codec_load: %s", gvm_error_message())) return;
    if (want_name) TEST_CHECK(strcmp(codec.name, want_name) == 0, label, "codec name '%s', want '%s'", codec.name, want_name);
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *wave = golden(gold, "in.wave"), *want = golden(gold, "out.codes");
    gvm_tensor *codes = gvm_nn_encodec_encode(ctx, &codec.model, wave, (int)want->shape[1]);
    compare_codes(label, codes, gold, "out.codes");
    compare(label, gvm_nn_encodec_decode(ctx, &codec.model, want, 0), gold, "out.decoded");
    gvm_tensor_free(wave);
    gvm_tensor_free(want);
    gvm_ctx_free(ctx);
    gvm_codec_free(&codec);
}

static void check_musicgen(const char *dir, const char *label, gvm_safetensors *gold) {
    char out[512], codec_out[512];
    snprintf(out, sizeof out, "%s/lm.safetensors", g_tmp);
    snprintf(codec_out, sizeof codec_out, "%s/lm_codec.safetensors", g_tmp);
    const bool composite = gvm_safetensors_find(gold, "in.wave") != NULL;
    gvm_import_opts o = {.out = out, .codec_out = composite ? codec_out : NULL};
    if (!TEST_CHECK(gvm_import_musicgen(dir, &o) == GVM_OK, label, "import: %s", gvm_error_message())) return;
    gvm_nn_music_lm_cfg cfg;
    int64_t enc = 0;
    if (!TEST_CHECK(gvm_import_read_lm_cfg(out, &cfg, &enc) == GVM_OK, label, "config: %s", gvm_error_message()))
        return;
    TEST_CHECK(composite == (enc > 0), label, "enc_to_dec_proj input width %lld in a %s repository", (long long)enc,
               composite ? "composite" : "causal-LM");
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_music_lm lm;
    gvm_nn_linear proj;
    gvm_nn_music_lm_init(&lm, &ps, &cfg);
    if (enc) gvm_nn_linear_init(&proj, &ps, "enc_to_dec_proj", &(gvm_nn_linear_cfg){enc, cfg.d_model, true, 0});
    gvm_param_store_finalize(&ps);
    if (TEST_CHECK(gvm_param_store_load(&ps, out, false) == GVM_OK, label, "strict load: %s", gvm_error_message())) {
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_tensor *codes = golden(gold, "in.codes"), *ehs = golden(gold, "in.encoder_hidden_states");
        gvm_tensor *mask64 = golden(gold, "in.encoder_attention_mask");
        gvm_tensor *mask = gvm_tensor_new(GVM_U8, 2, mask64->shape);
        for (int64_t i = 0; i < mask64->numel; i++) gvm_tensor_u8(mask)[i] = gvm_tensor_i64(mask64)[i] != 0;
        gvm_tensor *cond = enc ? gvm_nn_linear_forward(ctx, &proj, ehs) : ehs;  // [B, F, D]
        gvm_tensor *logits[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
        gvm_nn_music_lm_forward(ctx, &lm, codes, cond, mask, NULL, logits);
        compare(label, gvm_nn_music_lm_stack_logits(ctx, logits, cfg.num_codebooks), gold, "out.logits");
        gvm_tensor_free(codes);
        gvm_tensor_free(ehs);
        gvm_tensor_free(mask64);
        gvm_tensor_free(mask);
        gvm_ctx_free(ctx);
    }
    gvm_nn_music_lm_free(&lm);
    gvm_param_store_free(&ps);
    if (composite) check_codec(codec_out, label, gold, NULL);
}

static void check_encodec(const char *dir, const char *label, gvm_safetensors *gold) {
    char out[512];
    snprintf(out, sizeof out, "%s/codec.safetensors", g_tmp);
    gvm_import_opts o = {.out = out, .codec_name = "test_codec"};
    if (!TEST_CHECK(gvm_import_encodec(dir, &o) == GVM_OK, label, "import: %s", gvm_error_message())) return;
    check_codec(out, label, gold, "test_codec");
}

static void run_case(const char *dir) {
    char path[4400];
    GVM_CHECK(snprintf(path, sizeof path, "%s/gvm_golden.safetensors", dir) < (int)sizeof path, "path too long");
    gvm_safetensors *gold = NULL;
    if (!TEST_CHECK(gvm_safetensors_open(path, &gold) == GVM_OK, dir, "%s", gvm_error_message())) return;
    const char *family = gvm_safetensors_metadata(gold, "family");
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    char label[300];
    GVM_CHECK(snprintf(label, sizeof label, "import %.250s", base) < (int)sizeof label, "name too long");
    if (family && strcmp(family, "clip") == 0) check_clip(dir, label, gold);
    else if (family && strcmp(family, "musicgen") == 0) check_musicgen(dir, label, gold);
    else if (family && strcmp(family, "encodec") == 0) check_encodec(dir, label, gold);
    else TEST_CHECK(false, label, "unknown family '%s'", family ? family : "none");
    gvm_safetensors_close(gold);
    printf("checked %s\n", dir);
}

// ---- broken repositories ---------------------------------------------------------------------------------------

static void copy_file(const char *from, const char *to) {
    FILE *f = fopen(from, "rb"), *g = fopen(to, "wb");
    GVM_CHECK(f && g, "cannot copy %s to %s", from, to);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) GVM_CHECK(fwrite(buf, 1, n, g) == n, "write %s", to);
    fclose(f);
    GVM_CHECK(fclose(g) == 0, "close %s", to);
}

typedef enum { BREAK_DROP, BREAK_EXTRA, BREAK_RESHAPE } break_kind;

// A copy of the single-file repository `good` in g_tmp/broken with `victim` dropped / added as a new name /
// given transposed 2-D dims.
static const char *make_broken(const char *good, break_kind kind, const char *victim, const char *extra_name) {
    static char dir[512];
    char from[1024], to[1024];
    snprintf(dir, sizeof dir, "%s/broken", g_tmp);
    mkdir(dir, 0755);
    snprintf(from, sizeof from, "%s/config.json", good);
    snprintf(to, sizeof to, "%s/config.json", dir);
    copy_file(from, to);
    snprintf(from, sizeof from, "%s/model.safetensors", good);
    snprintf(to, sizeof to, "%s/model.safetensors", dir);
    gvm_safetensors *st = NULL;
    GVM_CHECK(gvm_safetensors_open(from, &st) == GVM_OK, "%s", gvm_error_message());
    gvm_st_writer *w = gvm_st_writer_new();
    for (int i = 0; i < gvm_safetensors_count(st); i++) {
        const gvm_st_entry *e = gvm_safetensors_entry(st, i);
        const bool hit = strcmp(e->name, victim) == 0;
        if (hit && kind == BREAK_DROP) continue;
        int64_t shape[GVM_MAX_DIMS];
        memcpy(shape, e->shape, sizeof shape);
        if (hit && kind == BREAK_RESHAPE) {
            GVM_CHECK(e->ndim == 2 && shape[0] != shape[1], "pick a non-square matrix to reshape");
            shape[0] = e->shape[1];
            shape[1] = e->shape[0];
        }
        gvm_st_writer_add(w, e->name, e->dtype, e->ndim, shape, e->data);
        if (hit && kind == BREAK_EXTRA) gvm_st_writer_add(w, extra_name, e->dtype, e->ndim, e->shape, e->data);
    }
    GVM_CHECK(gvm_st_writer_write(w, to) == GVM_OK, "%s", gvm_error_message());
    gvm_st_writer_free(w);
    gvm_safetensors_close(st);
    return dir;
}

static void expect_error(const char *name, gvm_status s, const char *needle) {
    const char *msg = gvm_error_message();
    TEST_CHECK(s != GVM_OK && strstr(msg, needle), name, "want an error naming '%s', got %s: %s", needle,
               s == GVM_OK ? "success" : "error", s == GVM_OK ? "" : msg);
    char out[512];
    snprintf(out, sizeof out, "%s/bad.safetensors", g_tmp);
    TEST_CHECK(!is_file(out), name, "a failed import left %s", out);
}

static void check_errors(const char *clip_full, const char *encodec_dir) {
    char out[512];
    snprintf(out, sizeof out, "%s/bad.safetensors", g_tmp);
    gvm_import_opts o = {.out = out};
    const char *k_bias = "vision_model.encoder.layers.1.self_attn.k_proj.bias";
    const char *fc1 = "vision_model.encoder.layers.0.mlp.fc1.weight";
    expect_error("missing tensor", gvm_import_clip_vision(make_broken(clip_full, BREAK_DROP, k_bias, NULL), &o), k_bias);
    expect_error("missing tensor says missing",
                 gvm_import_clip_vision(make_broken(clip_full, BREAK_DROP, k_bias, NULL), &o), "missing");
    const char *extra = "vision_model.encoder.layers.2.mlp.fc1.weight";  // a layer the config does not have
    expect_error("extra tensor", gvm_import_clip_vision(make_broken(clip_full, BREAK_EXTRA, fc1, extra), &o), extra);
    expect_error("mis-shaped tensor", gvm_import_clip_vision(make_broken(clip_full, BREAK_RESHAPE, fc1, NULL), &o), fc1);
    const char *dir = make_broken(clip_full, BREAK_DROP, "none", NULL);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    TEST_CHECK(gvm_import_clip_vision(dir, &o) == GVM_OK, "intact copy imports", "%s", gvm_error_message());
    unlink(out);
    unlink(cfg);
    expect_error("no config.json", gvm_import_clip_vision(dir, &o), "config.json");
    expect_error("no directory", gvm_import_clip_vision("/nonexistent/repo", &o), "/nonexistent/repo");
    expect_error("wrong format", gvm_import_encodec(clip_full, &o), "model_type");
    if (encodec_dir) {  // the Hub's weight_g spelling: a missing one is named as the file would spell it
        const char *g0 = "encoder.layers.0.conv.weight_g";
        expect_error("missing weight-norm tensor",
                     gvm_import_encodec(make_broken(encodec_dir, BREAK_DROP, g0, NULL), &o), "encoder.layers.0.conv");
    }
}

// ---- the writer's streaming mode -------------------------------------------------------------------------------

static gvm_status fill_ramp(void *user, void *dst, size_t nbytes) {
    float *f = dst;
    for (size_t i = 0; i < nbytes / 4; i++) f[i] = (float)i + *(const float *)user;
    return GVM_OK;
}

static gvm_status fill_fail(void *user, void *dst, size_t nbytes) {
    (void)user;
    (void)dst;
    (void)nbytes;
    return gvm_error_set(GVM_ERR_IO, "fill failed on purpose");
}

static void check_stream_writer(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/stream.safetensors", g_tmp);
    const float off_a = 0.5f, off_b = 100.0f, plain[3] = {7, 8, 9};
    gvm_st_writer *w = gvm_st_writer_new();
    gvm_st_writer_add_stream(w, "a", GVM_F32, 2, (int64_t[]){2, 3}, fill_ramp, (void *)&off_a);
    gvm_st_writer_add(w, "p", GVM_F32, 1, (int64_t[]){3}, plain);
    gvm_st_writer_add_stream(w, "b", GVM_F32, 1, (int64_t[]){10}, fill_ramp, (void *)&off_b);
    gvm_status s = gvm_st_writer_write(w, path);
    gvm_st_writer_free(w);
    gvm_safetensors *st = NULL;
    if (!TEST_CHECK(s == GVM_OK && gvm_safetensors_open(path, &st) == GVM_OK, "stream write", "%s",
                    gvm_error_message()))
        return;
    const gvm_st_entry *a = gvm_safetensors_find(st, "a"), *b = gvm_safetensors_find(st, "b"),
                       *p = gvm_safetensors_find(st, "p");
    bool ok = a && b && p && a->nbytes == 24 && b->nbytes == 40;
    for (int i = 0; ok && i < 6; i++) ok = ((const float *)a->data)[i] == (float)i + 0.5f;
    for (int i = 0; ok && i < 10; i++) ok = ((const float *)b->data)[i] == (float)i + 100.0f;
    for (int i = 0; ok && i < 3; i++) ok = ((const float *)p->data)[i] == plain[i];
    TEST_CHECK(ok, "stream write values", "streamed and pointer tensors read back wrong");
    gvm_safetensors_close(st);
    unlink(path);
    w = gvm_st_writer_new();
    gvm_st_writer_add(w, "p", GVM_F32, 1, (int64_t[]){3}, plain);
    gvm_st_writer_add_stream(w, "bad", GVM_F32, 1, (int64_t[]){4}, fill_fail, NULL);
    s = gvm_st_writer_write(w, path);
    gvm_st_writer_free(w);
    TEST_CHECK(s == GVM_ERR_IO && strstr(gvm_error_message(), "on purpose") && !is_file(path), "stream write failure",
               "a failing fill must fail the write and leave no file");
}

// ---- driver ------------------------------------------------------------------------------------------------------

static int n_cases;
static char cases[64][4096];

static void collect(const char *dir, int depth) {
    char p[4400];
    snprintf(p, sizeof p, "%s/gvm_golden.safetensors", dir);
    if (is_file(p)) {
        if (n_cases < 64) snprintf(cases[n_cases++], sizeof cases[0], "%s", dir);
        return;
    }
    if (depth > 1) return;
    DIR *d = opendir(dir);
    if (!d) return;
    char names[64][NAME_MAX + 1];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 64;)
        if (e->d_name[0] != '.') snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < n; i++) {
        if (snprintf(p, sizeof p, "%s/%s", dir, names[i]) >= (int)sizeof p) continue;
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) collect(p, depth + 1);
    }
}

static const char *find_case(const char *suffix) {
    for (int i = 0; i < n_cases; i++) {
        size_t n = strlen(cases[i]), k = strlen(suffix);
        if (n >= k && strcmp(cases[i] + n - k, suffix) == 0) return cases[i];
    }
    return NULL;
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/gvm_test_import_XXXXXX");
    GVM_CHECK(mkdtemp(g_tmp), "mkdtemp");
    char def[1024];
    if (argc < 2) {
        snprintf(def, sizeof def, "%s/import", test_golden_dir());
        collect(def, 0);
    }
    for (int i = 1; i < argc; i++) {
        char sub[4400];
        snprintf(sub, sizeof sub, "%s/import", argv[i]);
        struct stat sb;
        collect(stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode) ? sub : argv[i], 0);
    }
    TEST_CHECK(n_cases > 0, "goldens", "no import goldens found (run tests/golden/gen_import.py)");
    check_stream_writer();
    for (int i = 0; i < n_cases; i++) run_case(cases[i]);
    const char *clip_full = find_case("/clip-full");
    if (clip_full) check_errors(clip_full, find_case("/encodec-32khz"));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return test_finish();
}
