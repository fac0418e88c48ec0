// test_train_generate.c: gvm generate (train/generate_video.c and the CLI tools/gvm/cmd_generate.c) end to end
// on a tiny model, on the CPU, with real media made by the ffmpeg program from lavfi sources.
//
// Set-up: a tiny random codec (8 kHz, ratios [8, 5]: hop 40, 200 codec frames/s, 2 codebooks of 16) saved as a
// codec file; synthetic shards (28 px frames at 1 fps, random codes of that codec); a tiny GVMGen trained on them
// for 2 steps with clip_seconds 2 (gvm_train_run), whose config names the codec. A 5.3 s testsrc2 video (H.264)
// with a sine sound track. Then:
//  * a 3.5 s generation: the WAV holds 3.5 s at 8 kHz exactly (within one codec frame: 40 samples), in 3
//    windows (clip 2 s, overlap 1 s: windows [0,2) [1,3) [2,3.5)), finite, loudness-normalised to -14 LUFS
//    (+-0.5 LU) or peak-limited;
//  * the muxed MP4 (ffprobe): its video stream is the source's (same codec, size, packet count) and it has an AAC
//    audio stream of about the music's duration;
//  * the same seed twice gives byte-identical WAVs; another seed a different one;
//  * the whole video (no duration) gives the video stream's duration (5.32 s: 133 frames at 25 fps); the EMA and raw weights give different music;
//  * errors, each with its message and nothing written: an audio-only file as the video, a codec file as the
//    checkpoint, a truncated checkpoint, the codec of another model, a duration longer than the video; and the
//    CLI: --duration 0 and a negative --cfg are usage errors (exit 2), a missing video exits 1.
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/rng.h"
#include "data/dataset.h"
#include "data/loudness.h"
#include "data/media.h"
#include "tests/media_fixture.h"
#include "tests/test_util.h"
#include "tests/train_fixture.h"
#include "train/codec_file.h"
#include "train/config.h"
#include "train/generate_video.h"
#include "train/loop.h"

enum { S = 28, RATE = 8000, CODE_RATE = 200, K = 2, CARD = 16, CLIP_S = 2 };

static char g_gvm[1024];  // the gvm program beside this test

static void write_codec(const char *path, const char *name, int64_t card) {
    gvm_nn_encodec_cfg c = gvm_nn_encodec_cfg_tiny();
    c.sampling_rate = RATE;
    c.n_ratios = 2;
    c.upsampling_ratios[0] = 8;
    c.upsampling_ratios[1] = 5;
    c.num_quantizers = K;
    c.codebook_size = card;
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_encodec m;
    GVM_CHECK(gvm_nn_encodec_init(&m, &ps, &c) == GVM_OK, "%s", gvm_error_message());
    gvm_param_store_finalize(&ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 3);
    gvm_nn_encodec_reset_parameters(&m, &rng);
    GVM_CHECK(gvm_codec_save(path, &m, &ps, name) == GVM_OK, "%s", gvm_error_message());
    gvm_nn_encodec_free(&m);
    gvm_param_store_free(&ps);
}

static void write_shards(void) {
    mkdir(tmp_path("ds"), 0777);
    const tf_shard_spec spec = {.split = "train", .clips = 4, .seed = 1, .size = S, .frames = CLIP_S, .k = K,
                                .card = CARD, .code_len = CLIP_S * CODE_RATE, .code_rate = CODE_RATE,
                                .codec = "tiny-codec", .sample_rate = RATE};
    tf_write_shard(tmp_path("ds/train-000.h5"), &spec);
}

static void train_model(void) {
    char dir_kv[700], codec_kv[700];
    snprintf(dir_kv, sizeof dir_kv, "data.dir=%s", tmp_path("ds"));
    snprintf(codec_kv, sizeof codec_kv, "codec.init=%s", tmp_path("codec.safetensors"));
    const char *kv[] = {
        "model.vision.width=16", "model.vision.layers=1", "model.vision.heads=2", "model.vision.patch=14",
        "model.vision.image_size=28", "model.vision.freeze=true", "model.qformer.width=16", "model.qformer.layers=2",
        "model.qformer.heads=2", "model.qformer.queries=2", "model.qformer.cross_every=2", "model.qformer.ffn=32",
        "model.lm.width=32", "model.lm.heads=2", "model.lm.layers=2", "model.lm.ffn=64", "model.lm.codebooks=2",
        "model.lm.delays=[0, 1]", "model.cond_dim=16", "codec.name=tiny-codec", "codec.sample_rate=8000",
        "codec.frame_rate=200", "codec.codebooks=2", "codec.card=16", codec_kv, dir_kv, "data.clip_seconds=2",
        "data.fps=1", "data.image_size=28", "data.batch_size=2", "train.steps=2", "train.lr=1e-3",
        "train.warmup_steps=0", "train.ema_decay=0.5", "train.precision=f32", "train.device=cpu",
        "train.eval_every=0", "train.checkpoint_every=0"};
    gvm_config cfg;
    GVM_CHECK(tf_config(&cfg, kv, sizeof kv / sizeof kv[0], NULL), "the test's config does not load");
    gvm_train_opts o = {.quiet = true};
    GVM_CHECK(gvm_train_run(&cfg, tmp_path("run"), false, &o, NULL) == GVM_OK, "%s", gvm_error_message());
}

static gvm_generate_request request(const char *wav, double duration, uint64_t seed) {
    gvm_generate_request r = gvm_generate_request_default();
    r.checkpoint = tmp_path("run");
    r.video = tmp_path("video.mp4");
    r.out_wav = tmp_path(wav);
    r.duration = duration;
    r.seed = seed;
    r.overlap = 1.0;
    return r;
}

static bool same_file(const char *a, const char *b) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

static void test_generate(void) {
    gvm_generate_request r = request("a.wav", 3.5, 7);
    r.mux = tmp_path("a.mp4");
    gvm_generate_report rep;
    gvm_status st = gvm_generate_video(&r, &rep);
    if (!TEST_CHECK(st == GVM_OK, "generate 3.5 s", "%s", gvm_error_message())) return;
    float *x = NULL;
    int64_t n = 0;
    int rate = 0;
    GVM_CHECK(gvm_wav_read(r.out_wav, &x, &n, &rate) == GVM_OK, "%s", gvm_error_message());
    TEST_CHECK(rate == RATE && llabs(n - (int64_t)(3.5 * RATE)) <= RATE / CODE_RATE, "WAV of the requested duration",
               "%lld samples at %d Hz (want %d)", (long long)n, rate, (int)(3.5 * RATE));
    TEST_CHECK(rep.windows == 3 && rep.codec_frames == (int64_t)(3.5 * CODE_RATE) && rep.used_ema,
               "long video in windows", "%d windows, %lld codec frames, ema %d", rep.windows,
               (long long)rep.codec_frames, rep.used_ema);
    double lufs = 0;
    gvm_loudness_integrated(x, n, 1, RATE, &lufs);
    bool finite = true;
    for (int64_t i = 0; i < n; i++) finite &= isfinite(x[i]);
    TEST_CHECK(finite && (fabs(lufs - GVM_LOUDNESS_TARGET_LUFS) < 0.5 || rep.loudness.action == GVM_LOUDNESS_PEAK_LIMITED),
               "loudness-normalised", "%.2f LUFS (action %d)", lufs, (int)rep.loudness.action);
    free(x);

    // The MP4: the source's video stream, copied, and an AAC track.
    const char *src = tmp_path("video.mp4"), *mp4 = r.mux;
    char a[256], b[256];
    capture(a, sizeof a, "ffprobe -v error -select_streams v:0 -count_packets -show_entries "
            "stream=codec_name,width,height,nb_read_packets -of csv=p=0 '%s'", src);
    capture(b, sizeof b, "ffprobe -v error -select_streams v:0 -count_packets -show_entries "
            "stream=codec_name,width,height,nb_read_packets -of csv=p=0 '%s'", mp4);
    TEST_CHECK(a[0] && strcmp(a, b) == 0, "muxed video stream = the source's", "source '%s', muxed '%s'", a, b);
    char ac[64];
    capture(ac, sizeof ac, "ffprobe -v error -select_streams a:0 -show_entries stream=codec_name -of csv=p=0 '%s'", mp4);
    const double adur = probe_value(mp4, "a:0", "stream=duration");
    TEST_CHECK(strcmp(ac, "aac") == 0 && fabs(adur - 3.5) < 0.1, "muxed audio stream", "codec '%s', %.3f s", ac, adur);

    // Determinism by seed.
    gvm_generate_request r2 = request("b.wav", 3.5, 7), r3 = request("c.wav", 3.5, 8);
    st = gvm_generate_video(&r2, &rep);
    TEST_CHECK(st == GVM_OK && same_file(r.out_wav, r2.out_wav), "same seed, same WAV", "%s", gvm_error_message());
    st = gvm_generate_video(&r3, &rep);
    TEST_CHECK(st == GVM_OK && !same_file(r.out_wav, r3.out_wav), "another seed, another WAV", "%s",
               gvm_error_message());
    gvm_generate_request r4 = request("d.wav", 3.5, 7);
    r4.no_ema = true;
    st = gvm_generate_video(&r4, &rep);
    TEST_CHECK(st == GVM_OK && !rep.used_ema && !same_file(r.out_wav, r4.out_wav), "raw weights differ from EMA", "%s",
               gvm_error_message());

    // The whole video.
    gvm_generate_request r5 = request("e.wav", 0, 1);
    st = gvm_generate_video(&r5, &rep);
    const double vdur = probe_value(tmp_path("video.mp4"), "v:0", "stream=duration");  // 133 frames at 25 fps
    TEST_CHECK(st == GVM_OK && fabs(rep.duration - vdur) < 1.0 / CODE_RATE + 1e-9, "the whole video",
               "%s; %.3f s, the video stream %.3f s", gvm_error_message(), rep.duration, vdur);
}

static void expect_error(const char *name, gvm_generate_request r, const char *want) {
    gvm_generate_report rep;
    unlink(r.out_wav);
    gvm_status st = gvm_generate_video(&r, &rep);
    TEST_CHECK(st != GVM_OK && strstr(gvm_error_message(), want) && access(r.out_wav, F_OK) != 0, name,
               "status %d: %s", (int)st, gvm_error_message());
}

static void test_errors(void) {
    gvm_generate_request r = request("err.wav", 1.0, 0);
    r.video = tmp_path("tone.m4a");
    expect_error("audio-only file", r, "no video stream");
    r = request("err.wav", 1.0, 0);
    r.checkpoint = tmp_path("codec.safetensors");
    expect_error("a codec file as checkpoint", r, "neither a run folder");
    r = request("err.wav", 1.0, 0);
    r.codec = tmp_path("other-codec.safetensors");
    expect_error("the codec of another model", r, "not the one the model was trained on");
    r = request("err.wav", 30.0, 0);
    expect_error("duration beyond the video", r, "longer than the video");
    // A truncated checkpoint: a copy of the run with model.safetensors cut in half.
    sh("cp -r '%s' '%s' && f=$(ls -d '%s'/ckpt-*)/model.safetensors && truncate -s $(( $(stat -c %%s \"$f\") / 2 )) \"$f\"",
       tmp_path("run"), tmp_path("run-cut"), tmp_path("run-cut"));
    r = request("err.wav", 1.0, 0);
    r.checkpoint = tmp_path("run-cut");
    expect_error("truncated checkpoint", r, "model.safetensors");

    // The command line.
    char out[8192];
    int rc = system(NULL);
    (void)rc;
    snprintf(out, sizeof out, "'%s' generate --checkpoint '%s' --video '%s' --out '%s' --duration 0 2>/dev/null", g_gvm,
             tmp_path("run"), tmp_path("video.mp4"), tmp_path("cli.wav"));
    rc = system(out);
    TEST_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "CLI --duration 0 is a usage error", "status %d", rc);
    snprintf(out, sizeof out, "'%s' generate --checkpoint '%s' --video '%s' --out '%s' --cfg -1 2>/dev/null", g_gvm,
             tmp_path("run"), tmp_path("video.mp4"), tmp_path("cli.wav"));
    rc = system(out);
    TEST_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2 && access(tmp_path("cli.wav"), F_OK) != 0,
               "CLI negative --cfg is a usage error", "status %d", rc);
    snprintf(out, sizeof out, "'%s' generate --checkpoint '%s' --video '%s' --out '%s' -q --duration 1 2>&1", g_gvm,
             tmp_path("run"), tmp_path("nosuch.mp4"), tmp_path("cli.wav"));
    char msg[1024];
    capture(msg, sizeof msg, "%s", out);
    TEST_CHECK(strstr(msg, "nosuch.mp4") != NULL, "CLI missing video names it", "%s", msg);
}

int main(int argc, char **argv) {
    test_init(argc, argv);
    media_fixture_init("gvm-generate");
    char self[900];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    GVM_CHECK(len > 0, "cannot find this program's folder");
    self[len] = 0;
    *strrchr(self, '/') = 0;
    snprintf(g_gvm, sizeof g_gvm, "%s/gvm", self);
    write_codec(tmp_path("codec.safetensors"), "tiny-codec", CARD);
    write_codec(tmp_path("other-codec.safetensors"), "other-codec", 32);
    write_shards();
    train_model();
    GVM_CHECK(ffmpeg("video.mp4", "-f lavfi -i testsrc2=size=64x48:rate=25 -f lavfi -i sine=frequency=440:"
                                  "sample_rate=44100 -t 5.3 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac"),
              "ffmpeg failed");
    GVM_CHECK(ffmpeg("tone.m4a", "-f lavfi -i sine=frequency=440:sample_rate=44100 -t 2 -c:a aac"), "ffmpeg failed");
    test_generate();
    test_errors();
    int rc = test_finish();
    if (rc == 0) sh("rm -rf '%s'", g_dir);
    return rc;
}
