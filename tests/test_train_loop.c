// test_train_loop.c: the training loop (train/loop.c, train/model_cfg.c) on a tiny GVMGen, on the CPU.
//
// Shards with random frames (28x28) and random codes (K 4, card 32) are written into a temporary folder;
// the model is configured through overrides (ViT width 16 on 28 px with patch 14, Q-Former 16, LM 32, two
// layers each). Then:
//  * overfit: one fixed batch (4 clips, batch 4) for 40 steps without dropout: the loss falls below 25% of
//    the first step's (ln 32 = 3.47 at random init; measured: 0.055 after 40 steps) and the mean of the
//    last 5 steps is below the mean of the first 5;
//  * metrics.jsonl: one line per step, each parsed back: step 1..N in order, the loss equal (to the bit)
//    to the one reported to on_step, lr and the other keys present; the checkpoint files of the last step;
//  * resume bit-identity: with dropout, condition dropout, a cosine schedule with warm-up, grad_accum 2 and
//    several epochs of a shuffled 8-clip set, 6 steps in one run and 3 steps (stopped through the stop flag,
//    as SIGTERM would) + a resumed run of 3 give identical losses (compared as %.9g text and as doubles)
//    and byte-identical final model, EMA and optimiser files;
//  * a fresh run into a folder that has checkpoints is refused;
//  * NaN: lr = 1e30 (set in the struct: the config's range stops it at 10) makes the loss or the gradients
//    non-finite: the run stops with the message, returns an error, and the latest checkpoint is the last good
//    step's, loadable, with finite weights.
// `test_train_loop --write-dataset DIR` writes the 4-clip set into DIR/ds4 (to try `gvm train` by hand).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"
#include "data/dataset.h"
#include "nn/gvmgen.h"
#include "tests/test_util.h"
#include "tests/train_fixture.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/loop.h"

enum { S = 28, TV = 2, TM = 20, K = 4, CARD = 32 };

// n clips of random frames and codes into <sub>/train-000.h5; the same set for the same seed.
static void write_dataset(const char *sub, int n, uint64_t seed) {
    mkdir(tf_path(sub, NULL), 0777);
    const tf_shard_spec spec = {.split = "train", .clips = n, .seed = seed, .size = S, .frames = TV, .k = K,
                                .card = CARD, .code_len = TM, .code_rate = 10.0, .codec = "encodec_32khz",
                                .sample_rate = 32000};
    tf_write_shard(tf_path(sub, "train-000.h5"), &spec);
}

// The tiny model and run; `extra` overrides (NULL-terminated) come last.
static bool make_config(gvm_config *cfg, const char *data_sub, const char *const *extra) {
    static char dir_kv[700];
    snprintf(dir_kv, sizeof dir_kv, "data.dir=%s", tf_path(data_sub, NULL));
    const char *base[] = {
        "model.vision.width=16", "model.vision.layers=2", "model.vision.heads=2", "model.vision.patch=14",
        "model.vision.image_size=28", "model.vision.freeze=false", "model.qformer.width=16",
        "model.qformer.layers=2", "model.qformer.heads=2", "model.qformer.queries=2", "model.qformer.cross_every=2",
        "model.qformer.ffn=32", "model.qformer.dropout=0", "model.lm.width=32", "model.lm.heads=2",
        "model.lm.layers=2", "model.lm.ffn=64", "model.lm.codebooks=4", "model.lm.card=32",
        "model.lm.delays=[0, 1, 2, 3]", "model.lm.dropout=0", "model.lm.cond_dropout=0", "model.cond_dim=16",
        "codec.codebooks=4", "codec.card=32", "codec.frame_rate=10", "codec.name=encodec_32khz", dir_kv,
        "data.clip_seconds=2", "data.fps=1", "data.image_size=28", "data.batch_size=4", "data.workers=1",
        "data.prefetch=2", "train.steps=6", "train.lr=3e-3", "train.warmup_steps=0", "train.schedule=constant",
        "train.grad_clip=1.0", "train.ema_decay=0.9", "train.grad_accum=1", "train.seed=7", "train.precision=f32",
        "train.device=cpu", "train.log_every=1", "train.checkpoint_every=2", "train.keep_checkpoints=0",
        "train.weight_decay=0.01"};
    return tf_config(cfg, base, sizeof base / sizeof base[0], extra);
}

static gvm_status run(const gvm_config *cfg, const char *run_sub, bool resume, tf_recorder *r, gvm_train_result *res) {
    gvm_train_opts o = tf_opts(r);
    return gvm_train_run(cfg, tf_path(run_sub, NULL), resume, &o, res);
}

static void test_overfit_and_metrics(void) {
    gvm_config cfg;
    const char *extra[] = {"train.steps=40", "train.lr=1e-2", "train.checkpoint_every=0", NULL};
    if (!make_config(&cfg, "ds4", extra)) return;
    tf_recorder r = {0};
    gvm_train_result res;
    gvm_status st = run(&cfg, "overfit", false, &r, &res);
    if (!test_check(st == GVM_OK, "overfit: run", "%s", gvm_error_message())) return;
    test_check(res.steps_done == 40 && r.last == 40 && !res.stopped, "overfit: steps", "done %lld", (long long)res.steps_done);
    double first5 = 0, last5 = 0;
    for (int i = 1; i <= 5; i++) first5 += r.loss[i], last5 += r.loss[35 + i];
    printf("overfit: loss step 1 %.4f, step 40 %.4f\n", r.loss[1], r.loss[40]);
    test_check(r.loss[1] > 2.5 && r.loss[1] < 4.5, "overfit: initial loss near ln(32)", "%g", r.loss[1]);
    test_check(r.loss[40] < 0.25 * r.loss[1], "overfit: loss falls below 25%", "%g -> %g", r.loss[1], r.loss[40]);
    test_check(last5 < first5, "overfit: last 5 below first 5", "%g vs %g", last5 / 5, first5 / 5);

    // metrics.jsonl: one object per step, parsed back.
    FILE *f = fopen(tf_path("overfit", "metrics.jsonl"), "r");
    if (!test_check(f != NULL, "metrics: file", "missing")) return;
    char line[1024];
    int n = 0;
    bool ok = true;
    while (fgets(line, sizeof line, f)) {
        long long step;
        double loss, lr, norm, tok, el;
        long long ep, b;
        int got = sscanf(line, "{\"step\":%lld,\"loss\":%lf,\"lr\":%lf,\"grad_norm\":%lf,\"tokens_per_s\":%lf,"
                               "\"elapsed_s\":%lf,\"epoch\":%lld,\"batch\":%lld}",
                         &step, &loss, &lr, &norm, &tok, &el, &ep, &b);
        n++;
        if (got != 8 || step != n || loss != r.loss[n] || lr != 1e-2 || !(norm > 0) || !(tok > 0) ||
            line[strlen(line) - 2] != '}') {
            ok = test_check(false, "metrics: line", "line %d (%d fields): %s", n, got, line);
            break;
        }
    }
    fclose(f);
    test_check(ok && n == 40, "metrics: 40 lines parse", "%d lines", n);
    const char *ck = tf_path("overfit", "ckpt-000000000040");
    char p[800];
    bool present = true;
    const char *files[] = {"model.safetensors", "ema.safetensors", "optim.safetensors"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", ck, files[i]);
        present = present && access(p, R_OK) == 0;
    }
    test_check(present && access(tf_path("overfit", "latest"), R_OK) == 0, "checkpoint: final files", "%s", ck);

    // A fresh run into a folder with checkpoints is refused (it would mix two runs).
    tf_recorder r2 = {0};
    st = run(&cfg, "overfit", false, &r2, NULL);
    test_check(st == GVM_ERR_INVALID && strstr(gvm_error_message(), "--resume"), "fresh run over checkpoints refused",
               "%d: %s", st, gvm_error_message());
}

static void test_resume_identity(void) {
    gvm_config cfg;
    const char *extra[] = {"data.batch_size=2", "train.grad_accum=2", "model.qformer.dropout=0.2",
                           "model.lm.dropout=0.1", "model.lm.cond_dropout=0.3", "train.schedule=cosine",
                           "train.warmup_steps=2", NULL};
    if (!make_config(&cfg, "ds8", extra)) return;
    tf_recorder a = {0}, b = {0};
    gvm_train_result ra, rb1, rb2;
    gvm_status st = run(&cfg, "full", false, &a, &ra);
    if (!test_check(st == GVM_OK, "resume: full run", "%s", gvm_error_message())) return;
    b.stop_at = 3;  // as a SIGTERM during step 3 would: finish it, checkpoint, return
    st = run(&cfg, "split", false, &b, &rb1);
    if (!test_check(st == GVM_OK && rb1.stopped && rb1.steps_done == 3, "resume: stopped run", "%d %d %lld: %s", st,
                    rb1.stopped, (long long)rb1.steps_done, gvm_error_message()))
        return;
    b.stop_at = 0;
    b.stop = 0;
    st = run(&cfg, "split", true, &b, &rb2);
    if (!test_check(st == GVM_OK && rb2.start_step == 3 && rb2.steps_done == 6, "resume: resumed run",
                    "%d start %lld done %lld: %s", st, (long long)rb2.start_step, (long long)rb2.steps_done,
                    gvm_error_message()))
        return;
    bool same = true;
    for (int s = 1; s <= 6; s++) {
        char x[64], y[64];
        snprintf(x, sizeof x, "%.9g", a.loss[s]);
        snprintf(y, sizeof y, "%.9g", b.loss[s]);
        printf("step %d: full %s  split+resume %s\n", s, x, y);
        same = same && strcmp(x, y) == 0 && a.loss[s] == b.loss[s];
    }
    test_check(same, "resume: bit-identical losses", "differ");
    test_check(a.loss[1] != a.loss[2], "resume: losses vary", "the steps did nothing");
    const char *files[] = {"model.safetensors", "ema.safetensors", "optim.safetensors"};
    for (int i = 0; i < 3; i++) {
        char pa[800], pb[800];
        snprintf(pa, sizeof pa, "%s/ckpt-000000000006/%s", tf_path("full", NULL), files[i]);
        snprintf(pb, sizeof pb, "%s/ckpt-000000000006/%s", tf_path("split", NULL), files[i]);
        test_check(tf_files_equal(pa, pb), "resume: identical final files", "%s", files[i]);
    }
    // metrics.jsonl of the split run: steps 1..6 once each (the resumed run appends after step 3).
    FILE *f = fopen(tf_path("split", "metrics.jsonl"), "r");
    int n = 0;
    char line[1024];
    bool ok = f != NULL;
    while (f && fgets(line, sizeof line, f)) {
        long long step = -1;
        n++;
        if (sscanf(line, "{\"step\":%lld", &step) != 1 || step != n) ok = false;
    }
    if (f) fclose(f);
    test_check(ok && n == 6, "resume: metrics steps 1..6", "%d lines", n);
}

static void test_nan(void) {
    gvm_config cfg;
    const char *extra[] = {"train.checkpoint_every=1", "train.grad_clip=0", NULL};
    if (!make_config(&cfg, "ds4", extra)) return;
    cfg.train.lr = 1e30;  // past the schema's range on purpose
    tf_recorder r = {0};
    gvm_train_result res;
    char *buf = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&buf, &len);
    gvm_train_opts o = {.stop = &r.stop, .quiet = true, .on_step = tf_on_step, .user = &r, .log = log};
    gvm_status st = gvm_train_run(&cfg, tf_path("nan", NULL), false, &o, &res);
    fclose(log);
    const char *msg = gvm_error_message();
    printf("nan run: status %d after %lld steps: %s\n", st, (long long)res.steps_done, msg);
    test_check(st != GVM_OK, "nan: run fails", "status %d", st);
    test_check(strstr(msg, "the loss is") || strstr(msg, "gradients are not finite"), "nan: message", "%s", msg);
    free(buf);
    test_check(res.steps_done >= 1 && res.steps_done < 6, "nan: stopped early", "%lld", (long long)res.steps_done);

    // The latest checkpoint is the last good step's and loads, with finite weights.
    gvm_nn_gvmgen_cfg mc;
    if (!test_check(gvm_train_model_cfg(&cfg, &mc) == GVM_OK, "nan: model cfg", "%s", gvm_error_message())) return;
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_gvmgen m;
    gvm_nn_gvmgen_init(&m, &ps, &mc);
    gvm_param_store_finalize(&ps);
    gvm_checkpoint_opts co = gvm_checkpoint_opts_default();
    gvm_checkpoint_loaded l;
    memset(&l, 0, sizeof l);
    st = gvm_checkpoint_load_latest(tf_path("nan", NULL), &ps, &co, &l);
    if (test_check(st == GVM_OK, "nan: last checkpoint loads", "%s", gvm_error_message())) {
        test_check(l.state.step == res.steps_done && l.skipped == NULL, "nan: last good step", "ckpt %lld, done %lld",
                   (long long)l.state.step, (long long)res.steps_done);
        bool finite = true;
        for (size_t i = 0; i < ps.total; i++) finite = finite && isfinite(ps.data[i]);
        test_check(finite, "nan: checkpoint weights finite", "non-finite");
        gvm_checkpoint_loaded_free(&l);
    }
    gvm_nn_gvmgen_free(&m);
    gvm_param_store_free(&ps);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-dataset") == 0) {  // a dataset for trying `gvm train` by hand
        snprintf(g_train_dir, sizeof g_train_dir, "%s", argv[2]);
        write_dataset("ds4", 4, 1);
        return 0;
    }
    test_init(argc, argv);
    train_fixture_init("gvm-trainloop");
    write_dataset("ds4", 4, 1);
    write_dataset("ds8", 8, 2);
    test_overfit_and_metrics();
    test_resume_identity();
    test_nan();
    return train_fixture_finish(test_finish());
}
