// test_cuda_train_step.c: whole training steps on the GPU against the CPU.
//
// The gvmgen-small decoder at toy size (tools/bench/decoder_twin.h: embeddings, causal self-attention,
// cross-attention, LayerNorm, GELU FFN, K heads, cross-entropy) trains for a few AdamW steps with global-norm
// clipping on the CPU and on CUDA from the same initial weights and batch:
//   * f32: every step's loss equals the CPU's within 1e-5 relative for the first step (no update yet) and
//     1e-4 after (AdamW divides by sqrt(v), which amplifies last-bit differences of tiny gradients), and the
//     final parameters within 1e-4 absolute (updates are ~lr = 1e-3 each);
//   * determinism: a second CUDA run gives bit-identical losses and parameters;
//   * bf16 and f16 autocast: losses within 2e-2 relative of the f32 CPU run (GEMM inputs rounded to 8 or 11
//     bits; the loss is an average over many tokens, so the rounding largely cancels); f16 with dynamic loss
//     scaling (gvm_loss_scaler at its initial 2^16), as f16 training runs.
// Without a GPU the program prints SKIPPED and exits 77.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gvm.h"
#include "core/optim.h"
#include "tests/device_parity.h"
#include "tests/test_util.h"
#include "tools/bench/decoder_twin.h"

enum { STEPS = 5 };

typedef struct run_result {
    float loss[STEPS];
    float *params;  // host copy of the parameter block after the last step
    size_t n;
} run_result;

static run_result train(gvm_device device, gvm_dtype autocast) {
    twin_cfg c = {.layers = 2, .dim = 64, .heads = 4, .ffn = 256, .T = 48, .B = 2, .frames = 5, .K = 4, .card = 64,
                  .vis_dim = 32};
    gvm_ctx *ctx = gvm_ctx_new(3);
    GVM_CHECK(gvm_ctx_set_device(ctx, device) == GVM_OK, "%s", gvm_error_message());
    ctx->autocast = autocast;
    twin_model m;
    twin_model_init(&m, &c, device, 11);
    twin_batch b;
    twin_batch_init(&b, &c, device, 12);
    float *am = gvm_param_store_state(&m.ps, 0), *av = gvm_param_store_state(&m.ps, 1);
    gvm_adamw_hparams hp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    run_result r = {.n = m.ps.total};
    // f16 runs the way f16 training must: the loss is scaled before backward so small gradients survive
    // the f16 rounding of the backward GEMMs, and the gradients are unscaled inside the AdamW pass.
    gvm_loss_scaler scaler;
    gvm_loss_scaler_init(&scaler);
    bool scaled = autocast == GVM_F16;
    for (int s = 0; s < STEPS; s++) {
        gvm_param_store_zero_grad(&m.ps);
        gvm_tensor *loss = twin_forward(ctx, &m, &b);
        float scale = scaled ? gvm_loss_scaler_scale(&scaler) : 1.0f;
        gvm_backward(ctx, scaled ? gvm_mul_scalar(ctx, loss, scale) : loss);
        double norm = sqrt(gvm_grad_sumsq(device, m.ps.grad, (int64_t)m.ps.total)) / scale;
        bool apply = scaled ? gvm_loss_scaler_update(&scaler, isfinite(norm)) : true;
        GVM_CHECK(apply, "step %d: non-finite gradients at loss scale %g", s, scale);
        hp.grad_scale = (float)((norm > 1.0 ? 1.0 / norm : 1.0) / scale);
        gvm_adamw_step(device, m.ps.data, m.ps.grad, am, av, (int64_t)m.ps.total, &hp, s + 1);
        gvm_device_copy(&r.loss[s], GVM_DEVICE_CPU, loss->data, device, sizeof(float));
        gvm_ctx_reset(ctx);
    }
    r.params = GVM_MALLOC(r.n * sizeof(float));
    gvm_device_copy(r.params, GVM_DEVICE_CPU, m.ps.data, device, r.n * sizeof(float));
    twin_batch_free(&b, &c);
    twin_model_free(&m);
    gvm_ctx_free(ctx);
    return r;
}

static void compare_losses(const char *what, const run_result *ref, const run_result *got, double first_tol, double tol) {
    for (int s = 0; s < STEPS; s++) {
        double rel = fabs((double)got->loss[s] - ref->loss[s]) / fabs((double)ref->loss[s]);
        double allowed = s == 0 ? first_tol : tol;
        char name[96];
        snprintf(name, sizeof name, "%s: loss of step %d", what, s);
        TEST_CHECK(rel <= allowed, name, "cpu %.8f, gpu %.8f, relative %.2e > %.0e", ref->loss[s], got->loss[s], rel,
                   allowed);
        printf("    %s step %d: cpu %.7f gpu %.7f (relative %.2e)\n", what, s, ref->loss[s], got->loss[s], rel);
    }
}

int main(int argc, char **argv) {
    parity_init(argc, argv);
    run_result cpu = train(GVM_DEVICE_CPU, GVM_F32);
    run_result gpu = train(GVM_DEVICE_CUDA, GVM_F32);
    compare_losses("f32", &cpu, &gpu, 1e-5, 1e-4);
    double worst = 0;
    for (size_t i = 0; i < cpu.n; i++) worst = fmax(worst, fabs((double)cpu.params[i] - gpu.params[i]));
    TEST_CHECK(worst <= 1e-4, "f32: parameters after the steps", "max |gpu - cpu| %.3g", worst);
    printf("    f32 parameters: max |gpu - cpu| %.3g\n", worst);

    run_result again = train(GVM_DEVICE_CUDA, GVM_F32);
    TEST_CHECK(memcmp(again.loss, gpu.loss, sizeof gpu.loss) == 0, "determinism: same losses on a second GPU run", "%s", "");
    TEST_CHECK(memcmp(again.params, gpu.params, gpu.n * sizeof(float)) == 0,
               "determinism: bit-identical parameters on a second GPU run", "%s", "");

    const gvm_dtype lowp[2] = {GVM_BF16, GVM_F16};
    for (int i = 0; i < 2; i++) {
        run_result ac = train(GVM_DEVICE_CUDA, lowp[i]);
        compare_losses(gvm_dtype_name(lowp[i]), &cpu, &ac, 2e-2, 2e-2);
        free(ac.params);
    }
    free(cpu.params);
    free(gpu.params);
    free(again.params);
    return test_finish();
}
