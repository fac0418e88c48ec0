// bench_lm_step.c: one training step of the gvmgen-small music decoder, timed: tokens/s, MFU and peak
// memory, on the CPU or a GPU. tools/bench/bench_lm_step.py runs the PyTorch twin of the same model with
// the same sizes, so the two lines compare directly.
//
// The step: forward (decoder_twin.h) -> backward -> global-norm clip 1.0 -> fused AdamW (betas 0.9/0.95,
// weight decay 0.1), the reference recipe's optimiser. Times are medians over --steps after --warmup.
//
//   bench_lm_step --device cuda --autocast bf16            (gvmgen-small: L 24, D 1024, H 16, T 1500, B 4)
//   bench_lm_step --device cpu --layers 2 --dim 256 --heads 4 --T 200 --B 2
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/gvm.h"
#include "core/optim.h"
#include "tools/bench/decoder_twin.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/runtime.h"
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_lm_step [--device cpu|cuda] [--autocast f32|bf16|f16] [--layers N] [--dim N] [--heads N]\n"
            "                     [--ffn N] [--T N] [--B N] [--frames N] [--K N] [--card N] [--steps N] [--warmup N]\n"
            "                     [--peak-tflops X]\n");
    exit(2);
}

int main(int argc, char **argv) {
    twin_cfg c = {.layers = 24, .dim = 1024, .heads = 16, .ffn = 0, .T = 1500, .B = 4, .frames = 30, .K = 4,
                  .card = 2048, .vis_dim = 768};
    int steps = 10, warmup = 3;
    gvm_device device = GVM_DEVICE_CUDA;
    gvm_dtype autocast = GVM_F32;
    double peak_tflops = 0;  // the card's peak for the compute type, for MFU
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--device")) {
            if (gvm_device_parse(v, &device) != GVM_OK) {
                fprintf(stderr, "bench_lm_step: error: %s\n", gvm_error_message());
                return 2;
            }
        } else if (!strcmp(a, "--autocast")) {
            if (strcmp(v, "bf16") && strcmp(v, "f16") && strcmp(v, "f32")) usage();
            autocast = !strcmp(v, "bf16") ? GVM_BF16 : !strcmp(v, "f16") ? GVM_F16 : GVM_F32;
        } else if (!strcmp(a, "--peak-tflops")) {
            peak_tflops = atof(v);
        } else {
            int *fields[] = {&c.layers, &c.dim, &c.heads, &c.ffn, &c.T, &c.B, &c.frames, &c.K, &c.card, &steps, &warmup};
            const char *names[] = {"--layers", "--dim", "--heads", "--ffn", "--T", "--B",
                                   "--frames", "--K", "--card", "--steps", "--warmup"};
            int found = 0;
            for (int f = 0; f < 11; f++)
                if (!strcmp(a, names[f])) *fields[f] = atoi(v), found = 1;
            if (!found) usage();
        }
    }
    if (!c.ffn) c.ffn = 4 * c.dim;
    if (c.K < 1 || c.K > TWIN_MAX_K || c.heads < 1 || c.dim % c.heads || steps < 1 || warmup < 0) usage();
    if (peak_tflops == 0 && device != GVM_DEVICE_CPU)  // H100 SXM dense: bf16/f16 tensor cores 989, f32 67
        peak_tflops = autocast == GVM_F32 ? 66.9 : 989.4;

    gvm_ctx *ctx = gvm_ctx_new(1);
    if (gvm_ctx_set_device(ctx, device) != GVM_OK) {
        fprintf(stderr, "bench_lm_step: error: %s\n", gvm_error_message());
        return 1;
    }
    ctx->autocast = autocast;
    twin_model m;
    twin_model_init(&m, &c, device, 42);
    twin_batch batch;
    twin_batch_init(&batch, &c, device, 7);
    int64_t n_params = gvm_param_store_numel(&m.ps);

    float *adam_m = gvm_param_store_state(&m.ps, 0), *adam_v = gvm_param_store_state(&m.ps, 1);
    gvm_adamw_hparams hp = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .grad_scale = 1};
    int total = warmup + steps;
    double *times = GVM_CALLOC((size_t)total, sizeof(double));
    float first_loss = 0, last_loss = 0;
    for (int s = 0; s < total; s++) {
        gvm_device_synchronize(device);
        double t0 = now_s();
        gvm_param_store_zero_grad(&m.ps);
        gvm_tensor *loss = twin_forward(ctx, &m, &batch);
        gvm_backward(ctx, loss);
        double norm = sqrt(gvm_grad_sumsq(device, m.ps.grad, (int64_t)m.ps.total));
        hp.grad_scale = norm > 1.0 ? (float)(1.0 / norm) : 1.0f;
        gvm_adamw_step(device, m.ps.data, m.ps.grad, adam_m, adam_v, (int64_t)m.ps.total, &hp, s + 1);
        float l;
        gvm_device_copy(&l, GVM_DEVICE_CPU, loss->data, device, sizeof l);
        gvm_ctx_reset(ctx);
        gvm_device_synchronize(device);
        times[s] = now_s() - t0;
        if (s == 0) first_loss = l;
        last_loss = l;
        if (!isfinite(l)) {
            fprintf(stderr, "bench_lm_step: error: loss is %g at step %d\n", l, s);
            return 1;
        }
    }
    qsort(times + warmup, (size_t)steps, sizeof(double), cmp_double);
    double med = times[warmup + steps / 2];
    double tflops = twin_step_flops(&c) / med / 1e12;
    int64_t tokens = (int64_t)c.B * c.T;
    double peak_gib = 0;
#ifdef GVM_HAVE_CUDA
    if (device == GVM_DEVICE_CUDA) peak_gib = (double)gvm_cuda_pool_get_stats().peak_in_use / (1 << 30);
#endif
    const char *ac = autocast == GVM_BF16 ? "bf16" : autocast == GVM_F16 ? "f16" : "f32";
    printf("gvm   %-5s %-4s L%d D%d H%d T%d B%d: %.1f ms/step (median of %d), %.0f tokens/s, %.1f TFLOP/s",
           gvm_device_name(device), ac, c.layers, c.dim, c.heads, c.T, c.B, med * 1e3, steps, (double)tokens / med,
           tflops);
    if (peak_tflops > 0) printf(", MFU %.1f%% of %.0f", 100 * tflops / peak_tflops, peak_tflops);
    printf(", peak %.2f GiB, %.1fM params, loss %.4f -> %.4f\n", peak_gib, (double)n_params / 1e6, first_loss, last_loss);
    printf("{\"impl\":\"gvm\",\"device\":\"%s\",\"autocast\":\"%s\",\"ms\":%.3f,\"tokens_per_s\":%.1f,\"tflops\":%.2f,"
           "\"peak_gib\":%.3f,\"params\":%lld}\n",
           gvm_device_name(device), ac, med * 1e3, (double)tokens / med, tflops, peak_gib, (long long)n_params);
    free(times);
    twin_batch_free(&batch, &c);
    twin_model_free(&m);
    gvm_ctx_free(ctx);
    return 0;
}
