// test_train_codec.c: gvm train-codec (train/codec_loop.c), codec files (train/codec_file.c) and gvm encode
// (train/encode_shards.c) on a tiny codec, on the CPU.
//
// Shards of 8 kHz audio (sums of a few sines with a slow envelope, different per clip; 1.5 s each) are written
// into a temporary folder: a train split of 6 clips and an eval split of 3. The codec: ratios [4, 2] (hop 8,
// 1000 codec frames/s), 4 filters, hidden 8, 2 codebooks of 16, one LSTM layer. Then:
//  * training lowers the loss: the mean of the last 5 of 40 steps is below 80% of the first 5's, and the eval
//    SI-SNR logged at the end is higher than the one logged at step 5 (measured: see the check's message);
//  * resume bit-identity: 6 steps in one run and 3 steps (stop flag, as SIGTERM) + 3 resumed give identical
//    losses and byte-identical final weights and Adam state (codebooks and their EMA buffers included);
//  * codec.safetensors: loads back (gvm_codec_load) into a codec whose encode of a clip gives the same codes as
//    the trained model and whose architecture JSON round-trips; a GVMGen-style file without the codec metadata,
//    a truncated file and a missing file are refused with messages naming them;
//  * gvm encode: every clip gets codes named after the codec, [2, ceil(n / 8)], equal to encoding the clip's
//    audio directly; a second pass skips them all, --force re-encodes; a shard at another sample rate fails with
//    a message while the others are encoded.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"
#include "data/dataset.h"
#include "tests/test_util.h"
#include "tests/train_fixture.h"
#include "train/codec_file.h"
#include "train/codec_loop.h"
#include "train/config.h"
#include "train/encode_shards.h"

enum { RATE = 8000, SAMPLES = 12000 };

// One clip's audio: three sines of clip-dependent pitch under a slow envelope.
static void clip_audio(int clip, float *out, int64_t n, int rate) {
    const double f0 = 110.0 * pow(2.0, clip / 5.0);
    for (int64_t i = 0; i < n; i++) {
        const double t = (double)i / rate, env = 0.5 + 0.5 * sin(2 * M_PI * 0.7 * t + clip);
        out[i] = (float)(0.25 * env * (sin(2 * M_PI * f0 * t) + 0.5 * sin(2 * M_PI * 2.01 * f0 * t) +
                                       0.25 * sin(2 * M_PI * 3.03 * f0 * t + 0.3 * clip)));
    }
}

static void write_split(const char *sub, const char *split, int first, int n, int rate) {
    mkdir(tf_path(sub, NULL), 0777);
    char file[64];
    snprintf(file, sizeof file, "%s-000.h5", split);
    gvm_shard_info info = {.frame_height = 4, .frame_width = 4, .fps = 1.0, .sample_rate = rate,
                           .created_by = "test_train_codec"};
    gvm_shard_writer *w = NULL;
    GVM_CHECK(gvm_shard_create(tf_path(sub, file), &info, &w) == GVM_OK, "%s", gvm_error_message());
    static float audio[SAMPLES * 2];
    uint8_t frames[2 * 4 * 4 * 3] = {0};
    for (int i = 0; i < n; i++) {
        const int64_t len = SAMPLES - 500 * i;  // different lengths: padding and code counts differ
        clip_audio(first + i, audio, len, rate);
        char id[32];
        snprintf(id, sizeof id, "%s%02d", split, i);
        gvm_clip c = {.clip_id = id, .split = split, .duration = (double)len / rate, .fps = 1.0,
                      .sample_rate = rate, .frames = frames, .num_frames = 1, .height = 4, .width = 4,
                      .audio = audio, .num_samples = len};
        GVM_CHECK(gvm_shard_add_clip(w, &c) == GVM_OK, "%s", gvm_error_message());
    }
    GVM_CHECK(gvm_shard_writer_close(w, true) == GVM_OK, "%s", gvm_error_message());
}

static bool make_config(gvm_config *cfg, const char *data_sub, const char *const *extra) {
    static char dir_kv[700];
    snprintf(dir_kv, sizeof dir_kv, "data.dir=%s", tf_path(data_sub, NULL));
    const char *base[] = {
        "codec.name=test-codec", "codec.sample_rate=8000", "codec.frame_rate=1000", "codec.codebooks=2",
        "codec.card=16", "codec.filters=4", "codec.ratios=[4, 2]", "codec.hidden=8", "codec.lstm_layers=1",
        "codec.residual_layers=1", "codec.compress=2", "model.lm.codebooks=2", "model.lm.delays=[0, 1]", dir_kv, "data.clip_seconds=1.5", "data.fps=2", "data.workers=1",
        "data.prefetch=2", "codec_train.steps=6", "codec_train.lr=3e-3", "codec_train.warmup_steps=0",
        "codec_train.batch_size=3", "codec_train.segment_seconds=0.25", "codec_train.dead_code_threshold=0.05",
        "codec_train.log_every=1", "codec_train.eval_every=0", "codec_train.eval_clips=3",
        "codec_train.eval_seconds=1.0", "codec_train.checkpoint_every=2", "train.seed=5", "train.keep_checkpoints=0"};
    return tf_config(cfg, base, sizeof base / sizeof base[0], extra);
}

static gvm_status run(const gvm_config *cfg, const char *run_sub, bool resume, tf_recorder *r) {
    gvm_train_opts o = tf_opts(r);
    return gvm_codec_train_run(cfg, tf_path(run_sub, NULL), resume, &o, NULL);
}

// eval_si_snr of the metrics line of step `step`, NAN when absent.
static double eval_snr_at(const char *run_sub, int64_t step) {
    FILE *f = fopen(tf_path(run_sub, "metrics.jsonl"), "r");
    if (!f) return NAN;
    char line[1024], want[64];
    snprintf(want, sizeof want, "{\"step\":%lld,\"eval_si_snr\":", (long long)step);
    double v = NAN;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, want, strlen(want)) == 0) v = strtod(line + strlen(want), NULL);
    fclose(f);
    return v;
}

static void test_loss_falls(void) {
    gvm_config cfg;
    const char *extra[] = {"codec_train.steps=40", "codec_train.eval_every=5", "codec_train.checkpoint_every=0", NULL};
    if (!make_config(&cfg, "ds", extra)) return;
    tf_recorder r = {0};
    gvm_status st = run(&cfg, "falls", false, &r);
    if (!TEST_CHECK(st == GVM_OK, "train-codec runs", "%s", gvm_error_message())) return;
    double first = 0, last = 0;
    for (int i = 1; i <= 5; i++) first += r.loss[i] / 5;
    for (int i = 36; i <= 40; i++) last += r.loss[i] / 5;
    TEST_CHECK(last < 0.8 * first, "the codec's loss falls", "first 5 steps %.4f, last 5 %.4f", first, last);
    const double snr5 = eval_snr_at("falls", 5), snr40 = eval_snr_at("falls", 40);
    TEST_CHECK(isfinite(snr5) && isfinite(snr40) && snr40 > snr5, "eval SI-SNR improves",
               "step 5: %.2f dB, step 40: %.2f dB", snr5, snr40);
}

static void test_resume_identity(void) {
    gvm_config cfg;
    if (!make_config(&cfg, "ds", NULL)) return;
    tf_recorder a = {0}, b = {.stop_at = 3}, c = {0};
    gvm_status st = run(&cfg, "whole", false, &a);
    TEST_CHECK(st == GVM_OK, "uninterrupted run", "%s", gvm_error_message());
    st = run(&cfg, "split", false, &b);
    TEST_CHECK(st == GVM_OK, "run stopped at 3", "%s", gvm_error_message());
    st = run(&cfg, "split", true, &c);
    TEST_CHECK(st == GVM_OK, "resumed run", "%s", gvm_error_message());
    bool same = true;
    for (int s = 1; s <= 3; s++) same &= a.loss[s] == b.loss[s];
    for (int s = 4; s <= 6; s++) same &= a.loss[s] == c.loss[s];
    TEST_CHECK(same, "resumed losses are bit-identical", "step 4: %.17g vs %.17g, step 6: %.17g vs %.17g", a.loss[4],
               c.loss[4], a.loss[6], c.loss[6]);
    const char *files[] = {"ckpt-000000000006/model.safetensors", "ckpt-000000000006/optim.safetensors",
                           "codec.safetensors"};
    for (int i = 0; i < 3; i++)
        TEST_CHECK(tf_files_equal(tf_path("whole", files[i]), tf_path("split", files[i])), "resumed files identical",
                   "%s", files[i]);
    gvm_config again;
    make_config(&again, "ds", NULL);
    st = run(&again, "whole", false, &a);
    TEST_CHECK(st == GVM_ERR_INVALID && strstr(gvm_error_message(), "already has checkpoints"),
               "a fresh run over checkpoints is refused", "%s", gvm_error_message());
}

static void test_codec_file(void) {
    gvm_codec codec;
    gvm_status st = gvm_codec_load(tf_path("whole", "codec.safetensors"), &codec);
    if (!TEST_CHECK(st == GVM_OK, "codec file loads", "%s", gvm_error_message())) return;
    TEST_CHECK(strcmp(codec.name, "test-codec") == 0 && codec.model.cfg.num_quantizers == 2 &&
                   codec.model.cfg.codebook_size == 16 && gvm_nn_encodec_hop_length(&codec.model.cfg) == 8,
               "codec file architecture", "%s %lld x %lld", codec.name, (long long)codec.model.cfg.num_quantizers,
               (long long)codec.model.cfg.codebook_size);
    char *json = gvm_codec_cfg_to_json(&codec.model.cfg);
    gvm_nn_encodec_cfg back;
    st = gvm_codec_cfg_from_json(json, "test", &back);
    char *json2 = st == GVM_OK ? gvm_codec_cfg_to_json(&back) : NULL;
    TEST_CHECK(json2 && strcmp(json, json2) == 0, "architecture JSON round trip", "%s", json);
    free(json);
    free(json2);
    gvm_codec_free(&codec);

    // The GVMGen-style checkpoint file of the run (no codec metadata) is not a codec.
    st = gvm_codec_load(tf_path("whole", "ckpt-000000000006/model.safetensors"), &codec);
    TEST_CHECK(st == GVM_ERR_FORMAT && strstr(gvm_error_message(), "not a codec file"), "a checkpoint is not a codec",
               "%s", gvm_error_message());
    // Truncated: the first half of the file.
    FILE *in = fopen(tf_path("whole", "codec.safetensors"), "rb"), *out = fopen(tf_path("truncated.safetensors", NULL), "wb");
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    for (long i = 0; i < size / 2; i++) fputc(fgetc(in), out);
    fclose(in);
    fclose(out);
    st = gvm_codec_load(tf_path("truncated.safetensors", NULL), &codec);
    TEST_CHECK(st != GVM_OK && strstr(gvm_error_message(), "truncated.safetensors"), "a truncated codec file",
               "%s", gvm_error_message());
    st = gvm_codec_load(tf_path("nosuch.safetensors", NULL), &codec);
    TEST_CHECK(st != GVM_OK && strstr(gvm_error_message(), "nosuch.safetensors"), "a missing codec file", "%s",
               gvm_error_message());
}

// Codes of clip `i` of a shard as stored, compared with encoding its audio directly.
static bool codes_match(gvm_codec *codec, const char *shard, int64_t i, char *why, size_t n) {
    gvm_shard *sh = NULL;
    GVM_CHECK(gvm_shard_open(shard, &sh) == GVM_OK, "%s", gvm_error_message());
    gvm_clip clip;
    GVM_CHECK(gvm_shard_read_clip(sh, i, &clip) == GVM_OK, "%s", gvm_error_message());
    gvm_ctx *ctx = gvm_ctx_new(0);
    gvm_tensor *wave = gvm_tensor_empty(ctx, GVM_F32, 3, (int64_t[]){1, 1, clip.num_samples});
    memcpy(gvm_tensor_f32(wave), clip.audio, (size_t)clip.num_samples * sizeof(float));
    gvm_tensor *codes = gvm_nn_encodec_encode(ctx, &codec->model, wave, 2);  // [1, 2, T]
    const int64_t T = (clip.num_samples + 7) / 8;
    bool ok = clip.codes.k == 2 && clip.codes.t == T && codes->shape[2] == T && clip.codes.codec &&
              strcmp(clip.codes.codec, "test-codec") == 0 && clip.codes.frame_rate == 1000.0;
    for (int64_t j = 0; ok && j < 2 * T; j++) ok = clip.codes.data[j] == gvm_tensor_i64(codes)[j];
    snprintf(why, n, "clip %lld: k %d t %lld (want 2 x %lld), codec %s", (long long)i, (int)clip.codes.k,
             (long long)clip.codes.t, (long long)T, clip.codes.codec ? clip.codes.codec : "none");
    gvm_ctx_free(ctx);
    gvm_clip_free(&clip);
    gvm_shard_close(sh);
    return ok;
}

static void test_encode(void) {
    write_split("enc", "train", 0, 4, RATE);
    write_split("enc", "eval", 10, 2, RATE);
    write_split("enc", "odd", 20, 2, 16000);  // another sample rate: refused, the others go on
    gvm_codec codec;
    GVM_CHECK(gvm_codec_load(tf_path("whole", "codec.safetensors"), &codec) == GVM_OK, "%s", gvm_error_message());
    const char *paths[] = {tf_path("enc", "eval-000.h5"), tf_path("enc", "odd-000.h5"), tf_path("enc", "train-000.h5")};
    gvm_encode_stats s;
    gvm_status st = gvm_encode_shards(&codec, paths, 3, false, NULL, &s);
    TEST_CHECK(st == GVM_ERR_INVALID && strstr(gvm_error_message(), "odd-000.h5") &&
                   strstr(gvm_error_message(), "16000 Hz"),
               "a shard at another rate is refused by name", "%s", gvm_error_message());
    TEST_CHECK(s.shards == 3 && s.shards_failed == 1 && s.encoded == 6 && s.skipped == 0, "the other shards are encoded",
               "%lld shards, %lld failed, %lld encoded", (long long)s.shards, (long long)s.shards_failed,
               (long long)s.encoded);
    char why[256];
    bool all = true;
    for (int64_t i = 0; i < 4 && all; i++) all = codes_match(&codec, tf_path("enc", "train-000.h5"), i, why, sizeof why);
    for (int64_t i = 0; i < 2 && all; i++) all = codes_match(&codec, tf_path("enc", "eval-000.h5"), i, why, sizeof why);
    TEST_CHECK(all, "stored codes = the codec's encode of the clip", "%s", why);
    const char *good[] = {paths[0], paths[2]};
    st = gvm_encode_shards(&codec, good, 2, false, NULL, &s);
    TEST_CHECK(st == GVM_OK && s.encoded == 0 && s.skipped == 6, "a second pass skips encoded clips",
               "%lld encoded, %lld skipped", (long long)s.encoded, (long long)s.skipped);
    st = gvm_encode_shards(&codec, good, 2, true, NULL, &s);
    TEST_CHECK(st == GVM_OK && s.encoded == 6 && s.skipped == 0, "--force re-encodes", "%lld encoded",
               (long long)s.encoded);
    gvm_codec_free(&codec);
}

static void test_config_errors(void) {
    gvm_config cfg;
    const char *bad_ratio[] = {"codec.frame_rate=500", NULL};
    if (make_config(&cfg, "ds", bad_ratio)) {
        tf_recorder r = {0};
        gvm_status st = run(&cfg, "bad1", false, &r);
        TEST_CHECK(st == GVM_ERR_INVALID && strstr(gvm_error_message(), "codec.ratios"), "ratios x frame rate checked",
                   "%s", gvm_error_message());
    }
    const char *long_seg[] = {"codec_train.segment_seconds=2", NULL};
    if (make_config(&cfg, "ds", long_seg)) {
        tf_recorder r = {0};
        gvm_status st = run(&cfg, "bad2", false, &r);
        TEST_CHECK(st == GVM_ERR_INVALID && strstr(gvm_error_message(), "segment_seconds"), "segment longer than clip",
                   "%s", gvm_error_message());
    }
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    train_fixture_init("gvm-codec");
    write_split("ds", "train", 0, 6, RATE);
    write_split("ds", "eval", 10, 3, RATE);
    test_loss_falls();
    test_resume_identity();
    test_codec_file();
    test_encode();
    test_config_errors();
    return train_fixture_finish(test_finish());
}
