// test_train_checkpoint.c: checkpoints of a run (train/checkpoint.h): bit-identical round trips of
// parameters, EMA, AdamW state and metadata; keep-last-N; crash leftovers (temp folder, truncated newer
// checkpoint, missing or bad "latest") fall back to the last good checkpoint with a message naming the bad
// one; damaged files give errors naming file and tensor, never a crash and never silently changed values;
// a failed load leaves the store as it was.
//
// `test_train_checkpoint --write-for-python RUN_DIR` writes the checkpoint tests/check_checkpoint_python.py
// reads with Python's safetensors (values: parameter i element j = i + j / 8; EMA = -that; m = 2x; v = 3x).
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/file_fixture.h"
#include "tests/test_util.h"
#include "train/checkpoint.h"

static char g_dir[256];
#define LOCAL_PATH(var, rel) \
    char var[512];           \
    snprintf(var, sizeof var, "%s/%s", g_dir, rel)

// A path in the test folder; a ring of buffers, so keep a result only for a few calls (or copy it: LOCAL_PATH).
static const char *tpath(const char *rel) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, rel);
    return buf[k];
}

// A small model: odd sizes, a scalar, size-1 dims. `extra`: one parameter more; `wide`: one shape differs.
static void make_store(gvm_param_store *ps, bool extra, bool wide) {
    gvm_param_store_init(ps);
    gvm_param_store_add(ps, "lm.embed.weight", 2, (int64_t[]){7, 5});
    gvm_param_store_add(ps, "lm.layers.0.norm.bias", 1, (int64_t[]){wide ? 6 : 5});
    gvm_param_store_add(ps, "lm.scale", 0, NULL);
    gvm_param_store_add(ps, "lm.head.weight", 3, (int64_t[]){1, 3, 1});
    if (extra) gvm_param_store_add(ps, "lm.extra", 1, (int64_t[]){2});
    gvm_param_store_finalize(ps);
}

static void fill(gvm_param_store *ps, uint64_t seed, bool states) {
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    gvm_rng_normal(&rng, ps->data, ps->total, 0, 1);
    if (!states) return;
    gvm_rng_normal(&rng, gvm_param_store_state(ps, 0), ps->total, 0, 0.1f);
    gvm_rng_uniform(&rng, gvm_param_store_state(ps, 1), ps->total, 0, 1e-3f);
    gvm_rng_normal(&rng, gvm_param_store_state(ps, 2), ps->total, 0, 1);
}

// Same values in every parameter of block a and b (padding ignored).
static bool same_block(const gvm_param_store *ps, const float *a, const float *b) {
    if (!a || !b) return false;
    for (int i = 0; i < ps->n_params; i++)
        if (memcmp(a + ps->offsets[i], b + ps->offsets[i], (size_t)ps->params[i]->numel * sizeof(float)) != 0) return false;
    return true;
}

static gvm_checkpoint_state sample_state(int64_t step) {
    gvm_checkpoint_state s = {.step = step, .optim_step = step - 3,
                              .config = "model:\n  dim: 64  # \"quoted\" \\ h\xc3\xa9llo\ntrain: {lr: 3.0e-4}\n",
                              .rng = {.seed = 0xfedcba9876543210ull, .offset = 123456789012345ull},
                              .data = {.epoch = 3, .batch = 41}};
    gvm_loss_scaler_init(&s.scaler);
    s.scaler.scale = 0.0009765625f * 3.1f;  // not a power of two: the text must round-trip every bit
    s.scaler.growth_tracker = 17;
    s.scaler.growth_interval = 1999;
    return s;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 4096);
    size_t n = fread(buf, 1, 4095, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int count_entries(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

static void rm_rf(const char *path) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    GVM_CHECK(system(cmd) == 0, "%s failed", cmd);
}

static void test_round_trip(void) {
    LOCAL_PATH(run, "run_rt");
    gvm_param_store a, b;
    make_store(&a, false, false);
    fill(&a, 1, true);
    gvm_checkpoint_state s = sample_state(1000);
    gvm_status st = gvm_checkpoint_save(run, &a, &s, NULL);
    TEST_CHECK(st == GVM_OK, "save", "%s", gvm_error_message());
    char *latest = read_text(tpath("run_rt/latest"));
    TEST_CHECK(latest && strcmp(latest, "ckpt-000000001000\n") == 0, "latest pointer", "'%s'", latest ? latest : "(none)");
    free(latest);
    TEST_CHECK(count_entries(run, "ckpt-") == 1 && count_entries(tpath("run_rt/ckpt-000000001000"), "") == 5,
               "folder holds model, ema, optim", "%d", count_entries(tpath("run_rt/ckpt-000000001000"), ""));

    make_store(&b, false, false);
    gvm_checkpoint_loaded l;
    st = gvm_checkpoint_load_latest(run, &b, NULL, &l);
    TEST_CHECK(st == GVM_OK, "load_latest", "%s", gvm_error_message());
    if (st == GVM_OK) {
        TEST_CHECK(same_block(&a, a.data, b.data), "params bit-identical", "%s", "");
        TEST_CHECK(same_block(&a, a.state[0], b.state[0]) && same_block(&a, a.state[1], b.state[1]),
                   "AdamW m, v bit-identical", "%s", "");
        TEST_CHECK(same_block(&a, a.state[2], b.state[2]), "EMA bit-identical", "%s", "");
        TEST_CHECK(l.has_ema && l.has_optim && l.skipped == NULL, "loaded flags", "ema %d optim %d skipped %s",
                   l.has_ema, l.has_optim, l.skipped ? l.skipped : "-");
        gvm_checkpoint_state r = l.state;
        TEST_CHECK(r.step == 1000 && r.optim_step == 997 && strcmp(r.config, s.config) == 0, "step, config",
                   "%lld %lld '%s'", (long long)r.step, (long long)r.optim_step, r.config);
        TEST_CHECK(r.rng.seed == s.rng.seed && r.rng.offset == s.rng.offset, "rng state", "%llx %llu",
                   (unsigned long long)r.rng.seed, (unsigned long long)r.rng.offset);
        TEST_CHECK(r.data.epoch == 3 && r.data.batch == 41, "data position", "%lld %lld", (long long)r.data.epoch,
                   (long long)r.data.batch);
        TEST_CHECK(memcmp(&r.scaler, &s.scaler, sizeof s.scaler) == 0, "loss scaler bit-identical", "scale %.9g tracker %d",
                   (double)r.scaler.scale, r.scaler.growth_tracker);
        TEST_CHECK(strcmp(l.version, GVM_VERSION) == 0 && strstr(l.path, "ckpt-000000001000"), "version and path",
                   "%s %s", l.version, l.path);
    }
    gvm_checkpoint_loaded_free(&l);
    gvm_param_store_free(&b);

    // weights only: no state blocks touched (none allocated)
    make_store(&b, false, false);
    gvm_checkpoint_opts o = gvm_checkpoint_opts_default();
    o.weights_only = true;
    st = gvm_checkpoint_load_latest(run, &b, &o, &l);
    TEST_CHECK(st == GVM_OK && same_block(&a, a.data, b.data) && !b.state[0] && !b.state[2] && !l.has_ema &&
               !l.has_optim, "weights_only load", "%s", gvm_error_message());
    gvm_checkpoint_loaded_free(&l);
    gvm_param_store_free(&b);

    // a store without optimiser state or EMA: only model.safetensors; loads with has_* false
    gvm_param_store c;
    make_store(&c, false, false);
    fill(&c, 2, false);
    s = sample_state(5);
    s.config = NULL;
    st = gvm_checkpoint_save(tpath("run_plain"), &c, &s, NULL);
    make_store(&b, false, false);
    st = st == GVM_OK ? gvm_checkpoint_load_latest(tpath("run_plain"), &b, NULL, &l) : st;
    TEST_CHECK(st == GVM_OK && same_block(&c, c.data, b.data) && !l.has_ema && !l.has_optim && !b.state[0] &&
               strcmp(l.state.config, "") == 0 && count_entries(tpath("run_plain/ckpt-000000000005"), "") == 3,
               "weights-only checkpoint", "%s", gvm_error_message());
    gvm_checkpoint_loaded_free(&l);
    gvm_param_store_free(&b);
    gvm_param_store_free(&c);
    gvm_param_store_free(&a);

    // no checkpoint at all: NOT_FOUND (a fresh run), also for a folder that does not exist
    make_store(&b, false, false);
    st = gvm_checkpoint_load_latest(tpath("run_none"), &b, NULL, &l);
    TEST_CHECK(st == GVM_ERR_NOT_FOUND && strstr(gvm_error_message(), "no checkpoint"), "empty run folder", "%d %s",
               (int)st, gvm_error_message());
    mkdir(tpath("run_empty"), 0755);
    st = gvm_checkpoint_load_latest(tpath("run_empty"), &b, NULL, &l);
    TEST_CHECK(st == GVM_ERR_NOT_FOUND, "empty run folder (exists)", "%d %s", (int)st, gvm_error_message());
    if (geteuid() != 0) {  // root reads anything
        chmod(tpath("run_empty"), 0);
        st = gvm_checkpoint_load_latest(tpath("run_empty"), &b, NULL, &l);
        TEST_CHECK(st == GVM_ERR_IO && strstr(gvm_error_message(), "cannot list"), "unreadable run folder is not a "
                   "fresh run", "%d %s", (int)st, gvm_error_message());
        chmod(tpath("run_empty"), 0755);
    }
    gvm_param_store_free(&b);
}

static void test_keep_last(void) {
    LOCAL_PATH(run, "run_keep");
    gvm_param_store a, b;
    make_store(&a, false, false);
    gvm_checkpoint_opts o = gvm_checkpoint_opts_default();
    o.keep_last = 2;
    for (int64_t step = 10; step <= 50; step += 10) {
        fill(&a, (uint64_t)step, true);
        gvm_checkpoint_state s = sample_state(step);
        TEST_CHECK(gvm_checkpoint_save(run, &a, &s, &o) == GVM_OK, "save with keep_last", "%s", gvm_error_message());
    }
    TEST_CHECK(count_entries(run, "ckpt-") == 2 && access(tpath("run_keep/ckpt-000000000040"), F_OK) == 0 &&
               access(tpath("run_keep/ckpt-000000000050"), F_OK) == 0, "keep_last 2 keeps 40 and 50", "%d entries",
               count_entries(run, "ckpt-"));
    // The same step saved again replaces it (a resumed run repeating a save).
    fill(&a, 777, true);
    gvm_checkpoint_state s = sample_state(50);
    TEST_CHECK(gvm_checkpoint_save(run, &a, &s, &o) == GVM_OK, "re-save a step", "%s", gvm_error_message());
    make_store(&b, false, false);
    gvm_checkpoint_loaded l;
    gvm_status st = gvm_checkpoint_load_latest(run, &b, NULL, &l);
    TEST_CHECK(st == GVM_OK && l.state.step == 50 && same_block(&a, a.data, b.data) && same_block(&a, a.state[1], b.state[1]) &&
               count_entries(run, "ckpt-") == 2, "re-saved step holds the new values", "%s", gvm_error_message());
    gvm_checkpoint_loaded_free(&l);
    gvm_param_store_free(&b);
    gvm_param_store_free(&a);
}

// Load the latest of `run` into a fresh store; expect step `want` and a skipped message containing `words`.
static void expect_latest(const char *name, const char *run, int64_t want, const char *words) {
    gvm_param_store b;
    make_store(&b, false, false);
    gvm_checkpoint_loaded l;
    gvm_status st = gvm_checkpoint_load_latest(run, &b, NULL, &l);
    bool ok = st == GVM_OK && l.state.step == want;
    if (words) ok = ok && l.skipped && strstr(l.skipped, words);
    else ok = ok && !l.skipped;
    TEST_CHECK(ok, name, "status %d step %lld skipped: %s (error: %s)", (int)st, (long long)l.state.step,
               l.skipped ? l.skipped : "-", st ? gvm_error_message() : "");
    if (st == GVM_OK) {  // the fallback's values are the good checkpoint's, bit for bit
        gvm_param_store a;
        make_store(&a, false, false);
        fill(&a, (uint64_t)want, true);
        TEST_CHECK(same_block(&a, a.data, b.data) && same_block(&a, a.state[0], b.state[0]), name, "values of step %lld",
                   (long long)want);
        gvm_param_store_free(&a);
    }
    gvm_checkpoint_loaded_free(&l);
    gvm_param_store_free(&b);
}

static void save_step(const char *run, int64_t step) {
    gvm_param_store a;
    make_store(&a, false, false);
    fill(&a, (uint64_t)step, true);
    gvm_checkpoint_state s = sample_state(step);
    TEST_CHECK(gvm_checkpoint_save(run, &a, &s, NULL) == GVM_OK, "save", "%s", gvm_error_message());
    gvm_param_store_free(&a);
}

static void test_crash(void) {
    LOCAL_PATH(run, "run_crash");
    save_step(run, 100);
    save_step(run, 200);
    expect_latest("two good checkpoints: newest", run, 200, NULL);

    // a crash mid-write leaves a temp folder (even a complete-looking one of a newer step): ignored
    mkdir(tpath("run_crash/ckpt-000000000300.tmp.4242"), 0755);
    copy_file(tpath("run_crash/ckpt-000000000200/model.safetensors"),
              tpath("run_crash/ckpt-000000000300.tmp.4242/model.safetensors"), 100);
    expect_latest("temp folder ignored", run, 200, NULL);

    // a newer checkpoint whose file was truncated (the disk lost the tail): the previous one, with a message
    save_step(run, 300);
    LOCAL_PATH(m3, "run_crash/ckpt-000000000300/model.safetensors");
    TEST_CHECK(access(tpath("run_crash/ckpt-000000000300.tmp.4242"), F_OK) != 0, "next save deletes temp leftovers",
               "%s", "");
    copy_file(m3, tpath("m3.bak"), -1);
    copy_file(tpath("m3.bak"), m3, file_size(m3) / 2);
    expect_latest("truncated model file -> previous", run, 200, "ckpt-000000000300/model.safetensors");
    copy_file(tpath("m3.bak"), m3, -1);
    expect_latest("restored", run, 300, NULL);
    LOCAL_PATH(o3, "run_crash/ckpt-000000000300/optim.safetensors");
    copy_file(o3, tpath("o3.bak"), -1);
    copy_file(tpath("o3.bak"), o3, file_size(o3) - 4);
    expect_latest("truncated optimiser file -> previous", run, 200, "ckpt-000000000300/optim.safetensors");
    // removed instead of truncated: the model file lists it
    unlink(o3);
    expect_latest("missing optimiser file -> previous", run, 200, "optim.safetensors: missing");
    copy_file(tpath("o3.bak"), o3, -1);

    // the pointer missing: the newest checkpoint that loads, with a note
    unlink(tpath("run_crash/latest"));
    expect_latest("missing latest pointer", run, 300, "latest: missing");
    // the pointer names a folder that is gone, or holds garbage
    FILE *f = fopen(tpath("run_crash/latest"), "w");
    fputs("ckpt-000000000900\n", f);
    fclose(f);
    expect_latest("pointer to a missing folder", run, 300, "does not exist");
    f = fopen(tpath("run_crash/latest"), "w");
    fputs("../../etc\n", f);
    fclose(f);
    expect_latest("garbage pointer", run, 300, "does not name a checkpoint");
    // the pointer is the commit record: a newer complete folder it does not name (crash before the pointer
    // was replaced) is not preferred over it
    f = fopen(tpath("run_crash/latest"), "w");
    fputs("ckpt-000000000200\n", f);
    fclose(f);
    expect_latest("pointer wins over a newer folder", run, 200, NULL);

    // nothing loads: the error says why for each
    copy_file(tpath("m3.bak"), m3, 10);
    truncate(tpath("run_crash/ckpt-000000000200/model.safetensors"), 0);
    truncate(tpath("run_crash/ckpt-000000000100/ema.safetensors"), 20);
    gvm_param_store b;
    make_store(&b, false, false);
    gvm_checkpoint_loaded l;
    gvm_status st = gvm_checkpoint_load_latest(run, &b, NULL, &l);
    const char *msg = gvm_error_message();
    TEST_CHECK(st != GVM_OK && strstr(msg, "ckpt-000000000100/ema.safetensors") && strstr(msg, "ckpt-000000000300") &&
               strstr(msg, "ckpt-000000000200"), "no checkpoint loads: error names each", "%s", msg);
    gvm_param_store_free(&b);
    unlink(tpath("m3.bak"));
    unlink(tpath("o3.bak"));
}

// Load `dir` into a store holding known values; expect an error containing `words`, the store unchanged.
static void expect_bad(const char *name, const char *dir, const char *words, bool extra, bool wide) {
    gvm_param_store b, ref;
    make_store(&b, extra, wide);
    make_store(&ref, extra, wide);
    fill(&b, 99, true);
    fill(&ref, 99, true);
    gvm_checkpoint_loaded l;
    gvm_status st = gvm_checkpoint_load(dir, &b, NULL, &l);
    TEST_CHECK(st != GVM_OK && strstr(gvm_error_message(), words), name, "status %d: %s", (int)st, gvm_error_message());
    bool same = true;
    for (int s = 0; s < 3; s++) same &= same_block(&b, b.state[s], ref.state[s]);
    TEST_CHECK(same && same_block(&b, b.data, ref.data), name, "store changed by a failed load%s", "");
    if (st == GVM_OK) gvm_checkpoint_loaded_free(&l);
    gvm_param_store_free(&b);
    gvm_param_store_free(&ref);
}

static void flip_byte(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    GVM_CHECK(f, "cannot open %s", path);
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

static void test_corrupt(void) {
    LOCAL_PATH(run, "run_bad");
    save_step(run, 7);
    LOCAL_PATH(dir, "run_bad/ckpt-000000000007");
    LOCAL_PATH(model, "run_bad/ckpt-000000000007/model.safetensors");
    LOCAL_PATH(ema, "run_bad/ckpt-000000000007/ema.safetensors");
    LOCAL_PATH(optim, "run_bad/ckpt-000000000007/optim.safetensors");

    // another model: a missing, an extra and a mis-shaped tensor, each named with its file
    expect_bad("missing tensor", dir, "model.safetensors: tensor 'lm.extra' is missing", true, false);
    expect_bad("mis-shaped tensor", dir, "tensor 'lm.layers.0.norm.bias' has shape [5], expected [6]", false, true);
    {  // extra: a checkpoint of a bigger model into the small one
        gvm_param_store big;
        make_store(&big, true, false);
        fill(&big, 3, true);
        gvm_checkpoint_state s = sample_state(8);
        gvm_checkpoint_save(tpath("run_big"), &big, &s, NULL);
        gvm_param_store_free(&big);
        expect_bad("extra tensor", tpath("run_big/ckpt-000000000008"), "tensor 'lm.extra' is not a parameter", false,
                   false);
    }
    // flipped data bytes: the checksum (the model file is fine, so this also checks all-or-nothing)
    copy_file(optim, tpath("optim.bak"), -1);
    flip_byte(optim, file_size(optim) - 3);
    expect_bad("damaged optimiser data", dir, "optim.safetensors: checksum", false, false);
    copy_file(tpath("optim.bak"), optim, -1);
    copy_file(ema, tpath("ema.bak"), -1);
    flip_byte(ema, file_size(ema) - 1);
    expect_bad("damaged EMA data", dir, "ema.safetensors: checksum", false, false);
    copy_file(tpath("ema.bak"), ema, -1);
    // an empty file, garbage, the files of another step
    copy_file(model, tpath("model.bak"), -1);
    truncate(model, 0);
    expect_bad("empty model file", dir, "model.safetensors", false, false);
    FILE *f = fopen(model, "wb");
    fputs("this is not a safetensors file at all, just some text", f);
    fclose(f);
    expect_bad("garbage model file", dir, "model.safetensors", false, false);
    copy_file(tpath("run_crash/ckpt-000000000300/ema.safetensors"), ema, -1);
    copy_file(tpath("model.bak"), model, -1);
    expect_bad("file of another step", dir, "ema.safetensors: holds step 300", false, false);
    copy_file(tpath("ema.bak"), ema, -1);
    {  // safetensors files that are not gvm checkpoints, or lack a metadata key, or hold f16
        gvm_param_store a;
        make_store(&a, false, false);
        const char *meta_nokey[] = {"format", GVM_CHECKPOINT_FORMAT, "step", "7", NULL};
        mkdir(tpath("foreign"), 0755);
        gvm_param_store_save(&a, tpath("foreign/model.safetensors"), NULL);
        expect_bad("plain safetensors file", tpath("foreign"), "not a gvm checkpoint file", false, false);
        gvm_param_store_save(&a, tpath("foreign/model.safetensors"), meta_nokey);
        expect_bad("metadata missing", tpath("foreign"), "metadata 'gvm_version' is missing", false, false);
        gvm_st_writer *w = gvm_st_writer_new();
        uint16_t h[64] = {0};
        for (int i = 0; i < a.n_params; i++)
            gvm_st_writer_add(w, a.params[i]->name, GVM_F16, a.params[i]->ndim, a.params[i]->shape, h);
        gvm_st_writer_add_metadata(w, "format", GVM_CHECKPOINT_FORMAT);
        gvm_st_writer_add_metadata(w, "step", "7");
        gvm_st_writer_write(w, tpath("foreign/model.safetensors"));
        gvm_st_writer_free(w);
        expect_bad("f16 tensor", tpath("foreign"), "is f16, expected f32", false, false);
        gvm_param_store_free(&a);
    }

    // Every single-byte change of the model file: an error, or (a change the format cannot see, such as
    // header padding) exactly the saved values. Never a crash, never silently different numbers.
    long long size = file_size(model);
    gvm_param_store good;
    make_store(&good, false, false);
    fill(&good, 7, true);
    int errors = 0, silent = 0;
    for (long at = 0; at < size; at++) {
        copy_file(tpath("model.bak"), model, -1);
        flip_byte(model, at);
        gvm_param_store b;
        make_store(&b, false, false);
        gvm_checkpoint_loaded l;
        if (gvm_checkpoint_load(dir, &b, NULL, &l) == GVM_OK) {
            gvm_checkpoint_state want = sample_state(7);
            bool same = same_block(&b, b.data, good.data) && same_block(&b, b.state[1], good.state[1]) &&
                        l.state.step == 7 && l.state.optim_step == want.optim_step &&
                        strcmp(l.state.config, want.config) == 0 && l.state.rng.seed == want.rng.seed &&
                        l.state.rng.offset == want.rng.offset && l.state.data.epoch == want.data.epoch &&
                        l.state.data.batch == want.data.batch &&
                        memcmp(&l.state.scaler, &want.scaler, sizeof want.scaler) == 0 && l.has_ema && l.has_optim;
            if (!same) printf("  byte %ld flipped: loaded different values\n", at);
            silent += !same;
            gvm_checkpoint_loaded_free(&l);
        } else {
            errors++;
        }
        gvm_param_store_free(&b);
    }
    TEST_CHECK(silent == 0 && errors > size * 9 / 10, "every byte flipped: error or identical", "%d silent changes, "
               "%d errors of %lld", silent, errors, size);
    gvm_param_store_free(&good);
    copy_file(tpath("model.bak"), model, -1);
    unlink(tpath("model.bak"));
    unlink(tpath("ema.bak"));
    unlink(tpath("optim.bak"));
}

// Deterministic values that check_checkpoint_python.py recomputes.
static int write_for_python(const char *run) {
    gvm_param_store ps;
    make_store(&ps, false, false);
    float *ema = gvm_param_store_state(&ps, 2), *m = gvm_param_store_state(&ps, 0), *v = gvm_param_store_state(&ps, 1);
    for (int i = 0; i < ps.n_params; i++)
        for (int64_t j = 0; j < ps.params[i]->numel; j++) {
            float x = (float)i + (float)j / 8;
            size_t k = ps.offsets[i] + (size_t)j;
            ps.data[k] = x;
            ema[k] = -x;
            m[k] = 2 * x;
            v[k] = 3 * x;
        }
    gvm_checkpoint_state s = sample_state(1234);
    gvm_status st = gvm_checkpoint_save(run, &ps, &s, NULL);
    gvm_param_store_free(&ps);
    if (st != GVM_OK) fprintf(stderr, "%s\n", gvm_error_message());
    return st == GVM_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-for-python") == 0) return write_for_python(argv[2]);
    test_init(argc, argv);
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/gvm_test_ckpt.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    GVM_CHECK(mkdtemp(g_dir), "cannot make a temporary folder");
    test_round_trip();
    test_keep_last();
    test_crash();
    test_corrupt();
    rm_rf(g_dir);
    return test_finish();
}
