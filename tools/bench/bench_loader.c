// bench_loader.c: batch loader throughput (data/loader.h) against what a training step consumes.
//
// Writes a synthetic shard of reference-sized clips (30 frames of 336x336, 30 s of 32 kHz audio, EnCodec-shaped
// codes [4, 1500]) into a temporary folder, then measures
//   1. the shard read alone: clips/s of gvm_shard_read_clip_parts (HDF5 + inflate), for the breakdown;
//   2. the loader's production rate: batches/s when the consumer takes batches as fast as they come;
//   3. a simulated training loop: the consumer holds each batch for --step seconds (the GPU's step time,
//      a sleep: a GPU step leaves the CPU idle), and the time it waited for data in steady state.
// The shard is read from the page cache after writing it: this measures the CPU side (decompression,
// normalisation, copies), not a disk or a network file system.
//
//   bench_loader [--clips 24] [--batch 8] [--frames 30] [--size 336] [--step 0.2] [--steps 20]
//                [--prefetch 2] [--workers 1] [--dir DIR (keep the shard there)]
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/loader.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_seconds(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {}
}

static uint32_t g_state = 12345;
static uint32_t rnd(void) {  // xorshift32: cheap noise for the synthetic frames
    g_state ^= g_state << 13;
    g_state ^= g_state >> 17;
    g_state ^= g_state << 5;
    return g_state;
}

// Frames that compress like video frames do (smooth shading, edges, a little sensor noise), so the inflate
// cost is realistic: random bytes would not compress, and flat frames would cost nothing.
static void synth_frame(uint8_t *px, int size, int clip, int f) {
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            int cx = (clip * 37 + f * 11) % size, cy = (clip * 53 + f * 7) % size;
            int disc = (x - cx) * (x - cx) + (y - cy) * (y - cy) < size * size / 16;
            for (int c = 0; c < 3; c++) {
                int v = (x * (c + 1) + y * (3 - c)) * 255 / (4 * size) + (disc ? 90 : 0) + (int)(rnd() % 7);
                px[(y * size + x) * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
}

static int write_shard(const char *path, int clips, int frames, int size) {
    gvm_shard_info info = {.frame_height = size, .frame_width = size, .fps = 1.0, .sample_rate = 32000,
                           .created_by = "bench_loader"};
    gvm_shard_writer *w = NULL;
    if (gvm_shard_create(path, &info, &w) != GVM_OK) return fprintf(stderr, "%s\n", gvm_error_message()), 1;
    int64_t ns = 30 * 32000, tm = 1500;
    uint8_t *px = malloc((size_t)frames * size * size * 3);
    float *audio = malloc((size_t)ns * sizeof(float));
    int16_t *codes = malloc((size_t)(4 * tm) * sizeof(int16_t));
    for (int i = 0; i < clips; i++) {
        for (int f = 0; f < frames; f++) synth_frame(px + (size_t)f * size * size * 3, size, i, f);
        for (int64_t t = 0; t < ns; t++)  // a chord with a little noise: music-like, hardly compressible as f32
            audio[t] = 0.3f * sinf(0.0864f * (float)t) + 0.2f * sinf(0.1296f * (float)t) +
                       0.01f * ((float)(rnd() % 2001) / 1000.0f - 1.0f);
        for (int64_t t = 0; t < 4 * tm; t++) codes[t] = (int16_t)(rnd() % 2048);
        char id[32];
        snprintf(id, sizeof id, "bench/%04d", i);
        gvm_clip c = {.clip_id = id, .split = "train", .duration = 30.0, .fps = 1.0, .sample_rate = 32000,
                      .frames = px, .num_frames = frames, .height = size, .width = size, .audio = audio,
                      .num_samples = ns, .codes = {codes, 4, tm, 50.0, "encodec_32khz"}};
        if (gvm_shard_add_clip(w, &c) != GVM_OK) return fprintf(stderr, "%s\n", gvm_error_message()), 1;
    }
    free(px);
    free(audio);
    free(codes);
    if (gvm_shard_writer_close(w, true) != GVM_OK) return fprintf(stderr, "%s\n", gvm_error_message()), 1;
    return 0;
}

int main(int argc, char **argv) {
    int clips = 24, batch = 8, frames = 30, size = 336, steps = 20, prefetch = 2, workers = 1;
    double step = 0.2;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return fprintf(stderr, "bench_loader: %s needs a value\n", argv[i]), 2;
        if (!strcmp(argv[i], "--clips")) clips = atoi(v);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(v);
        else if (!strcmp(argv[i], "--frames")) frames = atoi(v);
        else if (!strcmp(argv[i], "--size")) size = atoi(v);
        else if (!strcmp(argv[i], "--step")) step = atof(v);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(v);
        else if (!strcmp(argv[i], "--prefetch")) prefetch = atoi(v);
        else if (!strcmp(argv[i], "--workers")) workers = atoi(v);
        else if (!strcmp(argv[i], "--dir")) dir = v;
        else return fprintf(stderr, "bench_loader: unknown option %s\n", argv[i]), 2;
        i++;
    }
    char tmp[256], path[600];
    if (!dir) {
        snprintf(tmp, sizeof tmp, "%s/gvm-bench-loader-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmp)) return perror("mkdtemp"), 1;
    }
    snprintf(path, sizeof path, "%s/train-000.h5", dir ? dir : tmp);
    struct stat sb;
    double t0 = now();
    if (stat(path, &sb) != 0) {
        if (write_shard(path, clips, frames, size)) return 1;
        stat(path, &sb);
        printf("wrote %s: %d clips of %d frames %dx%d, 30 s audio, codes [4, 1500]: %.0f MB in %.1f s\n", path, clips,
               frames, size, size, (double)sb.st_size / 1e6, now() - t0);
    }

    // 1. The reader alone, all parts and each part (where the time goes).
    gvm_shard *s = NULL;
    if (gvm_shard_open(path, &s) != GVM_OK) return fprintf(stderr, "%s\n", gvm_error_message()), 1;
    int64_t n = gvm_shard_clip_count(s);
    static const struct { unsigned parts; const char *name; } what[4] = {
        {GVM_CLIP_FRAMES | GVM_CLIP_AUDIO | GVM_CLIP_CODES, "frames + audio + codes"},
        {GVM_CLIP_FRAMES, "frames"}, {GVM_CLIP_AUDIO, "audio"}, {GVM_CLIP_CODES, "codes"}};
    for (int p = 0; p < 4; p++) {
        t0 = now();
        for (int64_t i = 0; i < n; i++) {
            gvm_clip c;
            if (gvm_shard_read_clip_parts(s, i, what[p].parts, &c) != GVM_OK)
                return fprintf(stderr, "%s\n", gvm_error_message()), 1;
            gvm_clip_free(&c);
        }
        double read_s = (now() - t0) / (double)n;
        printf("shard read alone, %s: %.1f ms/clip%s", what[p].name, 1e3 * read_s, p ? "\n" : "");
        if (p == 0) printf(" = %.2f batches/s of %d\n", 1.0 / (read_s * batch), batch);
    }
    gvm_shard_close(s);

    // 2. and 3. The loader.
    const char *list[1] = {path};
    gvm_loader_config c = gvm_loader_config_default();
    c.shards = list;
    c.num_shards = 1;
    c.batch_size = batch;
    c.parts = GVM_CLIP_FRAMES | GVM_CLIP_AUDIO | GVM_CLIP_CODES;
    c.frames = frames;
    c.code_steps = 1500;
    c.codebooks = 4;
    c.code_pad = -100;
    c.codec = "encodec_32khz";
    c.audio_samples = 30 * 32000;
    c.seed = 1;
    c.drop_last = true;
    c.prefetch = prefetch;
    c.workers = workers;
    for (int mode = 0; mode < 2; mode++) {
        gvm_loader *l = NULL;
        t0 = now();
        if (gvm_loader_open(&c, &l) != GVM_OK) return fprintf(stderr, "%s\n", gvm_error_message()), 1;
        double open_s = now() - t0;
        gvm_loader_batch b;
        if (gvm_loader_next(l, &b) != GVM_OK) return fprintf(stderr, "%s\n", gvm_error_message()), 1;
        double first_s = now() - t0;
        gvm_loader_stats s0 = gvm_loader_get_stats(l);
        if (mode == 1) sleep_seconds(step);
        t0 = now();
        for (int k = 1; k < steps; k++) {
            if (gvm_loader_next(l, &b) != GVM_OK) return fprintf(stderr, "%s\n", gvm_error_message()), 1;
            if (mode == 1) sleep_seconds(step);
        }
        double el = now() - t0;
        gvm_loader_stats s1 = gvm_loader_get_stats(l);
        double wait = s1.wait_seconds - s0.wait_seconds;
        double fill = (s1.fill_seconds / (double)(s1.clips_read ? s1.clips_read : 1)) * batch;
        if (mode == 0)
            printf("loader, consumer as fast as possible: open %.2f s, first batch %.2f s, then %.2f batches/s "
                   "(%.0f ms per batch in its thread; %d-batch ring, %d worker%s, %.0f MB per batch)\n",
                   open_s, first_s, (double)(steps - 1) / el, 1e3 * fill, prefetch, workers, workers > 1 ? "s" : "",
                   (double)(gvm_tensor_nbytes(b.frames) + gvm_tensor_nbytes(b.audio) + gvm_tensor_nbytes(b.codes) +
                            gvm_tensor_nbytes(b.frame_mask) + gvm_tensor_nbytes(b.audio_mask) +
                            gvm_tensor_nbytes(b.code_mask)) / 1e6);
        else
            printf("training loop at %.3f s/step (%.2f batches/s consumed): waited %.1f ms in %d steps "
                   "(%.2f%% of the loop), %.1f ms per step\n",
                   step, 1.0 / step, 1e3 * wait, steps - 1, 100.0 * wait / el, 1e3 * wait / (steps - 1));
        gvm_loader_close(l);
    }
    if (!dir) {
        unlink(path);
        rmdir(tmp);
    }
    return 0;
}
