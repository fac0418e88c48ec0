// bench_core.c: forward+backward timings of core ops and of a whole transformer block.
//
//   OMP_NUM_THREADS=2 build/bench_core [--iters N] [--min-ms MS] [--only NAME]
//
// Prints one JSON object per line: {"name", "ms" (median), "gflop" (model FLOPs per fwd+bwd, 0 when not
// GEMM-shaped)} and first a plain sgemm rate measured in the same run, so GEMM-heavy ops can be reported
// as a fraction of what BLAS itself reaches here. tools/bench/bench_core.py runs this program and the
// PyTorch twin of every case and prints the comparison table.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/gvm.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static gvm_tensor *randn(uint64_t seed, int ndim, const int64_t *shape, float std, bool grad) {
    gvm_tensor *t = gvm_tensor_new(GVM_F32, ndim, shape);
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    gvm_rng_normal(&rng, t->data, (size_t)t->numel, 0.0f, std);
    t->requires_grad = grad;
    return t;
}

static gvm_tensor *randint(uint64_t seed, int ndim, const int64_t *shape, int64_t high) {
    gvm_tensor *t = gvm_tensor_new(GVM_I64, ndim, shape);
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    for (int64_t i = 0; i < t->numel; i++) ((int64_t *)t->data)[i] = (int64_t)gvm_rng_below(&rng, (uint64_t)high);
    return t;
}

// ---- cases ------------------------------------------------------------------------------------------------
// Each case builds its inputs once (setup), then `run` does forward + backward with an all-ones seed
// gradient (or a scalar loss's backward). Inputs live in a small table the case owns.

typedef struct bench_case bench_case;
struct bench_case {
    const char *name;
    double gflop;  // per fwd+bwd, for GEMM-shaped work
    void (*setup)(bench_case *c);
    gvm_tensor *(*run)(gvm_ctx *ctx, bench_case *c);
    gvm_tensor *in[16];
    int n_in;
};

#define IN(i) (c->in[i])

// linear: x [3000, 512] w [2048, 512] b [2048] (the block's MLP up-projection)
static void setup_linear(bench_case *c) {
    IN(0) = randn(1, 2, (int64_t[]){3000, 512}, 1, true);
    IN(1) = randn(2, 2, (int64_t[]){2048, 512}, 0.02f, true);
    IN(2) = randn(3, 1, (int64_t[]){2048}, 0.02f, true);
    c->n_in = 3;
}
static gvm_tensor *run_linear(gvm_ctx *ctx, bench_case *c) { return gvm_linear(ctx, IN(0), IN(1), IN(2)); }

// batched matmul: [16, 256, 64] x [16, 64, 256]
static void setup_bmm(bench_case *c) {
    IN(0) = randn(1, 3, (int64_t[]){16, 256, 64}, 1, true);
    IN(1) = randn(2, 3, (int64_t[]){16, 64, 256}, 1, true);
    c->n_in = 2;
}
static gvm_tensor *run_bmm(gvm_ctx *ctx, bench_case *c) { return gvm_matmul(ctx, IN(0), IN(1), false, false); }

// add with broadcast: [2, 1500, 512] + [512]
static void setup_add(bench_case *c) {
    IN(0) = randn(1, 3, (int64_t[]){2, 1500, 512}, 1, true);
    IN(1) = randn(2, 1, (int64_t[]){512}, 1, true);
    c->n_in = 2;
}
static gvm_tensor *run_add(gvm_ctx *ctx, bench_case *c) { return gvm_add(ctx, IN(0), IN(1)); }

static void setup_mul(bench_case *c) {
    IN(0) = randn(1, 3, (int64_t[]){2, 1500, 512}, 1, true);
    IN(1) = randn(2, 3, (int64_t[]){2, 1500, 512}, 1, true);
    c->n_in = 2;
}
static gvm_tensor *run_mul(gvm_ctx *ctx, bench_case *c) { return gvm_mul(ctx, IN(0), IN(1)); }

// gelu: [2, 1500, 2048] (the MLP hidden)
static void setup_big(bench_case *c) {
    IN(0) = randn(1, 3, (int64_t[]){2, 1500, 2048}, 1, true);
    c->n_in = 1;
}
static gvm_tensor *run_gelu(gvm_ctx *ctx, bench_case *c) { return gvm_gelu(ctx, IN(0)); }
static gvm_tensor *run_silu(gvm_ctx *ctx, bench_case *c) { return gvm_silu(ctx, IN(0)); }
static gvm_tensor *run_softmax(gvm_ctx *ctx, bench_case *c) { return gvm_softmax(ctx, IN(0), -1); }
static gvm_tensor *run_sum(gvm_ctx *ctx, bench_case *c) { return gvm_sum(ctx, IN(0), 1, false); }
static gvm_tensor *run_transpose(gvm_ctx *ctx, bench_case *c) { return gvm_transpose(ctx, IN(0), 1, 2); }

// layer_norm: [2, 1500, 512]
static void setup_ln(bench_case *c) {
    IN(0) = randn(1, 3, (int64_t[]){2, 1500, 512}, 1, true);
    IN(1) = randn(2, 1, (int64_t[]){512}, 1, true);
    IN(2) = randn(3, 1, (int64_t[]){512}, 1, true);
    c->n_in = 3;
}
static gvm_tensor *run_ln(gvm_ctx *ctx, bench_case *c) { return gvm_layer_norm(ctx, IN(0), IN(1), IN(2), 1e-5f); }

// cross_entropy: logits [6000, 2048] (2 x 1500 steps x 2 codebooks' worth), targets [6000]
static void setup_ce(bench_case *c) {
    IN(0) = randn(1, 2, (int64_t[]){6000, 2048}, 1, true);
    IN(1) = randint(2, 1, (int64_t[]){6000}, 2048);
    c->n_in = 2;
}
static gvm_tensor *run_ce(gvm_ctx *ctx, bench_case *c) { return gvm_cross_entropy(ctx, IN(0), IN(1), -100); }

// embedding: weight [2049, 512], idx [2, 1500]
static void setup_emb(bench_case *c) {
    IN(0) = randn(1, 2, (int64_t[]){2049, 512}, 1, true);
    IN(1) = randint(2, 2, (int64_t[]){2, 1500}, 2049);
    c->n_in = 2;
}
static gvm_tensor *run_emb(gvm_ctx *ctx, bench_case *c) { return gvm_embedding(ctx, IN(0), IN(1)); }

// attention: B=2, T=1500, H=8, D=64, causal
static void setup_attn(bench_case *c) {
    for (int i = 0; i < 3; i++) IN(i) = randn((uint64_t)i + 1, 4, (int64_t[]){2, 1500, 8, 64}, 1, true);
    c->n_in = 3;
}
static gvm_tensor *run_attn(gvm_ctx *ctx, bench_case *c) {
    gvm_attention_opts o = {.causal = true};
    return gvm_attention(ctx, IN(0), IN(1), IN(2), &o);
}

// conv1d: x [4, 64, 8000], w [64, 64, 7], padding 3 (a SEANet-sized layer)
static void setup_conv(bench_case *c) {
    IN(0) = randn(1, 3, (int64_t[]){4, 64, 8000}, 1, true);
    IN(1) = randn(2, 3, (int64_t[]){64, 64, 7}, 0.05f, true);
    IN(2) = randn(3, 1, (int64_t[]){64}, 0.05f, true);
    c->n_in = 3;
}
static gvm_tensor *run_conv(gvm_ctx *ctx, bench_case *c) {
    gvm_conv1d_opts o = {.stride = 1, .padding = 3, .dilation = 1, .groups = 1};
    return gvm_conv1d(ctx, IN(0), IN(1), IN(2), &o);
}
// conv_transpose1d: x [4, 128, 1000] w [128, 64, 8] stride 4 (an upsampling layer)
static void setup_convt(bench_case *c) {
    IN(0) = randn(1, 3, (int64_t[]){4, 128, 1000}, 1, true);
    IN(1) = randn(2, 3, (int64_t[]){128, 64, 8}, 0.05f, true);
    IN(2) = randn(3, 1, (int64_t[]){64}, 0.05f, true);
    c->n_in = 3;
}
static gvm_tensor *run_convt(gvm_ctx *ctx, bench_case *c) {
    gvm_conv1d_opts o = {.stride = 4, .padding = 2, .dilation = 1, .groups = 1};
    return gvm_conv_transpose1d(ctx, IN(0), IN(1), IN(2), &o);
}

// lstm: x [4, 250, 256], hidden 256 (EnCodec-like at 50 Hz x 5 s)
static void setup_lstm(bench_case *c) {
    IN(0) = randn(1, 3, (int64_t[]){4, 250, 256}, 1, true);
    IN(1) = randn(2, 2, (int64_t[]){1024, 256}, 0.05f, true);
    IN(2) = randn(3, 2, (int64_t[]){1024, 256}, 0.05f, true);
    IN(3) = randn(4, 1, (int64_t[]){1024}, 0.05f, true);
    IN(4) = randn(5, 1, (int64_t[]){1024}, 0.05f, true);
    c->n_in = 5;
}
static gvm_tensor *run_lstm(gvm_ctx *ctx, bench_case *c) { return gvm_lstm(ctx, IN(0), IN(1), IN(2), IN(3), IN(4)); }

// The transformer block: pre-norm, d=512, 8 heads, T=1500, B=2, MLP 4x GELU, no biases in attention
// (MusicGen-style), biases in the MLP.
enum { BLK_B = 2, BLK_T = 1500, BLK_D = 512, BLK_H = 8 };
static void setup_block(bench_case *c) {
    int64_t dd[2] = {BLK_D, BLK_D};
    IN(0) = randn(1, 3, (int64_t[]){BLK_B, BLK_T, BLK_D}, 1, true);
    IN(1) = randn(2, 1, (int64_t[]){BLK_D}, 1, true);  // ln1 w
    IN(2) = randn(3, 1, (int64_t[]){BLK_D}, 1, true);  // ln1 b
    IN(3) = randn(4, 2, dd, 0.02f, true);              // q
    IN(4) = randn(5, 2, dd, 0.02f, true);              // k
    IN(5) = randn(6, 2, dd, 0.02f, true);              // v
    IN(6) = randn(7, 2, dd, 0.02f, true);              // out proj
    IN(7) = randn(8, 1, (int64_t[]){BLK_D}, 1, true);  // ln2 w
    IN(8) = randn(9, 1, (int64_t[]){BLK_D}, 1, true);  // ln2 b
    IN(9) = randn(10, 2, (int64_t[]){4 * BLK_D, BLK_D}, 0.02f, true);
    IN(10) = randn(11, 1, (int64_t[]){4 * BLK_D}, 0.02f, true);
    IN(11) = randn(12, 2, (int64_t[]){BLK_D, 4 * BLK_D}, 0.02f, true);
    IN(12) = randn(13, 1, (int64_t[]){BLK_D}, 0.02f, true);
    c->n_in = 13;
}
static gvm_tensor *run_block(gvm_ctx *ctx, bench_case *c) {
    int64_t heads[4] = {BLK_B, BLK_T, BLK_H, BLK_D / BLK_H};
    gvm_tensor *x = IN(0);                                                   // [B, T, D]
    gvm_tensor *h = gvm_layer_norm(ctx, x, IN(1), IN(2), 1e-5f);
    gvm_tensor *q = gvm_reshape(ctx, gvm_linear(ctx, h, IN(3), NULL), 4, heads);  // [B, T, H, Dh]
    gvm_tensor *k = gvm_reshape(ctx, gvm_linear(ctx, h, IN(4), NULL), 4, heads);
    gvm_tensor *v = gvm_reshape(ctx, gvm_linear(ctx, h, IN(5), NULL), 4, heads);
    gvm_attention_opts o = {.causal = true};
    gvm_tensor *a = gvm_reshape(ctx, gvm_attention(ctx, q, k, v, &o), 3, (int64_t[]){BLK_B, BLK_T, BLK_D});
    x = gvm_add(ctx, x, gvm_linear(ctx, a, IN(6), NULL));
    h = gvm_layer_norm(ctx, x, IN(7), IN(8), 1e-5f);
    h = gvm_linear(ctx, gvm_gelu(ctx, gvm_linear(ctx, h, IN(9), IN(10))), IN(11), IN(12));
    return gvm_add(ctx, x, h);                                               // [B, T, D]
}

static double block_gflop(void) {
    // Linear layers: 2 flops per MAC, x3 for forward + two backward GEMMs; attention: QK^T and PV over
    // the causal half counted as full (as PyTorch's kernels compute them), forward + 2x backward + the
    // recomputed scores.
    double tokens = (double)BLK_B * BLK_T, d = BLK_D;
    double linear = 3.0 * 2.0 * tokens * (4 * d * d + 8 * d * d);
    double attn = 2.0 * 2.0 * BLK_B * (double)BLK_T * BLK_T * d * (1 + 2 + 0.5);
    return (linear + attn) / 1e9;
}

static bench_case k_cases[] = {
    {"linear 3000x512->2048", 3 * 2.0 * 3000 * 512 * 2048 / 1e9, setup_linear, run_linear, {0}, 0},
    {"bmm 16x256x64x256", 3 * 2.0 * 16 * 256 * 64 * 256 / 1e9, setup_bmm, run_bmm, {0}, 0},
    {"add [2,1500,512]+[512]", 0, setup_add, run_add, {0}, 0},
    {"mul [2,1500,512]", 0, setup_mul, run_mul, {0}, 0},
    {"gelu [2,1500,2048]", 0, setup_big, run_gelu, {0}, 0},
    {"silu [2,1500,2048]", 0, setup_big, run_silu, {0}, 0},
    {"softmax [2,1500,2048]", 0, setup_big, run_softmax, {0}, 0},
    {"sum axis1 [2,1500,2048]", 0, setup_big, run_sum, {0}, 0},
    {"transpose12 [2,1500,2048]", 0, setup_big, run_transpose, {0}, 0},
    {"layer_norm [2,1500,512]", 0, setup_ln, run_ln, {0}, 0},
    {"cross_entropy [6000,2048]", 0, setup_ce, run_ce, {0}, 0},
    {"embedding 2049x512 [2,1500]", 0, setup_emb, run_emb, {0}, 0},
    {"attention B2 T1500 H8 D64 causal", 0, setup_attn, run_attn, {0}, 0},
    {"conv1d [4,64,8000] k7", 3 * 2.0 * 4 * 8000 * 64 * 64 * 7 / 1e9, setup_conv, run_conv, {0}, 0},
    {"conv_transpose1d [4,128,1000] k8 s4", 3 * 2.0 * 4 * 1000 * 128 * 64 * 8 / 1e9, setup_convt, run_convt, {0}, 0},
    {"lstm [4,250,256] h256", 3 * 2.0 * 4 * 250 * 256 * 1024 * 2 / 1e9, setup_lstm, run_lstm, {0}, 0},
    {"block d512 h8 T1500 B2", 0, setup_block, run_block, {0}, 0},
};

#define MAX_ITERS 200

// Median of at least `iters` timed runs, more for fast cases (until about `min_ms` of work), after one
// warm-up run that sizes the arena and faults the pages in.
static double time_case(bench_case *c, int iters, double min_ms) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    static double times[MAX_ITERS];
    for (int it = -1; it < iters; it++) {
        for (int i = 0; i < c->n_in; i++) gvm_zero_grad(c->in[i]);
        double t0 = now_ms();
        gvm_tensor *out = c->run(ctx, c);
        gvm_backward(ctx, out);
        double t1 = now_ms();
        if (it < 0) {
            int want = (int)(min_ms / (t1 - t0 + 1e-3));
            if (want > iters) iters = want < MAX_ITERS ? want : MAX_ITERS;
        } else {
            times[it] = t1 - t0;
        }
        gvm_ctx_reset(ctx);
    }
    gvm_ctx_free(ctx);
    qsort(times, (size_t)iters, sizeof(double), cmp_double);
    return times[iters / 2];
}

// Plain sgemm rate (GFLOP/s) on a 2048^3 product: the ceiling for GEMM-heavy ops on this machine.
static double sgemm_rate(void) {
    const int n = 2048;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = 0.001f * (float)(i % 97);
    double times[5];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    for (int r = 0; r < 5; r++) {
        double t0 = now_ms();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        times[r] = now_ms() - t0;
    }
    qsort(times, 5, sizeof(double), cmp_double);
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / (times[2] * 1e6);
}

int main(int argc, char **argv) {
    int iters = 7;
    double min_ms = 300;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--min-ms") == 0 && i + 1 < argc)
            min_ms = atof(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--iters N] [--min-ms MS] [--only SUBSTRING]\n", argv[0]);
            return 2;
        }
    }
    k_cases[sizeof k_cases / sizeof k_cases[0] - 1].gflop = block_gflop();
    printf("{\"name\": \"sgemm 2048^3\", \"gflops\": %.2f, \"threads\": %d, \"blas\": \"%s\"}\n", sgemm_rate(),
           omp_get_max_threads(), openblas_get_corename());
    fflush(stdout);
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        bench_case *c = &k_cases[i];
        if (only && !strstr(c->name, only)) continue;
        c->setup(c);
        double ms = time_case(c, iters, min_ms);
        printf("{\"name\": \"%s\", \"ms\": %.3f, \"gflop\": %.4f}\n", c->name, ms, c->gflop);
        fflush(stdout);
        for (int j = 0; j < c->n_in; j++) gvm_tensor_free(c->in[j]);
    }
    return 0;
}
