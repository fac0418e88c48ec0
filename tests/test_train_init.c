// test_train_init.c: gvm train from pretrained weights (model.vision.init, model.lm.init; train/init_weights.c).
//
// "Pretrained" files are made here the way gvm import writes them: a model built with another seed, its ViT
// parameters (vision_model.*) in one file and its LM (model.decoder.*, lm_heads.*) plus enc_to_dec_proj in
// another. A run of 1 step (lr 1e-12: the update moves nothing measurable) from them then holds, in its
// checkpoint: the ViT exactly (frozen), the LM and the projection within 1e-9, and the Q-Former of its own
// seed (not in any file); and the same from the files gvm import writes of the transformers goldens. Errors, each naming the file and tensor, the run not started: a tensor the model
// does not have, a mis-shaped tensor, a file missing a tensor the part needs. A projection of another shape
// (MusicGen's 768 -> width against another model.cond_dim) is skipped with a note, not an error.
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
#include "train/init_weights.h"
#include "train/config.h"
#include "train/import_common.h"
#include "train/loop.h"

enum { S = 28, TV = 2, TM = 20, K = 4, CARD = 32 };

static void write_dataset(void) {
    mkdir(tf_path("ds", NULL), 0777);
    const tf_shard_spec spec = {.split = "train", .clips = 2, .seed = 1, .size = S, .frames = TV, .k = K, .card = CARD,
                                .code_len = TM, .code_rate = 10.0, .codec = "encodec_32khz", .sample_rate = 32000};
    tf_write_shard(tf_path("ds", "train-000.h5"), &spec);
}

static bool make_config(gvm_config *cfg, const char *vision, const char *lm, const char *extra) {
    static char dir_kv[700], v_kv[800], l_kv[800];
    snprintf(dir_kv, sizeof dir_kv, "data.dir=%s", tf_path("ds", NULL));
    snprintf(v_kv, sizeof v_kv, "model.vision.init=%s", vision ? vision : "\"\"");
    snprintf(l_kv, sizeof l_kv, "model.lm.init=%s", lm ? lm : "\"\"");
    const char *kv[] = {
        "model.vision.width=16", "model.vision.layers=2", "model.vision.heads=2", "model.vision.patch=14",
        "model.vision.image_size=28", "model.vision.freeze=true", "model.qformer.width=16", "model.qformer.layers=2",
        "model.qformer.heads=2", "model.qformer.queries=2", "model.qformer.cross_every=2", "model.qformer.ffn=32",
        "model.lm.width=32", "model.lm.heads=2", "model.lm.layers=2", "model.lm.ffn=64", "model.cond_dim=16",
        "codec.codebooks=4", "codec.card=32", "codec.frame_rate=10", dir_kv, "data.clip_seconds=2", "data.fps=1",
        "data.image_size=28", "data.batch_size=2", "train.steps=1", "train.lr=1e-12", "train.warmup_steps=0",
        "train.weight_decay=0", "train.ema_decay=0", "train.precision=f32", "train.device=cpu", "train.eval_every=0",
        "train.seed=5", v_kv, l_kv, extra ? extra : "train.log_every=1"};
    return tf_config(cfg, kv, sizeof kv / sizeof kv[0], NULL);
}

// The parameters whose names start with one of `prefixes` into `path` (as gvm import writes a part);
// `skip` (or NULL) is left out, `extra` (or NULL) is added as a [3] tensor.
static void write_part(const gvm_param_store *ps, const char *path, const char *const *prefixes, const char *skip,
                       const char *extra) {
    gvm_st_writer *w = gvm_st_writer_new();
    static const float junk[3] = {1, 2, 3};
    for (int i = 0; i < ps->n_params; i++) {
        const gvm_tensor *t = ps->params[i];
        bool take = false;
        for (int p = 0; prefixes[p]; p++) take |= strncmp(t->name, prefixes[p], strlen(prefixes[p])) == 0;
        if (take && !(skip && strcmp(skip, t->name) == 0))
            gvm_st_writer_add(w, t->name, GVM_F32, t->ndim, t->shape, t->data);
    }
    if (extra) gvm_st_writer_add(w, extra, GVM_F32, 1, (int64_t[]){3}, junk);
    GVM_CHECK(gvm_st_writer_write(w, path) == GVM_OK, "%s", gvm_error_message());
    gvm_st_writer_free(w);
}

static double max_diff(const gvm_param_store *a, const gvm_param_store *b, const char *prefix) {
    double worst = 0;
    for (int i = 0; i < a->n_params; i++) {
        if (strncmp(a->params[i]->name, prefix, strlen(prefix)) != 0) continue;
        const float *x = gvm_tensor_f32(a->params[i]), *y = gvm_tensor_f32(gvm_param_store_find(b, a->params[i]->name));
        for (int64_t j = 0; j < a->params[i]->numel; j++) worst = fmax(worst, fabs((double)x[j] - y[j]));
    }
    return worst;
}

static void test_init_loads(void) {
    gvm_config cfg;
    if (!make_config(&cfg, NULL, NULL, NULL)) return;
    gvm_param_store pre;
    gvm_nn_gvmgen pm;
    tf_build_model(&cfg, 999, NULL, &pre, &pm);  // the "pretrained" model
    static const char *const vision[] = {"vision_model.", NULL}, *const lm[] = {"model.decoder.", "lm_heads.",
                                                                                "enc_to_dec_proj.", NULL};
    write_part(&pre, tf_path("vit.safetensors", NULL), vision, NULL, NULL);
    write_part(&pre, tf_path("lm.safetensors", NULL), lm, NULL, NULL);
    if (!make_config(&cfg, tf_path("vit.safetensors", NULL), tf_path("lm.safetensors", NULL), NULL)) return;
    gvm_train_opts o = {.quiet = true, .log = stderr};
    gvm_status st = gvm_train_run(&cfg, tf_path("run", NULL), false, &o, NULL);
    if (!TEST_CHECK(st == GVM_OK, "train from pretrained parts", "%s", gvm_error_message())) return;
    gvm_param_store got;
    gvm_nn_gvmgen gm;
    tf_build_model(&cfg, 1, NULL, &got, &gm);
    GVM_CHECK(gvm_param_store_load(&got, tf_path("run/ckpt-000000000001/model.safetensors", NULL), false) == GVM_OK, "%s",
              gvm_error_message());
    const double dv = max_diff(&pre, &got, "vision_model."), dl = max_diff(&pre, &got, "model.decoder."),
                 dh = max_diff(&pre, &got, "lm_heads."), dp = max_diff(&pre, &got, "enc_to_dec_proj."),
                 dq = max_diff(&pre, &got, "qformer.");
    TEST_CHECK(dv == 0, "ViT = the pretrained file (frozen)", "max diff %g", dv);
    TEST_CHECK(dl < 1e-9 && dh < 1e-9 && dp < 1e-9, "LM and projection = the pretrained file", "%g %g %g", dl, dh, dp);
    TEST_CHECK(dq > 1e-3, "the Q-Former keeps its own initialisation", "max diff %g", dq);
    tf_free_model(&got, &gm);

    // Errors: each names the file and the tensor; no run folder is left with a checkpoint.
    struct { const char *name, *file, *skip, *extra, *want; } bad[] = {
        {"unknown tensor", "bad1.safetensors", NULL, "vision_model.no_such.weight", "vision_model.no_such.weight"},
        {"missing tensor", "bad2.safetensors", "vision_model.encoder.layers.1.mlp.fc2.bias", NULL,
         "has no tensor 'vision_model.encoder.layers.1.mlp.fc2.bias'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_part(&pre, tf_path(bad[i].file, NULL), vision, bad[i].skip, bad[i].extra);
        gvm_config c;
        make_config(&c, tf_path(bad[i].file, NULL), NULL, NULL);
        char run[64];
        snprintf(run, sizeof run, "badrun%zu", i);
        st = gvm_train_run(&c, tf_path(run, NULL), false, &o, NULL);
        TEST_CHECK(st == GVM_ERR_FORMAT && strstr(gvm_error_message(), bad[i].want) &&
                       strstr(gvm_error_message(), bad[i].file) && access(tf_path(run, NULL), F_OK) == 0 &&
                       access(tf_path(run, "latest"), F_OK) != 0,
                   bad[i].name, "%s", gvm_error_message());
    }
    // A mis-shaped tensor: the LM file of a model with another width.
    gvm_config wide;
    make_config(&wide, NULL, NULL, "model.lm.width=64");
    gvm_param_store wps;
    gvm_nn_gvmgen wm;
    tf_build_model(&wide, 3, NULL, &wps, &wm);
    write_part(&wps, tf_path("wide-lm.safetensors", NULL), lm, NULL, NULL);
    gvm_config c;
    make_config(&c, NULL, tf_path("wide-lm.safetensors", NULL), NULL);
    st = gvm_train_run(&c, tf_path("badwide", NULL), false, &o, NULL);
    TEST_CHECK(st == GVM_ERR_FORMAT && strstr(gvm_error_message(), "wide-lm.safetensors") &&
                   strstr(gvm_error_message(), "but the model's is"),
               "mis-shaped tensor", "%s", gvm_error_message());
    tf_free_model(&wps, &wm);

    // A projection of another shape (another model.cond_dim) is skipped, not an error.
    make_config(&c, NULL, tf_path("lm.safetensors", NULL), "model.cond_dim=8");
    st = gvm_train_run(&c, tf_path("otherproj", NULL), false, &o, NULL);
    TEST_CHECK(st == GVM_OK, "a projection of another shape is skipped", "%s", gvm_error_message());
    tf_free_model(&pre, &pm);
}

// The files gvm import writes from the Hugging Face goldens (tests/golden/data/import: a CLIP ViT of width 64 at
// 28 px, a MusicGen LM of width 64, 4 codebooks of 16) start a run: the checkpoint's ViT is the file's exactly
// (frozen), the LM within 1e-9 (lr 1e-12).
static void test_from_import(void) {
    char clip[900], lm[900];
    snprintf(clip, sizeof clip, "%s/import/clip-l14", test_golden_dir());
    snprintf(lm, sizeof lm, "%s/import/musicgen-causal", test_golden_dir());
    gvm_import_opts o = {.out = tf_path("imported-vit.safetensors", NULL)};
    gvm_status st = gvm_import_clip_vision(clip, &o);
    TEST_CHECK(st == GVM_OK, "import the CLIP golden", "%s", gvm_error_message());
    o.out = tf_path("imported-lm.safetensors", NULL);
    st = gvm_import_musicgen(lm, &o);
    TEST_CHECK(st == GVM_OK, "import the MusicGen golden", "%s", gvm_error_message());
    mkdir(tf_path("ds16", NULL), 0777);
    const tf_shard_spec spec = {.split = "train", .clips = 2, .seed = 3, .size = 28, .frames = TV, .k = 4, .card = 16,
                                .code_len = TM, .code_rate = 10.0, .codec = "encodec_32khz", .sample_rate = 32000};
    tf_write_shard(tf_path("ds16", "train-000.h5"), &spec);
    static char dir_kv[800], v_kv[900], l_kv[900];
    snprintf(dir_kv, sizeof dir_kv, "data.dir=%s", tf_path("ds16", NULL));
    snprintf(v_kv, sizeof v_kv, "model.vision.init=%s", tf_path("imported-vit.safetensors", NULL));
    snprintf(l_kv, sizeof l_kv, "model.lm.init=%s", tf_path("imported-lm.safetensors", NULL));
    const char *kv[] = {"model.vision.width=64", "model.vision.layers=2", "model.vision.heads=1", "model.vision.patch=14",
                        "model.vision.image_size=28", "model.vision.freeze=true", "model.qformer.width=16",
                        "model.qformer.layers=2", "model.qformer.heads=2", "model.qformer.queries=2",
                        "model.qformer.cross_every=2", "model.qformer.ffn=32", "model.lm.width=64", "model.lm.heads=1",
                        "model.lm.layers=2", "model.lm.ffn=256", "model.cond_dim=16", "codec.codebooks=4",
                        "codec.card=16", "codec.frame_rate=10", dir_kv, "data.clip_seconds=2", "data.fps=1",
                        "data.image_size=28", "data.batch_size=2", "train.steps=1", "train.lr=1e-12",
                        "train.warmup_steps=0", "train.weight_decay=0", "train.ema_decay=0", "train.precision=f32",
                        "train.device=cpu", "train.eval_every=0", v_kv, l_kv};
    gvm_config cfg;
    if (!tf_config(&cfg, kv, sizeof kv / sizeof kv[0], NULL)) return;
    gvm_train_opts to = {.quiet = true, .log = stderr};
    st = gvm_train_run(&cfg, tf_path("run-imported", NULL), false, &to, NULL);
    if (!TEST_CHECK(st == GVM_OK, "train from the imported files", "%s", gvm_error_message())) return;
    gvm_param_store got, want;
    gvm_nn_gvmgen gm, wm;
    tf_build_model(&cfg, 1, tf_path("run-imported", "ckpt-000000000001/model.safetensors"), &got, &gm);
    tf_build_model(&cfg, 1, NULL, &want, &wm);
    int n = 0;
    static const char *const vision[] = {"vision_model.", NULL}, *const lmp[] = {"model.decoder.", "lm_heads.", NULL};
    static const char *const opt[] = {"enc_to_dec_proj.weight", "enc_to_dec_proj.bias", NULL};
    GVM_CHECK(gvm_init_weights_load(&want, tf_path("imported-vit.safetensors", NULL), "vit", vision, NULL, NULL, &n) ==
                  GVM_OK && gvm_init_weights_load(&want, tf_path("imported-lm.safetensors", NULL), "lm", lmp, opt,
                                                  NULL, &n) == GVM_OK,
              "%s", gvm_error_message());
    const double dv = max_diff(&want, &got, "vision_model."), dl = max_diff(&want, &got, "model.decoder.");
    TEST_CHECK(dv == 0 && dl < 1e-9, "the run starts from the imported weights", "ViT %g, LM %g", dv, dl);
    tf_free_model(&got, &gm);
    tf_free_model(&want, &wm);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    train_fixture_init("gvm-init");
    write_dataset();
    test_init_loads();
    test_from_import();
    return train_fixture_finish(test_finish());
}
