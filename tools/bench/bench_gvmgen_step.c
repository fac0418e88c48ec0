// bench_gvmgen_step.c: one CPU training step of the whole GVMGen model (nn/gvmgen.h), timed: ms/step, model
// GFLOP/s and peak memory. tools/bench/bench_gvmgen_step.py is its PyTorch twin (same model, sizes, inputs,
// loss and optimiser) and prints the same line and JSON; tools/bench/bench_gvmgen_step.sh runs both with
// one thread count and prints the ratio table.
//
// The step, as gvm train does it (train/loop.c): zero_grad -> gvm_nn_gvmgen_forward_loss (frozen ViT under
// no-grad, Q-Former with dropout, enc_to_dec_proj, music LM, per-codebook CE) -> backward -> global-norm
// clip 1.0 -> AdamW (betas 0.9/0.95, weight decay 0.1) over the trainable parameters -> gvm_ctx_reset.
// Times are medians over --steps after --warmup.
//
// Shapes (defaults): frames [B 2, T_v 30, 3, 224, 224] -> ViT (patch 28: 65 tokens, width 256, 4 layers)
// -> Q-Former (width 384, 6 layers, 16 queries, cross every 2nd layer, out 768) -> cond [2, 30, 512]
// -> LM (width 512, 8 heads, 6 layers, FFN 2048) on codes [2, 4, 1500] -> logits 4 x [2, 1503, 2048].
//
// Inputs are integer hashes of the element index, so the Python twin builds the very same tensors.
// Peak memory: the growth of the process's resident set (VmHWM at the end minus VmRSS before the model
// was built), the method the twin uses too; gvm's own accounting (arena high-water + parameter blocks)
// is printed beside it. Both also report the process CPU time per step (all threads), which a shared
// machine disturbs less than wall time.
//
//   OMP_NUM_THREADS=2 bench_gvmgen_step [--steps 5] [--warmup 2] [--profile] [--save-params FILE]
//   --profile: on stderr, per-phase forward times and per-op backward times (means over the timed steps)
//              and where in the backward pass the arena reached its high-water mark.
//   --save-params FILE (with --dropout 0): writes the initial parameters for the twin's --check.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/device.h"
#include "core/gvm.h"
#include "core/optim.h"
#include "nn/delay_pattern.h"
#include "nn/gvmgen.h"

typedef struct bench_cfg {
    int image, patch, vit_width, vit_layers, vit_heads;
    int qf_width, qf_layers, qf_heads, queries, qf_inter, qf_out;
    int dim, heads, layers, ffn, K, card;
    int B, frames, T, steps, warmup;
    float dropout;
} bench_cfg;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// CPU time of the whole process (all threads): on a shared machine it moves less than wall time.
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// VmRSS / VmHWM of this process in bytes (Linux), 0 when unreadable.
static double proc_status_bytes(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    const size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') kb = atof(line + n + 1);
    fclose(f);
    return kb * 1024.0;
}

// The twin's hash (uint32 arithmetic): frames in [-1, 1), codes in [0, card).
static uint32_t hash_u32(uint64_t i, uint32_t salt) {
    uint32_t x = (uint32_t)i * 2654435761u + salt;
    x ^= x >> 15;
    x *= 2246822519u;
    x ^= x >> 13;
    return x;
}

// Model FLOPs of one step: GEMMs and attention score/value products (causal: half the score matrix);
// the trainable parts count forward + backward (3x forward), the frozen ViT its forward only.
static double step_flops(const bench_cfg *c) {
    const double imgs = (double)c->B * c->frames, grid = c->image / c->patch, N = grid * grid + 1;
    const double Wv = c->vit_width, Wq = c->qf_width, Q = c->queries;
    const double vit = imgs * (N - 1) * 2 * (3.0 * c->patch * c->patch) * Wv +
                       c->vit_layers * imgs * (N * 2 * (4 * Wv * Wv + 2 * Wv * 4 * Wv) + 4 * N * N * Wv);
    const int n_cross = (c->qf_layers + 1) / 2;
    double qf = c->qf_layers * imgs * (Q * 2 * (4 * Wq * Wq + 2 * Wq * c->qf_inter) + 4 * Q * Q * Wq) +
                n_cross * imgs * (Q * 2 * 2 * Wq * Wq + N * 2 * 2 * Wv * Wq + 4 * Q * N * Wq) +
                imgs * 2 * (Wq * c->qf_out + c->qf_out * c->dim);
    const double S = c->T + c->K - 1, D = c->dim, tok = (double)c->B * S;
    double lm = c->layers * (tok * 2 * (6 * D * D + 2 * D * c->ffn) + (double)c->B * c->frames * 2 * 2 * D * D +
                             c->B * (2 * S * S * D) + c->B * 4 * S * c->frames * D) +
                tok * 2 * c->K * D * c->card;
    return vit + 3 * (qf + lm);
}

static void usage(void) {
    fprintf(stderr, "usage: bench_gvmgen_step [--steps N] [--warmup N] [--B N] [--frames N] [--T N] [--image N]\n"
                    "  [--patch N] [--vit-width N] [--vit-layers N] [--vit-heads N] [--qf-width N] [--qf-layers N]\n"
                    "  [--qf-heads N] [--queries N] [--qf-inter N] [--qf-out N] [--dim N] [--heads N] [--layers N]\n"
                    "  [--ffn N] [--K N] [--card N] [--dropout P] [--profile] [--save-params FILE]\n");
    exit(2);
}

// ---- --profile: forward phases and backward per op ------------------------------------------------------------
#define MAX_OPS 64
typedef struct op_time {
    const char *op;
    double s;
    int n;
} op_time;

static void add_op_time(op_time *t, int *n, const char *op, double s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(t[i].op, op)) {
            t[i].s += s;
            t[i].n++;
            return;
        }
    if (*n < MAX_OPS) t[(*n)++] = (op_time){op, s, 1};
}

static int cmp_op_time(const void *a, const void *b) {
    const double x = ((const op_time *)a)->s, y = ((const op_time *)b)->s;
    return (x < y) - (x > y);
}

// gvm_nn_gvmgen_forward_loss split into its parts (same calls as nn/gvmgen.c), each timed.
static gvm_tensor *profiled_forward(gvm_ctx *ctx, const gvm_nn_gvmgen *m, gvm_tensor *frames, gvm_tensor *mask,
                                    gvm_tensor *codes, double *ph) {
    const gvm_nn_vit *v = &m->vision;
    const int64_t B = frames->shape[0], T = frames->shape[1];
    double t0 = now_s();
    gvm_no_grad_begin(ctx);
    gvm_tensor *img = gvm_reshape(ctx, frames, 4, (int64_t[]){B * T, v->channels, v->image_size, v->image_size});
    gvm_tensor *tokens = gvm_nn_vit_forward(ctx, v, img, NULL);
    gvm_no_grad_end(ctx);
    double t1 = now_s();
    gvm_tensor *vec = gvm_nn_qformer_forward(ctx, &m->qformer, tokens, NULL, NULL);
    vec = gvm_reshape(ctx, vec, 3, (int64_t[]){B, T, m->qformer.out_dim});
    gvm_tensor *cond = gvm_nn_linear_forward(ctx, &m->cond_proj, vec);
    double t2 = now_s();
    gvm_tensor *inputs, *targets, *lg[GVM_NN_MUSIC_LM_MAX_CODEBOOKS];
    gvm_delay_pattern_lm_batch(ctx, codes, NULL, m->lm.card, GVM_NN_MUSIC_LM_IGNORE_INDEX, &inputs, &targets);
    gvm_nn_music_lm_forward(ctx, &m->lm, inputs, cond, mask, NULL, lg);
    double t3 = now_s();
    gvm_tensor *loss = gvm_nn_music_lm_loss(ctx, lg, m->lm.num_codebooks, targets, GVM_NN_MUSIC_LM_IGNORE_INDEX);
    double t4 = now_s();
    ph[0] += t1 - t0, ph[1] += t2 - t1, ph[2] += t3 - t2, ph[3] += t4 - t3;
    return loss;
}

// gvm_backward (core/autograd.c) with each node's backward timed under its op name.
static void profiled_backward(gvm_ctx *ctx, gvm_tensor *loss, op_time *ops, int *n_ops) {
    loss->grad = gvm_tensor_empty(ctx, GVM_F32, loss->ndim, loss->shape);
    gvm_device_fill_f32(loss->device, gvm_grad_data(ctx, loss), loss->numel, 1.0f);
    gvm_no_grad_begin(ctx);
    size_t bwd_peak = 0;
    int bwd_peak_node = 0;
    const int tape_len = ctx->tape_len;
    for (int i = ctx->tape_len - 1; i >= 0; i--) {
        gvm_node *node = ctx->tape[i];
        if (!node->out->grad) continue;
        const double t0 = now_s();
        node->backward(ctx, node);
        add_op_time(ops, n_ops, node->op, now_s() - t0);
        if (ctx->arena.used > bwd_peak) bwd_peak = ctx->arena.used, bwd_peak_node = tape_len - 1 - i;
    }
    fprintf(stderr, "backward: arena high-water %.0f MB at backward node %d of %d (%s)\n", (double)bwd_peak / 1e6,
            bwd_peak_node, tape_len, ctx->tape[tape_len - 1 - bwd_peak_node]->op);
    gvm_no_grad_end(ctx);
    ctx->tape_len = 0;
}

int main(int argc, char **argv) {
    bench_cfg c = {.image = 224, .patch = 28, .vit_width = 256, .vit_layers = 4, .vit_heads = 4,
                   .qf_width = 384, .qf_layers = 6, .qf_heads = 6, .queries = 16, .qf_inter = 1536, .qf_out = 768,
                   .dim = 512, .heads = 8, .layers = 6, .ffn = 2048, .K = 4, .card = 2048,
                   .B = 2, .frames = 30, .T = 1500, .steps = 5, .warmup = 2, .dropout = 0.1f};
    bool profile = false;
    const char *save_params = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--profile")) {
            profile = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--dropout")) {
            c.dropout = (float)atof(v);
        } else if (!strcmp(a, "--save-params")) {
            save_params = v;
        } else {
            int *f[] = {&c.steps, &c.warmup, &c.B, &c.frames, &c.T, &c.image, &c.patch, &c.vit_width,
                        &c.vit_layers, &c.vit_heads, &c.qf_width, &c.qf_layers, &c.qf_heads, &c.queries,
                        &c.qf_inter, &c.qf_out, &c.dim, &c.heads, &c.layers, &c.ffn, &c.K, &c.card};
            const char *names[] = {"--steps", "--warmup", "--B", "--frames", "--T", "--image", "--patch",
                                   "--vit-width", "--vit-layers", "--vit-heads", "--qf-width", "--qf-layers",
                                   "--qf-heads", "--queries", "--qf-inter", "--qf-out", "--dim", "--heads",
                                   "--layers", "--ffn", "--K", "--card"};
            int found = 0;
            for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
                if (!strcmp(a, names[k])) *f[k] = atoi(v), found = 1;
            if (!found) usage();
        }
    }
    if (c.steps < 1 || c.warmup < 0 || c.B < 1 || c.frames < 1 || c.T < 1) usage();
    const double rss0 = proc_status_bytes("VmRSS");

    gvm_nn_gvmgen_cfg mc = {0};
    mc.vision = (gvm_nn_vit_cfg){.image_size = c.image, .patch_size = c.patch, .channels = 3, .width = c.vit_width,
                                 .layers = c.vit_layers, .heads = c.vit_heads, .mlp_dim = 4 * c.vit_width,
                                 .act = GVM_NN_ACT_QUICK_GELU, .ln_eps = 1e-5f};
    mc.qformer = (gvm_nn_qformer_cfg){.width = c.qf_width, .layers = c.qf_layers, .heads = c.qf_heads,
                                      .num_queries = c.queries, .intermediate = c.qf_inter,
                                      .cross_attention_frequency = 2, .out_dim = c.qf_out, .dropout = c.dropout};
    mc.lm = (gvm_nn_music_lm_cfg){.num_codebooks = c.K, .card = c.card, .d_model = c.dim, .num_heads = c.heads,
                                  .num_layers = c.layers, .ffn_dim = c.ffn};
    mc.freeze_vision = true;
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_nn_gvmgen m;
    gvm_nn_gvmgen_init(&m, &ps, &mc);
    gvm_param_store_finalize(&ps);
    gvm_rng rng;
    gvm_rng_init(&rng, 42);
    gvm_nn_gvmgen_reset_parameters(&m, &rng);
    if (save_params && gvm_param_store_save(&ps, save_params, NULL) != GVM_OK) {
        fprintf(stderr, "bench_gvmgen_step: error: %s\n", gvm_error_message());
        return 1;
    }
    const gvm_nn_gvmgen_summary sum = gvm_nn_gvmgen_count(&m);

    // AdamW over the trainable parts only, as train/loop.c does (each part is a contiguous run of the store).
    size_t rb[GVM_NN_GVMGEN_PARTS], re[GVM_NN_GVMGEN_PARTS];
    int n_ranges = 0, last_part = -2;
    for (int p = 0; p < GVM_NN_GVMGEN_PARTS; p++) {
        if (m.frozen[p] || m.count[p] == 0) continue;
        const int last = m.first[p] + m.count[p] - 1;
        const size_t b = ps.offsets[m.first[p]], e = ps.offsets[last] + (size_t)ps.params[last]->numel;
        if (last_part == p - 1)
            re[n_ranges - 1] = e;  // follows the previous trainable part: one range (the padding is zeros)
        else
            rb[n_ranges] = b, re[n_ranges] = e, n_ranges++;
        last_part = p;
    }

    // Inputs: [B, T_v, 3, S, S] frames, an all-ones frame mask [B, T_v], codes [B, K, T].
    const int64_t fshape[5] = {c.B, c.frames, 3, c.image, c.image};
    gvm_tensor *frames = gvm_tensor_new(GVM_F32, 5, fshape);
    float *fv = gvm_tensor_f32(frames);
    for (int64_t i = 0; i < frames->numel; i++) fv[i] = (float)(hash_u32((uint64_t)i, 1) >> 22) / 512.0f - 1.0f;
    gvm_tensor *mask = gvm_tensor_new(GVM_U8, 2, (int64_t[]){c.B, c.frames});
    memset(gvm_tensor_u8(mask), 1, (size_t)mask->numel);
    gvm_tensor *codes = gvm_tensor_new(GVM_I64, 3, (int64_t[]){c.B, c.K, c.T});
    int64_t *cv = gvm_tensor_i64(codes);
    for (int64_t i = 0; i < codes->numel; i++) cv[i] = (int64_t)(hash_u32((uint64_t)i, 2) % (uint32_t)c.card);

    gvm_ctx *ctx = gvm_ctx_new(1234);
    ctx->training = true;
    float *adam_m = gvm_param_store_state(&ps, 0), *adam_v = gvm_param_store_state(&ps, 1);
    gvm_adamw_hparams hp = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                            .grad_scale = 1};
    const int total = c.warmup + c.steps;
    double *times = calloc((size_t)total, sizeof *times), *cpu = calloc((size_t)total, sizeof *cpu);
    double ph[6] = {0};  // vit, qformer+proj, lm, loss, backward, optimiser (profile: summed over timed steps)
    op_time ops[MAX_OPS];
    int n_ops = 0;
    float first_loss = 0, last_loss = 0;
    for (int s = 0; s < total; s++) {
        const bool prof = profile && s >= c.warmup;
        const double t0 = now_s(), c0 = cpu_s();
        gvm_param_store_zero_grad(&ps);
        gvm_tensor *loss = prof ? profiled_forward(ctx, &m, frames, mask, codes, ph)
                                : gvm_nn_gvmgen_forward_loss(ctx, &m, frames, mask, codes, NULL, 0.0f, NULL);
        const float l = gvm_tensor_f32(loss)[0];
        const double fwd_mb = (double)ctx->arena.used / 1e6;
        const double tb = now_s();
        if (prof)
            profiled_backward(ctx, loss, ops, &n_ops);
        else
            gvm_backward(ctx, loss);
        const double to = now_s();
        const double norm = sqrt(gvm_grad_sumsq(GVM_DEVICE_CPU, ps.grad, (int64_t)ps.total));
        hp.grad_scale = norm > 1.0 ? (float)(1.0 / norm) : 1.0f;
        for (int r = 0; r < n_ranges; r++)
            gvm_adamw_step(GVM_DEVICE_CPU, ps.data + rb[r], ps.grad + rb[r], adam_m + rb[r], adam_v + rb[r],
                           (int64_t)(re[r] - rb[r]), &hp, s + 1);
        gvm_ctx_reset(ctx);
        const double t1 = now_s();
        if (prof) ph[4] += to - tb, ph[5] += t1 - to;
        times[s] = t1 - t0;
        cpu[s] = cpu_s() - c0;
        if (s == 0) first_loss = l;
        last_loss = l;
        if (!isfinite(l)) {
            fprintf(stderr, "bench_gvmgen_step: error: loss is %g at step %d\n", l, s);
            return 1;
        }
        if (profile)
            fprintf(stderr, "step %d: %.1f ms, loss %.6f, arena after forward %.0f MB\n", s, times[s] * 1e3, l,
                    fwd_mb);
    }
    qsort(times + c.warmup, (size_t)c.steps, sizeof(double), cmp_double);
    qsort(cpu + c.warmup, (size_t)c.steps, sizeof(double), cmp_double);
    const double med = times[c.warmup + c.steps / 2], cpu_med = cpu[c.warmup + c.steps / 2];
    const double gflops = step_flops(&c) / med / 1e9;
    const double peak_mb = (proc_status_bytes("VmHWM") - rss0) / 1e6;
    int n_blocks = 2;  // data, grad, then the optimiser states made
    for (int i = 0; i < GVM_PARAM_MAX_STATES; i++) n_blocks += ps.state[i] != NULL;
    const double own_mb = ((double)ctx->arena.peak + (double)n_blocks * (double)ps.total * sizeof(float)) / 1e6;

    const double arena_mb = (double)ctx->arena.peak / 1e6;
    printf("gvm   cpu f32 threads %d (BLAS %s): %.1f ms/step (median of %d; CPU %.0f ms), %.1f GFLOP/s, "
           "peak RSS +%.0f MB (arena %.0f + params/grads/Adam %.0f MB), %.2fM params (%.2fM trainable), "
           "loss %.4f -> %.4f\n",
           omp_get_max_threads(), openblas_get_corename(), med * 1e3, c.steps, cpu_med * 1e3, gflops, peak_mb,
           arena_mb, own_mb - arena_mb, (double)sum.all_total / 1e6, (double)sum.all_trainable / 1e6, first_loss,
           last_loss);
    printf("{\"impl\":\"gvm\",\"threads\":%d,\"blas\":\"%s\",\"ms\":%.3f,\"cpu_ms\":%.3f,\"gflops\":%.2f,"
           "\"gflop_per_step\":%.3f,\"peak_rss_mb\":%.1f,\"own_mb\":%.1f,\"params\":%lld,\"trainable\":%lld,"
           "\"loss0\":%.7f,\"loss_last\":%.7f}\n",
           omp_get_max_threads(), openblas_get_corename(), med * 1e3, cpu_med * 1e3, gflops, step_flops(&c) / 1e9,
           peak_mb, own_mb, (long long)sum.all_total, (long long)sum.all_trainable, first_loss, last_loss);
    if (profile) {
        const double n = c.steps;
        fprintf(stderr, "profile (mean of %d steps, ms): vit %.1f | qformer+proj %.1f | lm %.1f | loss %.1f | "
                        "backward %.1f | clip+adamw+reset %.1f\n",
                c.steps, ph[0] / n * 1e3, ph[1] / n * 1e3, ph[2] / n * 1e3, ph[3] / n * 1e3, ph[4] / n * 1e3,
                ph[5] / n * 1e3);
        qsort(ops, (size_t)n_ops, sizeof *ops, cmp_op_time);
        for (int i = 0; i < n_ops; i++)
            fprintf(stderr, "  backward %-20s %8.1f ms  (%d calls)\n", ops[i].op, ops[i].s / n * 1e3,
                    ops[i].n / c.steps);
    }
    free(times);
    free(cpu);
    gvm_tensor_free(frames);
    gvm_tensor_free(mask);
    gvm_tensor_free(codes);
    gvm_ctx_free(ctx);
    gvm_nn_gvmgen_free(&m);
    gvm_param_store_free(&ps);
    return 0;
}
