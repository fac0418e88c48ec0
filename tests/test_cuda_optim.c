// test_cuda_optim.c: the CUDA optimiser kernels (core/cuda/optim.cu) against the CPU reference
// (core/cpu/optim.c), through the public entry points of core/optim.h: AdamW over 3 steps, the sum of
// squares, the finiteness test and the EMA update, on sizes that take every path (n = 1, a tail-only 3,
// float4 groups with and without a tail, unaligned pointers, 10,000,019 elements over many blocks).
//
// Both backends do the same double arithmetic in the same order with one rounding per stored f32, so they
// are expected to agree bit for bit (the count of differing elements is printed); the test holds them to
// the stated tolerances: 1e-6 relative for f32 results, 1e-12 relative for the double sum of squares.
// Without a usable GPU, parity_init prints SKIPPED and exits 77.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/optim.h"
#include "tests/device_parity.h"
#include "tests/test_util.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/runtime.h"

#define F32_RTOL 1e-6
#define SUMSQ_RTOL 1e-12

static float *host_randn(uint64_t seed, int64_t n, float scale) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof(float));
    gvm_rng rng;
    gvm_rng_init(&rng, seed);
    gvm_rng_normal(&rng, x, (size_t)n, 0.0f, scale);
    return x;
}

// A device buffer of n floats starting `offset` floats into an allocation (offset 1: not 16-byte aligned,
// which sends the kernels down their scalar path). Freed with dev_free(ptr, offset).
static float *dev_upload(const float *host, int64_t n, int offset) {
    float *base = gvm_cuda_malloc((size_t)(n + offset) * sizeof(float));
    gvm_cuda_memcpy_h2d(base + offset, host, (size_t)n * sizeof(float));
    return base + offset;
}

static void dev_free(float *ptr, int offset) { gvm_cuda_free(ptr - offset); }

static float *dev_download(const float *dev, int64_t n) {
    float *host = malloc((size_t)(n ? n : 1) * sizeof(float));
    gvm_cuda_memcpy_d2h(host, dev, (size_t)n * sizeof(float));
    return host;
}

// |gpu - cpu| <= rtol * |cpu| for every element (NaN fails); also prints how many differ at all.
static bool check_same(const char *name, const float *gpu, const float *cpu, int64_t n, double rtol) {
    int64_t bad = 0, differ = 0, worst_at = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(&gpu[i], &cpu[i], sizeof(float)) != 0) differ++;
        double err = fabs((double)gpu[i] - (double)cpu[i]);
        if (!(err <= rtol * fabs((double)cpu[i]))) bad++;
        double rel = err / (fabs((double)cpu[i]) + 1e-300);
        if (!(rel <= worst)) {
            worst = rel;
            worst_at = i;
        }
    }
    printf("  %s: %lld of %lld elements differ in any bit, max rel err %.3g\n", name, (long long)differ,
           (long long)n, worst);
    return test_check(bad == 0, name, "%lld of %lld off (rtol %g); worst at %lld: gpu %.9g cpu %.9g", (long long)bad,
                      (long long)n, rtol, (long long)worst_at, n ? gpu[worst_at] : 0.0, n ? cpu[worst_at] : 0.0);
}

// ---- AdamW -----------------------------------------------------------------------------------------------------

// 3 steps on both devices from the same state; `offset` shifts the device pointers (param, m, v by
// offset_state, grad by offset_grad) off 16-byte alignment.
static void case_adamw(int64_t n, int offset_state, int offset_grad) {
    char label[160];
    gvm_adamw_hparams h = {.lr = 2e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                           .grad_scale = 0.37f};
    float *p = host_randn(1000 + (uint64_t)n, n, 1.0f);
    float *m = calloc((size_t)(n ? n : 1), sizeof(float)), *v = calloc((size_t)(n ? n : 1), sizeof(float));
    float *dp = dev_upload(p, n, offset_state), *dm = dev_upload(m, n, offset_state);
    float *dv = dev_upload(v, n, offset_state);
    float *dg = (float *)gvm_cuda_malloc((size_t)(n + offset_grad) * sizeof(float)) + offset_grad;
    for (int64_t s = 1; s <= 3; s++) {
        float *g = host_randn(2000 + (uint64_t)(n + s), n, s == 2 ? 1e-6f : 1.0f);  // step 2: eps matters
        for (int64_t i = 0; i < n; i += 7) g[i] = 0.0f;                             // zero gradients too
        gvm_cuda_memcpy_h2d(dg, g, (size_t)n * sizeof(float));
        gvm_adamw_step(GVM_DEVICE_CPU, p, g, m, v, n, &h, s);
        gvm_adamw_step(GVM_DEVICE_CUDA, dp, dg, dm, dv, n, &h, s);
        gvm_cuda_synchronize();  // g is pageable and freed next; h2d from pageable memory is staged anyway
        free(g);
    }
    float *gp = dev_download(dp, n), *gm = dev_download(dm, n), *gv = dev_download(dv, n);
    const char *align = offset_state || offset_grad ? (offset_state ? " unaligned" : " unaligned grad") : "";
    snprintf(label, sizeof label, "adamw n=%lld%s 3 steps: param", (long long)n, align);
    check_same(label, gp, p, n, F32_RTOL);
    snprintf(label, sizeof label, "adamw n=%lld%s 3 steps: m", (long long)n, align);
    check_same(label, gm, m, n, F32_RTOL);
    snprintf(label, sizeof label, "adamw n=%lld%s 3 steps: v", (long long)n, align);
    check_same(label, gv, v, n, F32_RTOL);
    free(gp);
    free(gm);
    free(gv);
    free(p);
    free(m);
    free(v);
    dev_free(dp, offset_state);
    dev_free(dm, offset_state);
    dev_free(dv, offset_state);
    dev_free(dg, offset_grad);
}

// Time of one AdamW step over n elements (information for the benchmarks; not a check).
static void time_adamw(int64_t n) {
    gvm_adamw_hparams h = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f,
                           .grad_scale = 1.0f};
    float *x = host_randn(5, n, 1.0f);
    float *dp = dev_upload(x, n, 0), *dg = dev_upload(x, n, 0);
    float *dm = gvm_cuda_malloc((size_t)n * sizeof(float)), *dv = gvm_cuda_malloc((size_t)n * sizeof(float));
    gvm_cuda_memset0(dm, (size_t)n * sizeof(float));
    gvm_cuda_memset0(dv, (size_t)n * sizeof(float));
    gvm_adamw_step(GVM_DEVICE_CUDA, dp, dg, dm, dv, n, &h, 1);  // warm-up
    gvm_cuda_event *a = gvm_cuda_event_new(), *b = gvm_cuda_event_new();
    const int iters = 20;
    gvm_cuda_event_record(a);
    for (int i = 0; i < iters; i++) gvm_adamw_step(GVM_DEVICE_CUDA, dp, dg, dm, dv, n, &h, 2 + i);
    gvm_cuda_event_record(b);
    gvm_cuda_event_wait(b);
    double ms = gvm_cuda_event_elapsed_ms(a, b) / iters;
    gvm_cuda_event_record(a);
    for (int i = 0; i < iters; i++) (void)gvm_grad_sumsq(GVM_DEVICE_CUDA, dg, n);
    gvm_cuda_event_record(b);
    gvm_cuda_event_wait(b);
    double ms_ss = gvm_cuda_event_elapsed_ms(a, b) / iters;
    printf("  timing n=%lld: adamw %.1f us (%.0f GB/s), grad_sumsq %.1f us incl. the copy back (%.0f GB/s)\n",
           (long long)n, ms * 1e3, 28.0 * (double)n / (ms * 1e-3) / 1e9, ms_ss * 1e3,
           4.0 * (double)n / (ms_ss * 1e-3) / 1e9);
    gvm_cuda_event_free(a);
    gvm_cuda_event_free(b);
    dev_free(dp, 0);
    dev_free(dg, 0);
    dev_free(dm, 0);
    dev_free(dv, 0);
    free(x);
}

// ---- sum of squares and finiteness -------------------------------------------------------------------------

static void case_sumsq(int64_t n, int offset) {
    char label[160];
    float *x = host_randn(3000 + (uint64_t)n, n, 2.0f);
    float *dx = dev_upload(x, n, offset);
    const char *align = offset ? " unaligned" : "";
    double cpu = gvm_grad_sumsq(GVM_DEVICE_CPU, x, n);
    double gpu = gvm_grad_sumsq(GVM_DEVICE_CUDA, dx, n);
    double again = gvm_grad_sumsq(GVM_DEVICE_CUDA, dx, n);
    snprintf(label, sizeof label, "grad_sumsq n=%lld%s", (long long)n, align);
    test_check(fabs(gpu - cpu) <= SUMSQ_RTOL * cpu, label, "gpu %.17g cpu %.17g", gpu, cpu);
    snprintf(label, sizeof label, "grad_sumsq n=%lld%s: same bits on a second run", (long long)n, align);
    test_check(memcmp(&gpu, &again, sizeof gpu) == 0, label, "%.17g then %.17g", gpu, again);
    snprintf(label, sizeof label, "grads_finite n=%lld%s (all finite)", (long long)n, align);
    test_check(gvm_grads_finite(GVM_DEVICE_CUDA, dx, n), label, "reported a non-finite value");

    // One inf, -inf or NaN planted at the first, a middle and the last element (each block of the first
    // pass, the float4 groups and the tail all see one somewhere across sizes).
    const float bad_values[3] = {INFINITY, -INFINITY, NAN};
    const char *bad_names[3] = {"inf", "-inf", "nan"};
    int64_t where[3] = {0, n / 2, n - 1};
    for (int b = 0; b < 3; b++)
        for (int w = 0; w < 3; w++) {
            if (w > 0 && where[w] == where[w - 1]) continue;
            gvm_cuda_memcpy_h2d(dx + where[w], &bad_values[b], sizeof(float));
            snprintf(label, sizeof label, "grads_finite n=%lld%s: %s at %lld", (long long)n, align, bad_names[b],
                     (long long)where[w]);
            test_check(!gvm_grads_finite(GVM_DEVICE_CUDA, dx, n), label, "not detected");
            double ss = gvm_grad_sumsq(GVM_DEVICE_CUDA, dx, n);
            snprintf(label, sizeof label, "grad_sumsq n=%lld%s: %s at %lld", (long long)n, align, bad_names[b],
                     (long long)where[w]);
            test_check(b == 2 ? isnan(ss) : (isinf(ss) && ss > 0), label, "sum is %g", ss);
            gvm_cuda_memcpy_h2d(dx + where[w], &x[where[w]], sizeof(float));
        }
    dev_free(dx, offset);
    free(x);
}

// ---- EMA ---------------------------------------------------------------------------------------------------------

static void case_ema(int64_t n, int offset, float decay) {
    char label[160];
    float *ema = host_randn(4000 + (uint64_t)n, n, 1.0f);
    float *dema = dev_upload(ema, n, offset);
    float *dparam = (float *)gvm_cuda_malloc((size_t)(n + offset) * sizeof(float)) + offset;
    for (int it = 0; it < 3; it++) {
        float *param = host_randn(5000 + (uint64_t)(n + it), n, 2.0f);
        gvm_cuda_memcpy_h2d(dparam, param, (size_t)n * sizeof(float));
        gvm_ema_update(GVM_DEVICE_CPU, ema, param, n, decay);
        gvm_ema_update(GVM_DEVICE_CUDA, dema, dparam, n, decay);
        gvm_cuda_synchronize();
        free(param);
    }
    float *got = dev_download(dema, n);
    snprintf(label, sizeof label, "ema n=%lld%s decay=%g (3 updates)", (long long)n, offset ? " unaligned" : "",
             (double)decay);
    check_same(label, got, ema, n, F32_RTOL);
    free(got);
    free(ema);
    dev_free(dema, offset);
    dev_free(dparam, offset);
}
#endif

int main(int argc, char **argv) {
    parity_init(argc, argv);  // exits 77 (SKIPPED) without a usable GPU
#ifdef GVM_HAVE_CUDA
    test_init(argc, argv);

    // n = 0 on the device: nothing launched, nothing read.
    gvm_adamw_step(GVM_DEVICE_CUDA, NULL, NULL, NULL, NULL, 0,
                   &(gvm_adamw_hparams){.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .grad_scale = 1.0f}, 1);
    gvm_ema_update(GVM_DEVICE_CUDA, NULL, NULL, 0, 0.5f);
    test_check(gvm_grad_sumsq(GVM_DEVICE_CUDA, NULL, 0) == 0.0, "grad_sumsq n=0", "not 0");

    const int64_t sizes[] = {1, 3, 1000, 1003, 10000019};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        case_adamw(sizes[k], 0, 0);
        case_sumsq(sizes[k], 0);
        case_ema(sizes[k], 0, 0.999f);
    }
    case_adamw(1001, 1, 1);  // every pointer off 16-byte alignment: the scalar path
    case_adamw(1000, 0, 1);  // only the gradient off alignment
    case_sumsq(1001, 1);
    case_sumsq(10000019, 1);
    case_ema(1001, 1, 0.9f);
    case_ema(1000, 0, 0.0f);  // ema becomes param

    // Finite extremes are not mistaken for overflow on the device either.
    float big[5] = {3.4028235e38f, -3.4028235e38f, 1e-45f, 0.0f, -0.0f};
    float *dbig = dev_upload(big, 5, 0);
    test_check(gvm_grads_finite(GVM_DEVICE_CUDA, dbig, 5), "grads_finite at FLT_MAX", "reported non-finite");
    dev_free(dbig, 0);

    time_adamw(10000019);
    return test_finish();
#else
    printf("SKIPPED: built without CUDA\n");
    return 77;
#endif
}
