// test_train_eval_cache.c: the evaluation loss (train/evaluate.c) and the frozen-ViT feature cache
// (train/feature_cache.c, the loader's features part) on a tiny GVMGen, on the CPU.
//
// Shards with random frames (28x28, 2 frames) and random codes (K 4, card 32) are written into a temporary
// folder: a train split of 4 clips and an eval split of 5 clips of different code lengths (20, 13, 20, 7,
// 16 steps), so an evaluation with batch 2 has a padded last batch and masked steps. Then:
//  * evaluation = an independent oracle: each eval clip alone (batch 1, tensors built from the shard by
//    hand, not through the loader) through gvm_nn_gvmgen_forward_loss, the per-clip losses weighted by their
//    valid steps. Equal within 1e-5 relative for batch sizes 1, 2 and 5; eval_batches limits the clips; the
//    context's RNG, training flag and tape are left as they were; a missing split is GVM_ERR_NOT_FOUND.
//  * gvm train with train.eval_every: the metrics file gets one eval line per eval step (and the last), and
//    the last line's eval_loss / eval_loss_ema equal gvm_train_evaluate on the final checkpoint's model and
//    EMA weights, to the bit (same ops, same order).
//  * feature cache: a run with model.vision.cache_features fills every train and eval clip's features, with
//    the model's source string, values equal to the ViT run directly up to f16 rounding; a second fill
//    computes nothing; other ViT weights (another seed) make every entry stale and recomputed; the loader
//    refuses features from another source; the losses of a cached run match an uncached run of the same
//    config within 1e-3 relative (f16 tokens), step by step; and training does read the cache: random
//    features written under the run's source change its losses (slightly: at random init the condition
//    moves the loss by ~1e-7, so the test asks for a difference, not a size).
//  * config: cache_features without freeze is an error naming both keys.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/half.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/gvmgen.h"
#include "tests/test_util.h"
#include "tests/train_fixture.h"
#include "train/config.h"
#include "train/evaluate.h"
#include "train/feature_cache.h"
#include "train/loop.h"

enum { S = 28, TV = 2, TM = 20, K = 4, CARD = 32, N_EVAL = 5 };
static const int k_eval_len[N_EVAL] = {20, 13, 20, 7, 16};

// Clips of random frames and codes (code lengths len[i], or TM) into <sub>/<split>-000.h5.
static void write_split(const char *sub, const char *split, int n, const int *len, uint64_t seed) {
    mkdir(tf_path(sub, NULL), 0777);
    char file[64];
    snprintf(file, sizeof file, "%s-000.h5", split);
    const tf_shard_spec spec = {.split = split, .clips = n, .seed = seed, .size = S, .frames = TV, .k = K,
                                .card = CARD, .code_len = TM, .lens = len, .code_rate = 10.0,
                                .codec = "encodec_32khz", .sample_rate = 32000};
    tf_write_shard(tf_path(sub, file), &spec);
}

static void write_dataset(const char *sub) {
    write_split(sub, "train", 4, NULL, 1);
    write_split(sub, "eval", N_EVAL, k_eval_len, 2);
}

static bool make_config(gvm_config *cfg, const char *data_sub, const char *const *extra) {
    static char dir_kv[700];
    snprintf(dir_kv, sizeof dir_kv, "data.dir=%s", tf_path(data_sub, NULL));
    const char *base[] = {
        "model.vision.width=16", "model.vision.layers=2", "model.vision.heads=2", "model.vision.patch=14",
        "model.vision.image_size=28", "model.vision.freeze=true", "model.qformer.width=16",
        "model.qformer.layers=2", "model.qformer.heads=2", "model.qformer.queries=2", "model.qformer.cross_every=2",
        "model.qformer.ffn=32", "model.qformer.dropout=0", "model.lm.width=32", "model.lm.heads=2",
        "model.lm.layers=2", "model.lm.ffn=64", "model.lm.codebooks=4", "model.lm.card=32",
        "model.lm.delays=[0, 1, 2, 3]", "model.lm.dropout=0.1", "model.lm.cond_dropout=0.3", "model.cond_dim=16",
        "codec.codebooks=4", "codec.card=32", "codec.frame_rate=10", "codec.name=encodec_32khz", dir_kv,
        "data.clip_seconds=2", "data.fps=1", "data.image_size=28", "data.batch_size=2", "data.workers=1",
        "data.prefetch=2", "train.steps=4", "train.lr=3e-3", "train.warmup_steps=0", "train.schedule=constant",
        "train.grad_clip=1.0", "train.ema_decay=0.9", "train.grad_accum=1", "train.seed=7", "train.precision=f32",
        "train.device=cpu", "train.log_every=1", "train.checkpoint_every=0", "train.keep_checkpoints=0",
        "train.eval_every=2", "train.eval_batches=0"};
    return tf_config(cfg, base, sizeof base / sizeof base[0], extra);
}

// The oracle: every eval clip alone, frames normalised and codes copied from the shard by hand.
static double oracle_eval_loss(gvm_ctx *ctx, const gvm_nn_gvmgen *m, const char *data_sub, int n_clips) {
    gvm_shard *sh = NULL;
    GVM_CHECK(gvm_shard_open(tf_path(data_sub, "eval-000.h5"), &sh) == GVM_OK, "%s", gvm_error_message());
    const bool was_training = ctx->training;
    ctx->training = false;  // no dropout: an evaluation
    double weighted = 0, steps = 0;
    for (int i = 0; i < n_clips; i++) {
        gvm_clip c;
        GVM_CHECK(gvm_shard_read_clip(sh, i, &c) == GVM_OK, "%s", gvm_error_message());
        gvm_tensor *frames = gvm_tensor_empty(ctx, GVM_F32, 5, (int64_t[]){1, TV, 3, S, S});
        gvm_loader_normalise_frames(c.frames, TV, S * S, gvm_tensor_f32(frames));
        gvm_tensor *codes = gvm_tensor_empty(ctx, GVM_I32, 3, (int64_t[]){1, K, TM});
        int32_t *cd = gvm_tensor_i32(codes);
        for (int k = 0; k < K; k++)
            for (int t = 0; t < TM; t++) cd[k * TM + t] = t < c.codes.t ? c.codes.data[k * c.codes.t + t] : 0;
        const int64_t len = c.codes.t;
        gvm_no_grad_begin(ctx);
        gvm_tensor *loss = gvm_nn_gvmgen_forward_loss(ctx, m, frames, NULL, codes, &len, 0.0f, NULL);
        gvm_no_grad_end(ctx);
        weighted += (double)gvm_tensor_f32(loss)[0] * (double)len;
        steps += (double)len;
        gvm_ctx_reset(ctx);
        gvm_clip_free(&c);
    }
    gvm_shard_close(sh);
    ctx->training = was_training;
    return weighted / steps;
}

static void test_evaluate_matches_oracle(void) {
    gvm_config cfg;
    if (!make_config(&cfg, "ds", NULL)) return;
    gvm_param_store ps;
    gvm_nn_gvmgen m;
    tf_build_model(&cfg, 3, NULL, &ps, &m);
    gvm_ctx *ctx = gvm_ctx_new(11);
    ctx->training = true;
    const double want = oracle_eval_loss(ctx, &m, "ds", N_EVAL);
    for (int b = 1; b <= N_EVAL; b++) {
        if (b == 3 || b == 4) continue;
        cfg.data.batch_size = b;
        gvm_rng before = ctx->rng;
        gvm_eval_result r;
        gvm_status st = gvm_train_evaluate(ctx, &m, &cfg, NULL, 0, &r);
        TEST_CHECK(st == GVM_OK, "evaluate runs", "batch %d: %s", b, gvm_error_message());
        TEST_CHECK(fabs(r.loss - want) <= 1e-5 * fabs(want), "eval loss = per-clip oracle",
                   "batch %d: %.9g vs oracle %.9g", b, r.loss, want);
        int64_t steps = 0;
        for (int i = 0; i < N_EVAL; i++) steps += k_eval_len[i];
        TEST_CHECK(r.steps == steps && r.clips == N_EVAL, "eval counts", "batch %d: %lld steps %lld clips", b,
                   (long long)r.steps, (long long)r.clips);
        TEST_CHECK(memcmp(&before, &ctx->rng, sizeof before) == 0 && ctx->training && ctx->tape_len == 0,
                   "evaluation leaves the context", "batch %d", b);
    }
    // eval_batches = 2 at batch 2: the first 4 clips only.
    cfg.data.batch_size = 2;
    gvm_eval_result r;
    GVM_CHECK(gvm_train_evaluate(ctx, &m, &cfg, NULL, 2, &r) == GVM_OK, "%s", gvm_error_message());
    const double want4 = oracle_eval_loss(ctx, &m, "ds", 4);
    TEST_CHECK(r.clips == 4 && fabs(r.loss - want4) <= 1e-5 * fabs(want4), "eval_batches limits the clips",
               "%lld clips, %.9g vs %.9g", (long long)r.clips, r.loss, want4);
    snprintf(cfg.data.eval_split, sizeof cfg.data.eval_split, "%s", "nosuch");
    TEST_CHECK(gvm_train_evaluate(ctx, &m, &cfg, NULL, 0, &r) == GVM_ERR_NOT_FOUND &&
                   strstr(gvm_error_message(), "nosuch-*.h5"),
               "missing eval split", "%s", gvm_error_message());
    gvm_ctx_free(ctx);
    tf_free_model(&ps, &m);
}

// The last line of `path` that contains `key`, copied into buf; false when none.
static bool last_line_with(const char *path, const char *key, char *buf, size_t n, int *count) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[1024];
    bool found = false;
    *count = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, key)) continue;
        snprintf(buf, n, "%s", line);
        found = true;
        (*count)++;
    }
    fclose(f);
    return found;
}

static double json_number(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static gvm_status train(const gvm_config *cfg, const char *run_sub, tf_recorder *l) {
    gvm_train_opts o = tf_opts(l);
    return gvm_train_run(cfg, tf_path(run_sub, NULL), false, &o, NULL);
}

static void test_train_eval_lines(void) {
    gvm_config cfg;
    const char *extra[] = {"model.vision.freeze=false", NULL};
    if (!make_config(&cfg, "ds", extra)) return;
    tf_recorder l = {0};
    gvm_status st = train(&cfg, "run_eval", &l);
    if (!TEST_CHECK(st == GVM_OK, "train with evaluation", "%s", gvm_error_message())) return;
    char line[1024];
    int count = 0;
    const bool found = last_line_with(tf_path("run_eval", "metrics.jsonl"), "eval_loss", line, sizeof line, &count);
    TEST_CHECK(found && count == 2, "one eval line per eval_every steps", "%d lines", count);
    if (!found) return;
    // The final checkpoint's model and EMA weights, evaluated again here, give the logged numbers exactly.
    const char *ckpt = tf_path("run_eval", "ckpt-000000000004");
    char model[800], ema[800];
    snprintf(model, sizeof model, "%s/model.safetensors", ckpt);
    snprintf(ema, sizeof ema, "%s/ema.safetensors", ckpt);
    const char *files[2] = {model, ema}, *keys[2] = {"eval_loss", "eval_loss_ema"};
    for (int i = 0; i < 2; i++) {
        gvm_param_store ps;
        gvm_nn_gvmgen m;
        tf_build_model(&cfg, 99, files[i], &ps, &m);
        gvm_ctx *ctx = gvm_ctx_new(1);
        gvm_eval_result r;
        GVM_CHECK(gvm_train_evaluate(ctx, &m, &cfg, NULL, cfg.train.eval_batches, &r) == GVM_OK, "%s",
                  gvm_error_message());
        const double logged = json_number(line, keys[i]);
        TEST_CHECK(logged == r.loss, "logged eval loss = evaluation of the checkpoint", "%s: %.17g vs %.17g",
                   keys[i], logged, r.loss);
        gvm_ctx_free(ctx);
        tf_free_model(&ps, &m);
    }
}

static void check_cached_values(const gvm_config *cfg, const char *data_sub, const char *run_sub) {
    char model[800];
    snprintf(model, sizeof model, "%s/model.safetensors", tf_path(run_sub, "ckpt-000000000004"));
    gvm_param_store ps;
    gvm_nn_gvmgen m;
    tf_build_model(cfg, 99, model, &ps, &m);
    char source[GVM_FEATURE_SOURCE_MAX];
    gvm_feature_source(&m, source);
    gvm_ctx *ctx = gvm_ctx_new(1);
    const char *splits[2] = {"train-000.h5", "eval-000.h5"};
    int64_t clips = 0, bad_source = 0;
    double worst = 0;
    for (int s = 0; s < 2; s++) {
        gvm_shard *sh = NULL;
        GVM_CHECK(gvm_shard_open(tf_path(data_sub, splits[s]), &sh) == GVM_OK, "%s", gvm_error_message());
        for (int64_t i = 0; i < gvm_shard_clip_count(sh); i++) {
            gvm_clip c;
            GVM_CHECK(gvm_shard_read_clip(sh, i, &c) == GVM_OK, "%s", gvm_error_message());
            clips++;
            if (!c.features.source || strcmp(c.features.source, source) != 0 || c.features.t != TV) {
                bad_source++;
                gvm_clip_free(&c);
                continue;
            }
            gvm_tensor *frames = gvm_tensor_empty(ctx, GVM_F32, 5, (int64_t[]){1, TV, 3, S, S});
            gvm_loader_normalise_frames(c.frames, TV, S * S, gvm_tensor_f32(frames));
            gvm_tensor *tok = gvm_nn_gvmgen_vision_tokens(ctx, &m, frames);  // [1, TV, N+1, W]
            const float *want = gvm_tensor_f32(tok);
            for (int64_t j = 0; j < tok->numel; j++) {
                const double got = gvm_f16_to_f32(c.features.data[j]);
                const double err = fabs(got - want[j]) / (fabs(want[j]) * 0x1p-11 + 0x1p-24);
                if (err > worst) worst = err;
            }
            gvm_ctx_reset(ctx);
            gvm_clip_free(&c);
        }
        gvm_shard_close(sh);
    }
    TEST_CHECK(clips == 4 + N_EVAL && bad_source == 0, "every train and eval clip cached with the model's source",
               "%lld clips, %lld without the source %s", (long long)clips, (long long)bad_source, source);
    TEST_CHECK(worst <= 1.0, "cached tokens = the ViT's output rounded to f16", "worst error %.3g of f16 rounding",
               worst);

    // A second fill finds everything fresh; another ViT (another seed) makes every entry stale.
    gvm_feature_cache_stats st;
    GVM_CHECK(gvm_feature_cache_fill(ctx, &m, tf_path(data_sub, NULL), "train", source, 0, NULL, &st) == GVM_OK, "%s",
              gvm_error_message());
    TEST_CHECK(st.clips == 4 && st.computed == 0, "a fresh cache is not recomputed", "%lld of %lld computed",
               (long long)st.computed, (long long)st.clips);

    // The loader refuses features from another source, naming the clip and what to do.
    gvm_loader_config lc = gvm_loader_config_default();
    lc.folder = tf_path(data_sub, NULL);
    lc.split = "train";
    lc.batch_size = 2;
    lc.parts = GVM_CLIP_FEATURES;
    lc.frames = TV;
    lc.feature_tokens = m.vision.n_tokens;
    lc.feature_dim = m.vision.width;
    lc.feature_source = "gvm-vit another";
    gvm_loader *loader = NULL;
    GVM_CHECK(gvm_loader_open(&lc, &loader) == GVM_OK, "%s", gvm_error_message());
    gvm_loader_batch b;
    gvm_status ls = gvm_loader_next(loader, &b);
    TEST_CHECK(ls == GVM_ERR_FORMAT && strstr(gvm_error_message(), "cached features come from") &&
                   strstr(gvm_error_message(), "train0"),
               "loader refuses stale features", "%s", gvm_error_message());
    gvm_loader_close(loader);
    gvm_ctx_free(ctx);
    tf_free_model(&ps, &m);

    gvm_param_store ps2;
    gvm_nn_gvmgen m2;
    tf_build_model(cfg, 12345, NULL, &ps2, &m2);
    char source2[GVM_FEATURE_SOURCE_MAX];
    gvm_feature_source(&m2, source2);
    TEST_CHECK(strcmp(source, source2) != 0, "other weights, other source", "%s", source2);
    gvm_ctx *ctx2 = gvm_ctx_new(1);
    GVM_CHECK(gvm_feature_cache_fill(ctx2, &m2, tf_path(data_sub, NULL), "train", source2, 0, NULL, &st) == GVM_OK,
              "%s", gvm_error_message());
    TEST_CHECK(st.clips == 4 && st.computed == 4 && st.frames == 4 * TV, "a stale cache is recomputed",
               "%lld of %lld computed", (long long)st.computed, (long long)st.clips);
    gvm_ctx_free(ctx2);
    tf_free_model(&ps2, &m2);
}

static void test_feature_cache(void) {
    write_dataset("ds_cache");
    gvm_config plain, cached;
    const char *extra[] = {"model.vision.cache_features=true", NULL};
    if (!make_config(&plain, "ds_cache", NULL) || !make_config(&cached, "ds_cache", extra)) return;
    tf_recorder a = {0}, b = {0};
    gvm_status st = train(&plain, "run_plain", &a);
    TEST_CHECK(st == GVM_OK, "train from frames", "%s", gvm_error_message());
    st = train(&cached, "run_cached", &b);
    if (!TEST_CHECK(st == GVM_OK, "train from cached features", "%s", gvm_error_message())) return;
    double worst = 0;
    for (int s = 1; s <= cached.train.steps; s++) worst = fmax(worst, fabs(a.loss[s] - b.loss[s]) / fabs(a.loss[s]));
    TEST_CHECK(worst <= 1e-3, "cached run's losses = uncached within f16 rounding",
               "worst relative difference %.3g", worst);
    check_cached_values(&cached, "ds_cache", "run_cached");

    // The run really reads the cache: features replaced by constants (under the run's source) change the loss.
    gvm_param_store ps;
    gvm_nn_gvmgen m;
    tf_build_model(&cached, (uint64_t)cached.train.seed, NULL, &ps, &m);
    char source[GVM_FEATURE_SOURCE_MAX];
    gvm_feature_source(&m, source);
    const int64_t n = TV * m.vision.n_tokens * m.vision.width;
    uint16_t *poison = malloc((size_t)n * sizeof *poison);
    gvm_rng rng;
    gvm_rng_init(&rng, 5);
    for (int64_t j = 0; j < n; j++) {  // random, not constant: LayerNorm would map a constant row to 0
        float v;
        gvm_rng_normal(&rng, &v, 1, 0.0f, 3.0f);
        poison[j] = gvm_f32_to_f16(v);
    }
    gvm_shard_updater *u = NULL;
    GVM_CHECK(gvm_shard_update_open(tf_path("ds_cache", "train-000.h5"), &u) == GVM_OK, "%s", gvm_error_message());
    for (int i = 0; i < 4; i++) {
        const gvm_features f = {.data = poison, .t = TV, .tokens = m.vision.n_tokens, .dim = m.vision.width,
                                .source = source};
        GVM_CHECK(gvm_shard_update_features(u, i, &f) == GVM_OK, "%s", gvm_error_message());
    }
    GVM_CHECK(gvm_shard_update_close(u) == GVM_OK, "%s", gvm_error_message());
    free(poison);
    tf_free_model(&ps, &m);
    tf_recorder c = {0};
    st = train(&cached, "run_poisoned", &c);
    bool differs = false;
    for (int s = 1; s <= cached.train.steps; s++) differs |= c.loss[s] != a.loss[s];
    TEST_CHECK(st == GVM_OK && differs, "training reads the cached features",
               "last step's loss %.9g (from frames %.9g)", c.loss[4], a.loss[4]);
}

static void test_config_error(void) {
    gvm_config cfg;
    const char *argv[] = {"model.vision.freeze=false", "model.vision.cache_features=true"};
    gvm_status st = gvm_config_load(&cfg, NULL, 2, argv);
    TEST_CHECK(st == GVM_ERR_INVALID && strstr(gvm_error_message(), "model.vision.cache_features") &&
                   strstr(gvm_error_message(), "model.vision.freeze"),
               "cache_features needs freeze", "%s", gvm_error_message());
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    train_fixture_init("gvm-evalcache");
    write_dataset("ds");
    test_evaluate_matches_oracle();
    test_train_eval_lines();
    test_feature_cache();
    test_config_error();
    return train_fixture_finish(test_finish());
}
