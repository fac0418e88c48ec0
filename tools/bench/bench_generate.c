// bench_generate.c: CPU generation speed of the music LM (what `gvm generate` runs per window): codec frames
// per second and the realtime factor (frames/s over the codec's 50 frames/s), with or without classifier-free
// guidance. tools/bench/bench_generate.py runs a PyTorch twin (KV cache, same loop) and transformers'
// MusicgenForCausalLM.generate at the same sizes; tools/bench/bench_generate.sh runs all three and prints
// the ratio table (docs/benchmarks.md, "Generation (CPU)").
//
// The model: a bare gvm_nn_music_lm with random init (HF's N(0, 0.02)), cross_dim = D. The condition is
// F frames of random width-D vectors [1, F, D] (what the visual stack would hand over; its one run per
// window is not timed). Batch 1; --cfg 3 doubles the LM rows. Sampling: top-k 250, temperature 1, seeded.
// Time = one gvm_nn_generate_lm call for --frames codec frames (S = frames + K - 1 LM steps), median of
// --runs after one shorter warm-up generation.
//
//   bench_generate --size demo --frames 500 --cfg 3       (width 128, 4 heads, 2 layers, ffn 512, K 4, card 256)
//   bench_generate --size small --frames 150 --cfg 0      (gvmgen-small: 1024, 16, 24, 4096, K 4, card 2048)
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/gvm.h"
#include "nn/generate.h"

#define CODEC_FRAME_RATE 50.0  // the demo codec's and EnCodec 32 kHz's frames per second

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_generate [--size demo|small] [--dim N] [--heads N] [--layers N] [--ffn N] [--K N]\n"
            "                      [--card N] [--frames N] [--cond-frames N] [--cfg X] [--runs N] [--warmup-frames N]\n"
            "                      [--seed N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    // demo defaults (configs/demo.yaml's LM with the demo codec's card 256)
    int64_t dim = 128, heads = 4, layers = 2, ffn = 512, K = 4, card = 256, frames = 500, cond_frames = 30;
    int64_t runs = 3, warmup_frames = -1, seed = 0;
    float cfg = 0.0f;
    const char *size = "demo";
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--size")) {
            size = v;
            if (!strcmp(v, "demo")) {
                dim = 128, heads = 4, layers = 2, ffn = 512, K = 4, card = 256;
            } else if (!strcmp(v, "small")) {
                dim = 1024, heads = 16, layers = 24, ffn = 4096, K = 4, card = 2048;
            } else {
                usage();
            }
        } else if (!strcmp(a, "--cfg")) {
            cfg = (float)atof(v);
        } else {
            int64_t *fields[] = {&dim, &heads, &layers, &ffn, &K, &card, &frames, &cond_frames, &runs,
                                 &warmup_frames, &seed};
            const char *names[] = {"--dim", "--heads", "--layers", "--ffn", "--K", "--card", "--frames",
                                   "--cond-frames", "--runs", "--warmup-frames", "--seed"};
            int found = 0;
            for (int f = 0; f < 11; f++)
                if (!strcmp(a, names[f])) *fields[f] = atoll(v), found = 1;
            if (!found) usage();
        }
    }
    if (runs < 1 || frames < 1 || cond_frames < 1 || heads < 1 || dim % heads) usage();
    if (warmup_frames < 0) warmup_frames = frames < 32 ? frames : 32;

    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_music_lm lm;
    const gvm_nn_music_lm_cfg lc = {.num_codebooks = K, .card = card, .d_model = dim, .num_heads = heads,
                                    .num_layers = layers, .ffn_dim = ffn};
    gvm_nn_music_lm_init(&lm, &ps, &lc);
    gvm_param_store_finalize(&ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 42);
    gvm_nn_music_lm_reset_parameters(&lm, &rng);

    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_tensor *cond = gvm_tensor_new(GVM_F32, 3, (int64_t[]){1, cond_frames, dim});  // [1, F, D]
    gvm_rng crng;
    gvm_rng_init(&crng, 7);
    gvm_rng_normal(&crng, gvm_tensor_f32(cond), (size_t)(cond_frames * dim), 0.0f, 1.0f);

    gvm_nn_generate_opts o = {.cfg_scale = cfg, .sample = gvm_nn_sampling_opts_default()};  // top-k 250, T 1
    o.sample.seed = (uint64_t)seed;
    int64_t *codes = malloc((size_t)(K * frames) * sizeof *codes);
    double *times = malloc((size_t)runs * sizeof *times);
    if (warmup_frames > 0 &&
        gvm_nn_generate_lm(ctx, &lm, cond, NULL, warmup_frames, NULL, 0, 0, &o, codes) != GVM_OK) {
        fprintf(stderr, "bench_generate: error: %s\n", gvm_error_message());
        return 1;
    }
    for (int64_t r = 0; r < runs; r++) {
        const double t0 = now_s();
        if (gvm_nn_generate_lm(ctx, &lm, cond, NULL, frames, NULL, 0, 0, &o, codes) != GVM_OK) {
            fprintf(stderr, "bench_generate: error: %s\n", gvm_error_message());
            return 1;
        }
        times[r] = now_s() - t0;
    }
    qsort(times, (size_t)runs, sizeof *times, cmp_double);
    const double med = times[runs / 2], fps = (double)frames / med;
    printf("gvm          %-5s D%lld H%lld L%lld K%lld card%lld cfg %g: %lld frames in %.3f s (median of %lld) = "
           "%.1f codec frames/s, realtime x%.2f (threads %d, BLAS %s)\n",
           size, (long long)dim, (long long)heads, (long long)layers, (long long)K, (long long)card, (double)cfg,
           (long long)frames, med, (long long)runs, fps, fps / CODEC_FRAME_RATE, omp_get_max_threads(),
           openblas_get_corename());
    printf("{\"impl\":\"gvm\",\"size\":\"%s\",\"cfg\":%g,\"frames\":%lld,\"s\":%.4f,\"fps\":%.2f,\"rtf\":%.3f,"
           "\"threads\":%d,\"blas\":\"%s\"}\n",
           size, (double)cfg, (long long)frames, med, fps, fps / CODEC_FRAME_RATE, omp_get_max_threads(),
           openblas_get_corename());
    free(codes);
    free(times);
    gvm_tensor_free(cond);
    gvm_ctx_free(ctx);
    gvm_nn_music_lm_free(&lm);
    gvm_param_store_free(&ps);
    return 0;
}
