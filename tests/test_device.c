// test_device.c: device selection and device memory, on every machine.
//
// Without a usable GPU (or in a build without CUDA) asking for CUDA must fail softly: GVM_ERR_DEVICE with a
// message that says why and what to do, no abort, and the CPU keeps working. With a GPU: copies round-trip,
// the caching pool serves a steady-state loop without cudaMalloc, device arenas, heap tensors, gradients
// and parameter blocks live on the device, and parameter files round-trip through it.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/gvm.h"
#include "tests/test_util.h"

#ifdef GVM_HAVE_CUDA
#include "core/cuda/runtime.h"
#endif

static void test_parse(void) {
    gvm_device d = GVM_DEVICE_COUNT;
    TEST_CHECK(gvm_device_parse("cpu", &d) == GVM_OK && d == GVM_DEVICE_CPU, "parse cpu", "%s", "");
    TEST_CHECK(gvm_device_parse("cuda", &d) == GVM_OK && d == GVM_DEVICE_CUDA, "parse cuda", "%s", "");
    gvm_status st = gvm_device_parse("tpu", &d);
    TEST_CHECK(st == GVM_ERR_INVALID && strstr(gvm_error_message(), "tpu") && strstr(gvm_error_message(), "cpu or cuda"),
               "parse rejects an unknown name and lists the choices", "%s", gvm_error_message());
}

// No GPU here: the failure is a clear error, and the context stays usable on the CPU.
static void test_unavailable(void) {
    gvm_ctx *ctx = gvm_ctx_new(1);
    gvm_status st = gvm_ctx_set_device(ctx, GVM_DEVICE_CUDA);
    const char *msg = gvm_error_message();
    printf("  message: %s\n", msg);
    TEST_CHECK(st == GVM_ERR_DEVICE, "set_device(cuda) fails with GVM_ERR_DEVICE", "got %s", gvm_status_name(st));
    TEST_CHECK(strstr(msg, "--device cpu") != NULL, "the message says what to do", "%s", msg);
    TEST_CHECK(ctx->device == GVM_DEVICE_CPU, "the context stays on the CPU", "%s", "");
    gvm_tensor *a = gvm_tensor_from_f32(ctx, (const float[]){1, 2, 3}, 1, (int64_t[]){3});
    gvm_tensor *s = gvm_sum(ctx, a, GVM_AXIS_ALL, false);
    TEST_CHECK(gvm_tensor_f32(s)[0] == 6.0f, "the CPU still computes", "%s", "");
    gvm_ctx_free(ctx);
}

#ifdef GVM_HAVE_CUDA
static void test_copies_and_pool(void) {
    enum { N = 1000003 };
    float *host = GVM_MALLOC(N * sizeof(float)), *back = GVM_MALLOC(N * sizeof(float));
    for (int i = 0; i < N; i++) host[i] = (float)i * 0.5f - 7.0f;
    float *dev = gvm_device_alloc(GVM_DEVICE_CUDA, N * sizeof(float));
    gvm_device_copy(dev, GVM_DEVICE_CUDA, host, GVM_DEVICE_CPU, N * sizeof(float));
    gvm_device_add_f32(GVM_DEVICE_CUDA, dev, dev, N);  // doubles every value
    gvm_device_copy(back, GVM_DEVICE_CPU, dev, GVM_DEVICE_CUDA, N * sizeof(float));
    int bad = 0;
    for (int i = 0; i < N; i++) bad += back[i] != 2.0f * host[i];
    TEST_CHECK(bad == 0, "h2d, add, d2h round trip", "%d wrong", bad);
    gvm_device_fill_f32(GVM_DEVICE_CUDA, dev, N, 3.5f);
    gvm_device_copy(back, GVM_DEVICE_CPU, dev, GVM_DEVICE_CUDA, N * sizeof(float));
    bad = 0;
    for (int i = 0; i < N; i++) bad += back[i] != 3.5f;
    TEST_CHECK(bad == 0, "fill", "%d wrong", bad);
    gvm_device_free(GVM_DEVICE_CUDA, dev);

    // A loop that allocates the same sizes each iteration is served from the cache after the first.
    size_t sizes[] = {1, 511, 4096, 1 << 20, (3 << 20) + 5, 64 << 20};
    uint64_t calls_after_first = 0;
    for (int it = 0; it < 20; it++) {
        void *p[6];
        for (int k = 0; k < 6; k++) p[k] = gvm_cuda_malloc(sizes[k]);
        for (int k = 0; k < 6; k++) gvm_cuda_free(p[k]);
        if (it == 0) calls_after_first = gvm_cuda_pool_get_stats().cuda_malloc_calls;
    }
    TEST_CHECK(gvm_cuda_pool_get_stats().cuda_malloc_calls == calls_after_first, "pool: no cudaMalloc after the first loop",
               "%llu calls, %llu after the first iteration",
               (unsigned long long)gvm_cuda_pool_get_stats().cuda_malloc_calls, (unsigned long long)calls_after_first);

    // Pinned host memory copies asynchronously and lands intact.
    float *pinned = gvm_cuda_host_alloc(N * sizeof(float));
    memcpy(pinned, host, N * sizeof(float));
    float *dev2 = gvm_cuda_malloc(N * sizeof(float));
    gvm_cuda_memcpy_h2d(dev2, pinned, N * sizeof(float));
    gvm_cuda_memcpy_d2h(back, dev2, N * sizeof(float));
    TEST_CHECK(memcmp(back, host, N * sizeof(float)) == 0, "pinned host to device round trip", "%s", "");
    gvm_cuda_free(dev2);
    gvm_cuda_host_free(pinned);
    free(host);
    free(back);
}

// A training-like loop on a CUDA context: after the first step neither the arena nor the pool allocates.
static void test_ctx_steady_state(void) {
    gvm_ctx *ctx = gvm_ctx_new(7);
    TEST_CHECK(gvm_ctx_set_device(ctx, GVM_DEVICE_CUDA) == GVM_OK, "ctx on cuda", "%s", gvm_error_message());
    gvm_tensor *w = gvm_tensor_new_on(GVM_DEVICE_CUDA, GVM_F32, 2, (int64_t[]){64, 32});
    gvm_tensor_fill(w, 0.25f);
    w->requires_grad = true;
    uint64_t calls = 0;
    float first_loss = 0;
    for (int step = 0; step < 5; step++) {
        float xs[8 * 32];
        for (int i = 0; i < 8 * 32; i++) xs[i] = (float)((i * 7) % 13) / 13.0f;
        gvm_tensor *x = gvm_tensor_from_f32(ctx, xs, 2, (int64_t[]){8, 32});
        gvm_tensor *y = gvm_linear(ctx, x, w, NULL);             // [8, 64]
        gvm_tensor *loss = gvm_sum(ctx, gvm_mul(ctx, y, y), GVM_AXIS_ALL, false);
        gvm_backward(ctx, loss);
        float l;
        gvm_device_copy(&l, GVM_DEVICE_CPU, loss->data, GVM_DEVICE_CUDA, sizeof l);
        if (step == 0) first_loss = l;
        TEST_CHECK(l == first_loss, "same loss every step (no state leaks)", "step %d: %g vs %g", step, l, first_loss);
        gvm_ctx_reset(ctx);
        if (step == 1) calls = gvm_cuda_pool_get_stats().cuda_malloc_calls;
    }
    TEST_CHECK(gvm_cuda_pool_get_stats().cuda_malloc_calls == calls, "steady state: no cudaMalloc after step 2", "%s", "");
    // The heap weight's gradient lives on the device and accumulated over 5 steps: 5 x 2 y^T x.
    TEST_CHECK(w->grad && w->grad->device == GVM_DEVICE_CUDA, "leaf grad on the device", "%s", "");
    gvm_tensor *g = gvm_tensor_to(w->grad, GVM_DEVICE_CPU);
    TEST_CHECK(isfinite(gvm_tensor_f32(g)[0]) && gvm_tensor_f32(g)[0] != 0.0f, "leaf grad accumulated", "%s", "");
    gvm_tensor_free(g);
    gvm_tensor_free(w);
    gvm_ctx_free(ctx);
}

static void test_param_store_on_device(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/gvm_test_device_params.safetensors", dir);
    gvm_param_store ps;
    gvm_param_store_init(&ps);
    gvm_tensor *a = gvm_param_store_add(&ps, "a", 2, (int64_t[]){3, 5});
    gvm_tensor *b = gvm_param_store_add(&ps, "b", 1, (int64_t[]){7});
    gvm_param_store_finalize_on(&ps, GVM_DEVICE_CUDA);
    TEST_CHECK(a->device == GVM_DEVICE_CUDA && b->grad->device == GVM_DEVICE_CUDA, "params and grads on the device", "%s", "");
    float va[15], vb[7];
    for (int i = 0; i < 15; i++) va[i] = (float)i / 3.0f;
    for (int i = 0; i < 7; i++) vb[i] = -(float)i;
    gvm_device_copy(a->data, GVM_DEVICE_CUDA, va, GVM_DEVICE_CPU, sizeof va);
    gvm_device_copy(b->data, GVM_DEVICE_CUDA, vb, GVM_DEVICE_CPU, sizeof vb);
    TEST_CHECK(gvm_param_store_save(&ps, path, NULL) == GVM_OK, "save from the device", "%s", gvm_error_message());
    gvm_param_store cpu;
    gvm_param_store_init(&cpu);
    gvm_tensor *ca = gvm_param_store_add(&cpu, "a", 2, (int64_t[]){3, 5});
    gvm_param_store_add(&cpu, "b", 1, (int64_t[]){7});
    gvm_param_store_finalize(&cpu);
    TEST_CHECK(gvm_param_store_load(&cpu, path, false) == GVM_OK, "load on the CPU", "%s", gvm_error_message());
    TEST_CHECK(memcmp(ca->data, va, sizeof va) == 0, "values survive device -> file -> CPU", "%s", "");
    // And back onto a fresh device store.
    gvm_device_memset0(GVM_DEVICE_CUDA, ps.data, ps.total * sizeof(float));
    TEST_CHECK(gvm_param_store_load(&ps, path, false) == GVM_OK, "load onto the device", "%s", gvm_error_message());
    float back[7];
    gvm_device_copy(back, GVM_DEVICE_CPU, b->data, GVM_DEVICE_CUDA, sizeof back);
    TEST_CHECK(memcmp(back, vb, sizeof vb) == 0, "values survive file -> device", "%s", "");
    gvm_param_store_free(&ps);
    gvm_param_store_free(&cpu);
    remove(path);
}
#endif

int main(int argc, char **argv) {
    test_parse();
    gvm_status st = gvm_device_init(GVM_DEVICE_CUDA);
    if (st != GVM_OK) {
        printf("no usable CUDA device (%s): checking the error path\n", gvm_error_message());
        test_unavailable();
        return test_finish();
    }
#ifdef GVM_HAVE_CUDA
    printf("device: %s\n", gvm_device_description(GVM_DEVICE_CUDA));
    test_copies_and_pool();
    test_ctx_steady_state();
    test_param_store_on_device(argc > 2 ? argv[2] : "/tmp");
#endif
    (void)argc;
    (void)argv;
    return test_finish();
}
