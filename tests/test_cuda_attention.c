// test_cuda_attention.c: the CUDA attention kernels against the CPU reference, forward (out) and backward
// (dq, dk, dv): self-attention at T = 1, 7, 64, 129, 1500 with and without the causal mask (T = 1500 at
// B*H = 48 runs several score chunks that cut across batch rows), cross-attention (Tq = 200, Tk = 37; and Tk
// up to 3000 for every variant of the softmax row kernel),
// causal with Tq < Tk (KV-cache decoding) and Tq > Tk (rows that see no key), key padding masks with a
// fully masked batch row and rows whose only visible key is masked, D = 64 / 32, Dv != D, H = 1 / 16,
// B = 1 / 3, custom scale, only some gradients wanted (the NULL gradient paths), one tensor as q, k and v
// (gradients accumulate), and autocast to bf16 and f16.
// Autocast with D == Dv in {32, 64, 128} runs the fused kernels of core/cuda/flash_attention.cu (switched on
// here; opt-in for users through GVM_ATTENTION_FLASH=1 until this test has passed on a GPU): the autocast
// cases cover them at D = 32, 64, 128 with the same variety (tails of the 64-row tiles, Tq < Tk, Tq > Tk,
// fully masked rows, T = 1500, only some gradients, q = k = v), and Dv != D or D = 48 the GEMM path. Then
// the two autocast paths run on the same inputs and are compared to each other, and the flash path twice
// to check that it is deterministic (bit-identical).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/gvm.h"
#include "tests/device_parity.h"
#ifdef GVM_HAVE_CUDA
#include "core/cuda/attention.h"  // gvm_cuda_attention_set_flash
#endif

// Key padding masks [B, Tk]. Batch row b attends keys j < len(b) (MASK_FULL: len = 3Tk/4, Tk/2 + 1, then 0 for
// row 2: a fully masked batch row; MASK_PARTIAL: Tk, Tk - 1, Tk/3 + 1), and row 0 also masks key `hole`. Not a
// single key: a row that sees one key has dq = 0 and gives no dk, which both backends return as rounding
// noise; nor very few keys among many: their dk would dwarf the rms that the tolerance scales with.
enum { MASK_NONE = 0, MASK_FULL, MASK_PARTIAL };

typedef struct {
    const char *name;
    int64_t B, Tq, Tk, H, D, Dv;
    int causal;
    int mask;      // MASK_*
    int hole;      // key of batch row 0 also masked (-1: none)
    float scale;   // 0: 1/sqrt(D)
    int grads;     // bit i: input i (q, k, v) requires grad; 0 = all three
    int shared;    // one tensor [B, T, H, D] is q, k and v (T = Tq = Tk, Dv = D)
    gvm_dtype autocast;
} attn_case;

typedef struct {
    int causal;
    float scale;
    int shared;
    gvm_tensor *mask_cpu, *mask_gpu;  // the same mask on each device (NULL: none)
} attn_arg;

static gvm_tensor *build(gvm_ctx *ctx, gvm_tensor **in, const void *arg) {
    const attn_arg *a = arg;
    gvm_tensor *mask = ctx->device == GVM_DEVICE_CPU ? a->mask_cpu : a->mask_gpu;
    gvm_attention_opts o = {.causal = a->causal != 0, .key_mask = mask, .scale = a->scale};
    if (a->shared) return gvm_attention(ctx, in[0], in[0], in[0], &o);
    return gvm_attention(ctx, in[0], in[1], in[2], &o);
}

static int64_t mask_len(int kind, int64_t b, int64_t Tk) {
    if (kind == MASK_FULL) return b == 0 ? Tk - Tk / 4 : b == 1 ? Tk / 2 + 1 : b == 2 ? 0 : Tk;
    return b == 0 ? Tk : b == 1 ? Tk - 1 : Tk / 3 + 1;
}

static gvm_tensor *make_mask(const attn_case *c) {
    gvm_tensor *m = gvm_tensor_new(GVM_BOOL, 2, (int64_t[]){c->B, c->Tk});
    uint8_t *d = gvm_tensor_u8(m);
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t j = 0; j < c->Tk; j++) d[b * c->Tk + j] = j < mask_len(c->mask, b, c->Tk) && !(b == 0 && j == c->hole);
    return m;
}

// The tolerance of a case: 1e-5 (the default) in f32.
static double case_rtol(const attn_case *c) {
    // Autocast rounds q, k, v, dout, the probabilities and dS to 8 (bf16) or 11 (f16) significant bits before
    // the GEMMs, against an f32 reference. The error is a few 2^-9 (2^-12) of the values, but the tolerance
    // is relative to the whole tensor's rms, which under a long causal mask is far below the values of the
    // early rows (few keys) and early keys (seen by every row). Measured on an H100, as a fraction of these
    // tolerances: bf16 <= 0.72 at Tk < 1000, 0.50 at T = 1500 causal; f16 <= 0.54 at Tk < 1000, 0.46 at 3000.
    // The fused kernels round the same operands at the same points (their probabilities are more exact in
    // the forward pass, see flash_attention.cu), so the same tolerances hold for them.
    if (c->autocast == GVM_BF16) return c->Tk >= 1000 ? 2e-1 : 1e-1;
    if (c->autocast == GVM_F16) return c->Tk >= 1000 ? 2e-2 : 1e-2;
    return 0.0;
}

static void run_case(const attn_case *c) {
    attn_arg arg = {c->causal, c->scale, c->shared, NULL, NULL};
    if (c->mask != MASK_NONE) {
        arg.mask_cpu = make_mask(c);
        arg.mask_gpu = gvm_tensor_to(arg.mask_cpu, GVM_DEVICE_CUDA);
    }
    parity_input in[3];
    int n_in = c->shared ? 1 : 3;
    in[0] = PARITY_F32(c->grads == 0 || (c->grads & 1), 4, c->B, c->Tq, c->H, c->D);
    in[1] = PARITY_F32(c->grads == 0 || (c->grads & 2), 4, c->B, c->Tk, c->H, c->D);
    in[2] = PARITY_F32(c->grads == 0 || (c->grads & 4), 4, c->B, c->Tk, c->H, c->Dv);
    parity_opts opts = {0};
    opts.autocast = c->autocast;
    opts.rtol = case_rtol(c);
    parity_check(c->name, build, &arg, n_in, in, &opts);
    gvm_tensor_free(arg.mask_gpu);
    gvm_tensor_free(arg.mask_cpu);
}

#ifdef GVM_HAVE_CUDA
// out, dq, dk, dv of one autocast run on the GPU, copied to the host.
typedef struct {
    gvm_tensor *t[4];
} gpu_run;

static const char *const k_what[4] = {"output", "grad[0]", "grad[1]", "grad[2]"};

static gpu_run run_gpu(const attn_case *c, gvm_tensor *const host[3], const gvm_tensor *seed,
                       const gvm_tensor *mask_host) {
    gpu_run r = {{0}};
    gvm_ctx *ctx = gvm_ctx_new(1);
    GVM_CHECK(gvm_ctx_set_device(ctx, GVM_DEVICE_CUDA) == GVM_OK, "%s", gvm_error_message());
    ctx->autocast = c->autocast;
    gvm_tensor *mask = mask_host ? gvm_tensor_to(mask_host, GVM_DEVICE_CUDA) : NULL;
    gvm_tensor *in[3];
    for (int i = 0; i < 3; i++) {
        in[i] = gvm_tensor_to(host[i], GVM_DEVICE_CUDA);
        in[i]->requires_grad = true;
    }
    gvm_attention_opts o = {.causal = c->causal != 0, .key_mask = mask, .scale = c->scale};
    gvm_tensor *out = gvm_attention(ctx, in[0], in[1], in[2], &o);
    r.t[0] = gvm_tensor_to(out, GVM_DEVICE_CPU);
    gvm_tensor *sg = gvm_tensor_to(seed, GVM_DEVICE_CUDA);
    gvm_backward_with_grad(ctx, out, sg->data);
    for (int i = 0; i < 3; i++) r.t[1 + i] = gvm_tensor_to(in[i]->grad, GVM_DEVICE_CPU);
    gvm_tensor_free(sg);
    for (int i = 0; i < 3; i++) gvm_tensor_free(in[i]);
    gvm_tensor_free(mask);
    gvm_ctx_free(ctx);
    return r;
}

// |x - ref| <= rtol (|ref| + rms(ref)) element by element (ref: the GEMM path), as device_parity does.
static bool within(const char *name, const char *what, const gvm_tensor *ref, const gvm_tensor *x, double rtol) {
    const float *a = ref->data, *b = x->data;
    int64_t n = ref->numel;
    double sumsq = 0.0;
    for (int64_t i = 0; i < n; i++) sumsq += (double)a[i] * a[i];
    double rms = n ? sqrt(sumsq / (double)n) : 0.0, worst = 0.0;
    int64_t worst_i = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) {
            if (!(a[i] == b[i])) {
                printf("FAIL %s: %s[%lld]: gemm path %g, flash %g\n", name, what, (long long)i, a[i], b[i]);
                return false;
            }
            continue;
        }
        double err = fabs((double)a[i] - b[i]), allowed = rtol * (fabs(a[i]) + rms);
        double ratio = err == 0.0 ? 0.0 : allowed > 0.0 ? err / allowed : INFINITY;
        if (ratio > worst) worst = ratio, worst_i = i;
    }
    if (worst > 1.0) {
        printf("FAIL %s: %s[%lld]: gemm path %.9g, flash %.9g (rms %.3g)\n", name, what, (long long)worst_i,
               a[worst_i], b[worst_i], rms);
        return false;
    }
    printf("  %s %s: worst %.2f of the tolerance\n", name, what, worst);
    return true;
}

static bool same_bits(const gvm_tensor *a, const gvm_tensor *b) {
    return a->numel == b->numel && memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)) == 0;
}

// The flash and GEMM autocast paths on the same inputs: within the autocast tolerance of each other (they
// round the same operands), not bit-identical (else the switch did nothing), and the flash path twice
// gives the same bits.
static bool compare_paths(const attn_case *c) {
    gvm_rng rng;
    gvm_rng_init(&rng, 4321);
    int64_t shapes[3][4] = {{c->B, c->Tq, c->H, c->D}, {c->B, c->Tk, c->H, c->D}, {c->B, c->Tk, c->H, c->Dv}};
    gvm_tensor *host[3];
    for (int i = 0; i < 3; i++) {
        host[i] = gvm_tensor_new(GVM_F32, 4, shapes[i]);
        gvm_rng_normal(&rng, host[i]->data, (size_t)host[i]->numel, 0.0f, 1.0f);
    }
    gvm_tensor *seed = gvm_tensor_new(GVM_F32, 4, (int64_t[]){c->B, c->Tq, c->H, c->Dv});
    gvm_rng_normal(&rng, seed->data, (size_t)seed->numel, 0.0f, 1.0f);
    gvm_tensor *mask = c->mask != MASK_NONE ? make_mask(c) : NULL;

    bool was = gvm_cuda_attention_flash_enabled();
    gvm_cuda_attention_set_flash(false);
    gpu_run gemm = run_gpu(c, host, seed, mask);
    gvm_cuda_attention_set_flash(true);
    gpu_run flash = run_gpu(c, host, seed, mask), again = run_gpu(c, host, seed, mask);
    gvm_cuda_attention_set_flash(was);

    bool ok = true, all_same = true;
    for (int i = 0; i < 4; i++) {
        ok = within(c->name, k_what[i], gemm.t[i], flash.t[i], case_rtol(c)) && ok;
        if (!same_bits(flash.t[i], again.t[i])) {
            printf("FAIL %s: %s: two flash runs differ (not deterministic)\n", c->name, k_what[i]);
            ok = false;
        }
        all_same = all_same && same_bits(gemm.t[i], flash.t[i]);
    }
    if (all_same) {
        printf("FAIL %s: the flash switch changed nothing (both runs took one path)\n", c->name);
        ok = false;
    }
    printf("%s %s\n", ok ? "ok  " : "FAIL", c->name);
    fflush(stdout);
    for (int i = 0; i < 4; i++) {
        gvm_tensor_free(gemm.t[i]);
        gvm_tensor_free(flash.t[i]);
        gvm_tensor_free(again.t[i]);
    }
    for (int i = 0; i < 3; i++) gvm_tensor_free(host[i]);
    gvm_tensor_free(seed);
    gvm_tensor_free(mask);
    return ok;
}
#endif

int main(int argc, char **argv) {
    parity_init(argc, argv);
#ifdef GVM_HAVE_CUDA
    // The fused kernels are opt-in for users until validated on a GPU; this test is that validation.
    gvm_cuda_attention_set_flash(true);
#endif
    const gvm_dtype F32 = GVM_F32, BF16 = GVM_BF16, F16 = GVM_F16;
    const attn_case cases[] = {
        // self-attention, Tq = Tk
        // T = 1: softmax over one key is constant, so dq = dk = 0 exactly and both backends return only their
        // rounding noise (dP - delta cancels); out = v and dv = dout are compared.
        {"self T=1", 3, 1, 1, 16, 64, 64, 0, MASK_NONE, -1, 0, 4, 0, F32},
        {"self T=1 causal", 3, 1, 1, 16, 64, 64, 1, MASK_NONE, -1, 0, 4, 0, F32},
        {"self T=7 H=1 D=32", 1, 7, 7, 1, 32, 32, 0, MASK_NONE, -1, 0, 0, 0, F32},
        {"self T=7 H=1 D=32 causal", 1, 7, 7, 1, 32, 32, 1, MASK_NONE, -1, 0, 0, 0, F32},
        {"self T=64", 3, 64, 64, 16, 64, 64, 0, MASK_NONE, -1, 0, 0, 0, F32},
        {"self T=64 causal", 3, 64, 64, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 0, F32},
        {"self T=129 D=32 Dv=48", 1, 129, 129, 16, 32, 48, 0, MASK_NONE, -1, 0, 0, 0, F32},
        {"self T=129 D=32 Dv=48 causal", 1, 129, 129, 16, 32, 48, 1, MASK_NONE, -1, 0, 0, 0, F32},
        {"self T=129 B=3 H=1 causal scale", 3, 129, 129, 1, 64, 64, 1, MASK_NONE, -1, 0.3f, 0, 0, F32},
        // B*H = 48 pairs of 1500 x 1500 scores: several chunks, cut inside batch rows.
        {"self T=1500 B=3 H=16", 3, 1500, 1500, 16, 64, 64, 0, MASK_NONE, -1, 0, 0, 0, F32},
        {"self T=1500 B=3 H=16 causal", 3, 1500, 1500, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 0, F32},
        {"self T=1500 B=1 H=1 causal masked", 1, 1500, 1500, 1, 64, 64, 1, MASK_FULL, 700, 0, 0, 0, F32},
        // cross-attention to video frames
        {"cross Tq=200 Tk=37", 3, 200, 37, 16, 64, 64, 0, MASK_NONE, -1, 0, 0, 0, F32},
        {"cross Tq=200 Tk=37 masked (row 2 fully)", 3, 200, 37, 16, 64, 64, 0, MASK_FULL, 5, 0, 0, 0, F32},
        {"cross Tq=200 Tk=37 partial mask D=32 Dv=64", 3, 200, 37, 16, 32, 64, 0, MASK_PARTIAL, 36, 0, 0, 0, F32},
        {"cross Tq=200 Tk=37 H=1 B=1 scale 0.5", 1, 200, 37, 1, 64, 64, 0, MASK_NONE, -1, 0.5f, 0, 0, F32},
        // causal, Tq < Tk: KV-cache decoding (end-aligned)
        {"decode Tq=1 Tk=40", 3, 1, 40, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 0, F32},
        {"decode Tq=5 Tk=40", 3, 5, 40, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 0, F32},
        {"decode Tq=5 Tk=40 masked (row 2 fully)", 3, 5, 40, 16, 64, 64, 1, MASK_FULL, 3, 0, 0, 0, F32},
        // key counts for every register-cache size of the softmax kernel (32 N >= Tk), and beyond it
        {"decode Tq=5 Tk=100 masked", 3, 5, 100, 16, 64, 64, 1, MASK_FULL, 7, 0, 0, 0, F32},
        {"cross Tq=50 Tk=300", 3, 50, 300, 16, 64, 64, 0, MASK_PARTIAL, 299, 0, 0, 0, F32},
        {"cross Tq=40 Tk=1000 causal", 1, 40, 1000, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 0, F32},
        {"cross Tq=40 Tk=3000 masked", 3, 40, 3000, 4, 32, 32, 0, MASK_FULL, 1000, 0, 0, 0, F32},
        {"cross Tq=40 Tk=3000 causal", 1, 40, 3000, 4, 32, 32, 1, MASK_NONE, -1, 0, 0, 0, F32},
        // causal, Tq > Tk: the first rows see no key (out = 0, no gradient)
        {"causal Tq=9 Tk=4", 3, 9, 4, 16, 32, 32, 1, MASK_NONE, -1, 0, 0, 0, F32},
        // masks under the causal mask: row 0 of batch 0 sees only key 0, which is masked
        {"self T=64 causal masked hole 0", 3, 64, 64, 16, 64, 64, 1, MASK_FULL, 0, 0, 0, 0, F32},
        {"self T=129 causal partial mask", 3, 129, 129, 1, 64, 32, 1, MASK_PARTIAL, 10, 0.2f, 0, 0, F32},
        // only some gradients wanted
        {"grad q only", 3, 64, 37, 16, 64, 64, 0, MASK_FULL, 2, 0, 1, 0, F32},
        {"grad k only", 3, 64, 37, 16, 64, 64, 0, MASK_FULL, 2, 0, 2, 0, F32},
        {"grad v only (no dP)", 3, 64, 37, 16, 64, 64, 1, MASK_FULL, 2, 0, 4, 0, F32},
        {"grad k, v", 1, 129, 129, 16, 32, 32, 1, MASK_NONE, -1, 0, 6, 0, F32},
        // one tensor as q, k and v: three contributions accumulate into one gradient
        {"shared q=k=v causal", 3, 64, 64, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 1, F32},
        // autocast
        {"bf16 self T=129 causal", 3, 129, 129, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 0, BF16},
        {"bf16 self T=1500 causal", 1, 1500, 1500, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 0, BF16},
        {"bf16 cross masked Dv!=D", 3, 200, 37, 16, 64, 32, 0, MASK_FULL, 5, 0, 0, 0, BF16},
        {"bf16 decode Tq=5 Tk=40", 3, 5, 40, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 0, BF16},
        {"bf16 grad v only", 3, 64, 37, 16, 64, 64, 1, MASK_FULL, 2, 0, 4, 0, BF16},
        {"f16 self T=129 causal masked", 3, 129, 129, 16, 64, 64, 1, MASK_FULL, 0, 0, 0, 0, F16},
        {"f16 cross", 3, 200, 37, 16, 32, 32, 0, MASK_NONE, -1, 0, 0, 0, F16},
        {"f16 cross Tq=40 Tk=3000 masked", 3, 40, 3000, 4, 32, 32, 0, MASK_FULL, 1000, 0, 0, 0, F16},
        // autocast on the fused kernels: D = 32, 64, 128; tiles of 64 rows and keys with tails
        {"bf16 self T=1 (grad v)", 3, 1, 1, 16, 64, 64, 0, MASK_NONE, -1, 0, 4, 0, BF16},
        {"bf16 self T=7 H=1 D=32 causal", 1, 7, 7, 1, 32, 32, 1, MASK_NONE, -1, 0, 0, 0, BF16},
        {"bf16 self T=64 D=32", 3, 64, 64, 16, 32, 32, 0, MASK_NONE, -1, 0, 0, 0, BF16},
        {"bf16 self T=129 D=32 causal partial mask scale", 3, 129, 129, 4, 32, 32, 1, MASK_PARTIAL, 10, 0.2f, 0, 0,
         BF16},
        {"f16 self T=64 causal", 3, 64, 64, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 0, F16},
        {"bf16 self T=1500 B=3 H=2 D=32 causal masked", 3, 1500, 1500, 2, 32, 32, 1, MASK_FULL, 700, 0, 0, 0, BF16},
        {"f16 self T=1500 B=3 H=2 causal masked", 3, 1500, 1500, 2, 64, 64, 1, MASK_FULL, 700, 0, 0, 0, F16},
        {"bf16 self T=1000 H=2 D=128", 1, 1000, 1000, 2, 128, 128, 0, MASK_NONE, -1, 0, 0, 0, BF16},
        {"bf16 self T=200 D=128 causal", 2, 200, 200, 8, 128, 128, 1, MASK_NONE, -1, 0, 0, 0, BF16},
        {"f16 self T=129 D=128 causal masked hole 0", 3, 129, 129, 4, 128, 128, 1, MASK_FULL, 0, 0, 0, 0, F16},
        {"bf16 cross Tq=70 Tk=300 D=128 masked", 3, 70, 300, 4, 128, 128, 0, MASK_FULL, 299, 0, 0, 0, BF16},
        {"f16 cross Tq=65 Tk=63 partial mask scale", 3, 65, 63, 8, 64, 64, 0, MASK_PARTIAL, 62, 0.3f, 0, 0, F16},
        {"bf16 cross Tq=200 Tk=37 masked (row 2 fully)", 3, 200, 37, 16, 64, 64, 0, MASK_FULL, 5, 0, 0, 0, BF16},
        // causal, Tq < Tk (decoding) and Tq > Tk (the first rows, and whole tiles, see no key)
        {"bf16 decode Tq=1 Tk=40", 3, 1, 40, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 0, BF16},
        {"f16 decode Tq=5 Tk=100 D=32 masked", 3, 5, 100, 16, 32, 32, 1, MASK_FULL, 7, 0, 0, 0, F16},
        {"bf16 causal Tq=130 Tk=200 D=128", 2, 130, 200, 4, 128, 128, 1, MASK_PARTIAL, 150, 0, 0, 0, BF16},
        {"bf16 causal Tq=9 Tk=4 D=32", 3, 9, 4, 16, 32, 32, 1, MASK_NONE, -1, 0, 0, 0, BF16},
        {"bf16 causal Tq=200 Tk=70 masked", 3, 200, 70, 4, 64, 64, 1, MASK_FULL, 3, 0, 0, 0, BF16},
        // only some gradients wanted (which of the backward kernels run), and q = k = v
        {"bf16 grad q only", 3, 64, 37, 16, 64, 64, 0, MASK_FULL, 2, 0, 1, 0, BF16},
        {"bf16 grad k only", 3, 64, 37, 16, 64, 64, 0, MASK_FULL, 2, 0, 2, 0, BF16},
        {"bf16 grad k, v D=32 causal", 1, 129, 129, 16, 32, 32, 1, MASK_NONE, -1, 0, 6, 0, BF16},
        {"f16 grad q, v D=128 causal", 2, 100, 100, 4, 128, 128, 1, MASK_NONE, -1, 0, 5, 0, F16},
        {"bf16 shared q=k=v causal", 3, 64, 64, 16, 64, 64, 1, MASK_NONE, -1, 0, 0, 1, BF16},
        // shapes the fused kernels leave to the GEMM path
        {"f16 D=128 Dv=64 causal (GEMM path)", 2, 70, 90, 4, 128, 64, 1, MASK_NONE, -1, 0, 0, 0, F16},
        {"bf16 D=48 (GEMM path)", 2, 70, 90, 4, 48, 48, 0, MASK_PARTIAL, 3, 0, 0, 0, BF16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    int failed = 0;
#ifdef GVM_HAVE_CUDA
    const attn_case paths[] = {
        {"paths bf16 T=1500 B=3 H=2 causal masked", 3, 1500, 1500, 2, 64, 64, 1, MASK_FULL, 700, 0, 0, 0, BF16},
        {"paths f16 Tq=130 Tk=200 D=128 causal partial mask", 2, 130, 200, 4, 128, 128, 1, MASK_PARTIAL, 150, 0, 0,
         0, F16},
        {"paths bf16 cross Tq=200 Tk=37 D=32 masked", 3, 200, 37, 16, 32, 32, 0, MASK_FULL, 5, 0, 0, 0, BF16},
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) failed += !compare_paths(&paths[i]);
#endif
    int rc = parity_finish();
    if (failed) printf("%d path comparisons failed\n", failed);
    return rc || failed ? 1 : 0;
}
